package guard

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestWindowFromEvents: Delivery events grow the window of the tenant
// whose window is active, a hard bounce only counts in the epoch (the
// sample is not complete), a complaint halves it, a soft bounce only
// settles; the tenant without Delivery events keeps no window; the gauges
// follow.
func TestWindowFromEvents(t *testing.T) {
	w := gateway.FirstContactWindow{Initial: 4, Min: 2, Max: 100, Threshold: 50, OutstandingTimeout: time.Minute}
	reg := prometheus.NewRegistry()
	e := newEnv(t, Options{Registerer: reg, Windows: func(tenant string) (gateway.FirstContactWindow, bool) {
		return w, tenant == "acme"
	}}, map[string]breaker.Config{"acme": breaker.TenantDefaults(), "quiet": breaker.TenantDefaults()})
	ctx := context.Background()
	lim := gateway.Limits{FirstContactWindow: w}
	for _, tenant := range []string{"acme", "quiet"} {
		d, err := e.st.Admit(ctx, store.AdmitRequest{Tenant: tenant, Recipients: []string{"a@x.example", "b@x.example", "c@x.example", "d@x.example"}, Limits: lim})
		if err != nil || !d.Admitted {
			t.Fatalf("admit %s: %+v %v", tenant, d, err)
		}
	}
	event := func(tenant string, typ feedback.EventType, bounce string, to ...string) {
		t.Helper()
		now := e.clock.Now()
		ev := &feedback.Event{Type: typ, Tenant: tenant, SESMessageID: "m", MailTime: now, EventTime: now, BounceType: bounce, BounceSubType: "General"}
		for _, a := range to {
			ev.Recipients = append(ev.Recipients, feedback.Recipient{Address: a})
		}
		if err := e.g.ProcessEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	event("acme", feedback.TypeDelivery, "", "a@x.example", "b@x.example")
	event("quiet", feedback.TypeDelivery, "", "a@x.example", "b@x.example")
	st, err := e.g.Window(ctx, "acme")
	if err != nil || !st.Active || st.Window != 6 || st.Outstanding != 2 || st.Deliveries != 2 {
		t.Fatalf("acme after 2 deliveries: %+v, %v; want window 6, 2 outstanding", st, err)
	}
	if got := gaugeOf(t, e.g.win.size.WithLabelValues("acme")); got != 6 {
		t.Fatalf("sesgate_first_contact_window = %v; want 6", got)
	}
	event("acme", feedback.TypeBounce, feedback.BounceTransient, "c@x.example")
	if st, _ = e.g.Window(ctx, "acme"); st.Window != 6 || st.Outstanding != 1 {
		t.Fatalf("after a soft bounce: %+v; want window 6, 1 outstanding", st)
	}
	event("acme", feedback.TypeBounce, feedback.BouncePermanent, "d@x.example")
	if st, _ = e.g.Window(ctx, "acme"); st.Window != 6 || st.Outstanding != 0 || st.EpochBounced != 1 || st.EpochDelivered != 2 {
		t.Fatalf("after a hard bounce: %+v; want window 6, none outstanding, 2 delivered and 1 bounced in the epoch", st)
	}
	event("acme", feedback.TypeComplaint, "", "a@x.example")
	if st, _ = e.g.Window(ctx, "acme"); st.Window != 3 || st.Threshold != 3 {
		t.Fatalf("after a complaint: %+v; want window 3", st)
	}
	if got := gaugeOf(t, e.g.win.out.WithLabelValues("acme")); got != 0 {
		t.Fatalf("sesgate_first_contact_outstanding = %v; want 0", got)
	}
	q, err := e.g.Window(ctx, "quiet")
	if err != nil || q.Active || !strings.Contains(q.Off, "delivery_events") || q.Outstanding != 0 {
		t.Fatalf("quiet: %+v, %v; want inactive, saying why", q, err)
	}
	if _, err := e.g.Window(ctx, "nobody"); err == nil {
		t.Fatal("unknown tenant answered")
	}
}

// TestWindowWarnsWithoutDeliveries: first contacts that expire while no
// Delivery event was ever seen give one warning, not one per check.
func TestWindowWarnsWithoutDeliveries(t *testing.T) {
	w := gateway.FirstContactWindow{Initial: 4, Min: 2, Max: 100, Threshold: 50, OutstandingTimeout: time.Minute}
	var logs bytes.Buffer
	e := newEnv(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Windows: func(string) (gateway.FirstContactWindow, bool) { return w, true }},
		map[string]breaker.Config{"acme": breaker.TenantDefaults()})
	ctx := context.Background()
	if d, err := e.st.Admit(ctx, store.AdmitRequest{Tenant: "acme", Recipients: []string{"a@x.example"}, Limits: gateway.Limits{FirstContactWindow: w}}); err != nil || !d.Admitted {
		t.Fatalf("admit: %+v %v", d, err)
	}
	e.g.CheckWindows(ctx)
	if strings.Contains(logs.String(), "no SES Delivery event") {
		t.Fatal("warned before anything expired")
	}
	e.clock.Add(2 * time.Minute)
	e.g.CheckWindows(ctx)
	e.g.CheckWindows(ctx)
	if n := strings.Count(logs.String(), "no SES Delivery event"); n != 1 {
		t.Fatalf("%d warnings; want 1:\n%s", n, logs.String())
	}
	st, err := e.g.Window(ctx, "acme")
	if err != nil || !st.NoDeliveries || st.Expired != 1 {
		t.Fatalf("status %+v, %v; want NoDeliveries, 1 expired", st, err)
	}
}

func gaugeOf(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
