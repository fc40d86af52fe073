package limiter

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

// TestSharedFirstContactWindow goes through the real admission path (the
// embedded store): a full window is a temporary first_contact_limited
// refusal naming the window, with a retry hint, counted per tenant; known
// recipients pass; a Delivery frees and grows; a tenant whose
// configuration set is not declared to publish Delivery events keeps the
// static budget only.
func TestSharedFirstContactWindow(t *testing.T) {
	c := storetest.NewClock(storetest.Start)
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef0123"), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	s, err := NewShared(SharedOptions{Store: st, Now: c.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	w := gateway.FirstContactWindow{Initial: 2, Min: 1, Max: 10, Threshold: 10, OutstandingTimeout: time.Minute}
	on := &gateway.Tenant{ID: "on", Limits: gateway.Limits{FirstContactWindow: w}, SES: gateway.SESOptions{DeliveryEvents: true}}
	off := &gateway.Tenant{ID: "off", Limits: gateway.Limits{FirstContactWindow: w}}
	ctx := context.Background()
	send := func(tn *gateway.Tenant, to ...string) error {
		t.Helper()
		_, err := s.Admit(ctx, tn, to)
		return err
	}
	for _, tn := range []*gateway.Tenant{on, off} {
		if err := send(tn, "a@x.example", "b@x.example"); err != nil {
			t.Fatalf("%s: %v", tn.ID, err)
		}
	}
	err = send(on, "c@x.example")
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Code != gateway.CodeFirstContactLimited || !strings.Contains(ge.Msg, "window full") ||
		ge.RetryAfter <= 0 || ge.RetryAfter > store.WindowRetry {
		t.Fatalf("over the window: %v; want first_contact_limited, window full, retry in (0, %v]", err, store.WindowRetry)
	}
	if err := send(on, "a@x.example", "B@x.example"); err != nil {
		t.Fatalf("known recipients held back: %v", err)
	}
	for i := range 5 {
		if err := send(off, fmt.Sprintf("n%d@x.example", i)); err != nil {
			t.Fatalf("tenant without Delivery events held back: %v", err)
		}
	}
	if _, err := st.SettleFirstContacts(ctx, store.SettleRequest{Tenant: "on", Outcome: store.SettleDelivery, Recipients: []string{"a@x.example"}, Window: w}); err != nil {
		t.Fatal(err)
	}
	// 1 outstanding, window 3: two more fit, not three.
	if err := send(on, "c@x.example", "d@x.example", "e@x.example"); err == nil {
		t.Fatal("3 new recipients passed a window with 2 free")
	}
	if err := send(on, "c@x.example", "d@x.example"); err != nil {
		t.Fatalf("after a delivery: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := counterOf(mfs, "sesgate_first_contact_held_total", "on"); got != 2 {
		t.Fatalf("held counter %v; want 2", got)
	}
}

func counterOf(mfs []*dto.MetricFamily, name, tenant string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tenant {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestDegradedRefusesWindowedTenant: while the store cannot answer, a
// tenant whose window is active is refused (the window cannot be
// evaluated), a tenant with only the static budget keeps its degraded
// share.
func TestDegradedRefusesWindowedTenant(t *testing.T) {
	f := &faultStore{}
	f.set(store.Decision{}, errors.New("store down"))
	s, err := NewShared(SharedOptions{Store: f})
	if err != nil {
		t.Fatal(err)
	}
	w := gateway.FirstContactWindow{Initial: 5, Min: 1, Max: 10, Threshold: 10, OutstandingTimeout: time.Minute}
	on := &gateway.Tenant{ID: "on", Limits: gateway.Limits{PerHour: 1000, FirstContactWindow: w}, SES: gateway.SESOptions{DeliveryEvents: true}}
	off := &gateway.Tenant{ID: "off", Limits: gateway.Limits{PerHour: 1000, FirstContactWindow: w}}
	_, err = s.Admit(context.Background(), on, []string{"a@x.example"})
	if ge := gateway.AsError(err); ge == nil || ge.Code != gateway.CodeStoreUnavailable {
		t.Fatalf("windowed tenant in degraded mode: %v; want store_unavailable", err)
	}
	if _, err := s.Admit(context.Background(), off, []string{"a@x.example"}); err != nil {
		t.Fatalf("tenant without an active window in degraded mode: %v", err)
	}
}
