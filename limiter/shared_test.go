package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// faultStore is a fake for fault injection: it answers with decision, or
// fails with err.
type faultStore struct {
	mu       sync.Mutex
	err      error
	decision store.Decision
	calls    int
	addCalls int
	supCalls int
	usage    []usageCall
}

func (f *faultStore) set(d store.Decision, err error) {
	f.mu.Lock()
	f.decision, f.err = d, err
	f.mu.Unlock()
}

func (f *faultStore) Admit(context.Context, store.AdmitRequest) (store.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.decision, f.err
}

func (f *faultStore) CheckSuppressed(context.Context, string, []string) ([]store.Suppression, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.supCalls++
	return nil, f.err
}

// usageCall is one successful AddUsage.
type usageCall struct {
	tenant string
	at     time.Time
	add    store.Usage
}

func (f *faultStore) AddUsage(_ context.Context, tenant string, at time.Time, add store.Usage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addCalls++
	if f.err != nil {
		return f.err
	}
	f.usage = append(f.usage, usageCall{tenant, at, add})
	return nil
}

func (f *faultStore) added() []usageCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]usageCall(nil), f.usage...)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func code(err error) string {
	if err == nil {
		return "ok"
	}
	return gateway.AsError(err).Code.String()
}

func TestSharedCacheAndDegraded(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	fs := &faultStore{}
	s, err := NewShared(SharedOptions{Store: fs, Now: c.now, DegradedWindow: 10 * time.Second, DegradedFraction: 0.5, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	ten := &gateway.Tenant{ID: "t", Limits: gateway.Limits{Rate: 8, Burst: 100}}
	frozen := &gateway.Tenant{ID: "f", Limits: gateway.Limits{Rate: 8}}
	ctx := context.Background()
	rc := []string{"a@x.example"}
	admit := func(tn *gateway.Tenant) error {
		_, err := s.Admit(ctx, tn, rc)
		return err
	}

	// A cacheable refusal keeps the tenant off the store until CacheFor.
	fs.set(store.Decision{Reason: store.ReasonPerHour, RetryAfter: 30 * time.Second, CacheFor: 20 * time.Second}, nil)
	if got := code(admit(ten)); got != "quota_exceeded" {
		t.Fatalf("first refusal %s", got)
	}
	fs.set(store.Decision{Admitted: true}, nil)
	for range 100 {
		err := admit(ten)
		if ge := gateway.AsError(err); ge == nil || ge.Code != gateway.CodeQuotaExceeded || ge.RetryAfter != 30*time.Second {
			t.Fatalf("cached refusal: %v", err)
		}
	}
	if fs.calls != 1 {
		t.Fatalf("store calls %d during the cache; want 1", fs.calls)
	}
	c.t = c.t.Add(20 * time.Second)
	if got := code(admit(ten)); got != "ok" {
		t.Fatalf("after CacheFor: %s", got)
	}

	// Frozen tenant seen once.
	fs.set(store.Decision{Reason: store.ReasonFrozen, RetryAfter: store.FrozenRetry}, nil)
	if got := code(admit(frozen)); got != "tenant_frozen" {
		t.Fatalf("frozen: %s", got)
	}

	// Store down: degraded budget = 8 * 0.5 / 2 = 2 msg/s, burst 1.
	fs.set(store.Decision{}, errors.New("connection refused"))
	tests := []struct {
		name  string
		after time.Duration
		t     *gateway.Tenant
		want  string
	}{
		{"first degraded message", 0, ten, "ok"},
		{"burst is 1", 0, ten, "rate_limited"},
		{"half a second later", 500 * time.Millisecond, ten, "ok"},
		{"known frozen stays refused", 0, frozen, "tenant_frozen"},
		{"still inside the window", 8 * time.Second, ten, "ok"},
		{"window over", 2 * time.Second, ten, "store_unavailable"},
	}
	for _, tc := range tests {
		c.t = c.t.Add(tc.after)
		if got := code(admit(tc.t)); got != tc.want {
			t.Fatalf("%s: %s; want %s", tc.name, got, tc.want)
		}
	}
	st := s.Stats()
	if st.DegradedAdmitted != 3 || st.DegradedRefused != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Recovery: the first success ends the outage; a new outage gets a new window.
	fs.set(store.Decision{Admitted: true}, nil)
	if got := code(admit(ten)); got != "ok" {
		t.Fatalf("recovered: %s", got)
	}
	fs.set(store.Decision{}, errors.New("timeout"))
	c.t = c.t.Add(time.Second)
	if got := code(admit(ten)); got != "ok" {
		t.Fatalf("new outage, new window: %s", got)
	}
}

func TestSharedFailClosed(t *testing.T) {
	fs := &faultStore{err: errors.New("down")}
	s, err := NewShared(SharedOptions{Store: fs, DegradedWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Admit(context.Background(), &gateway.Tenant{ID: "t"}, []string{"a@x.example"})
	if ge := gateway.AsError(err); ge == nil || ge.Code != gateway.CodeStoreUnavailable || ge.RetryAfter != DefaultUnavailableRetry {
		t.Fatalf("no window: %v", err)
	}
}

func TestSharedSuppressedMapping(t *testing.T) {
	fs := &faultStore{}
	s, _ := NewShared(SharedOptions{Store: fs})
	now := time.Now()
	rc := []string{"Bounce@x.example", "ok@x.example", "c@x.example"}
	fs.set(store.Decision{Admitted: true, Suppressed: []store.Suppression{
		{Address: "bounce@x.example", Reason: store.HardBounce, Added: now},
		{Address: "c@x.example", Reason: store.Complaint, Added: now},
	}}, nil)
	rej, err := s.Admit(context.Background(), &gateway.Tenant{ID: "t"}, rc)
	if err != nil || len(rej) != 2 {
		t.Fatalf("rejected %v, %v", rej, err)
	}
	if rej[0].Recipient != "Bounce@x.example" || rej[0].Code != gateway.CodeSuppressedBounce || rej[1].Code != gateway.CodeSuppressed {
		t.Fatalf("rejected %+v %+v", rej[0], rej[1])
	}
	fs.set(store.Decision{Reason: store.ReasonSuppressed, Suppressed: []store.Suppression{{Address: "bounce@x.example", Reason: store.HardBounce, Added: now}}}, nil)
	_, err = s.Admit(context.Background(), &gateway.Tenant{ID: "t"}, rc[:1])
	if ge := gateway.AsError(err); ge == nil || ge.Code != gateway.CodeSuppressedBounce || len(ge.Rejected) != 1 {
		t.Fatalf("all suppressed: %v", err)
	}
}
