package guard

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

type fakeDeny struct {
	mu     sync.Mutex
	denied map[string]time.Time
}

func (f *fakeDeny) Deny(id string, _ *gateway.Error, until time.Time) {
	f.mu.Lock()
	f.denied[id] = until
	f.mu.Unlock()
}
func (f *fakeDeny) Undeny(id string)  { f.mu.Lock(); delete(f.denied, id); f.mu.Unlock() }
func (f *fakeDeny) Tenants() []string { return nil }
func (f *fakeDeny) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.denied[id]
	return ok
}

type env struct {
	st    *boltstore.Store
	clock *storetest.Clock
	g     *Guard
	deny  *fakeDeny
}

func newEnv(t *testing.T, opts Options, cfgs map[string]breaker.Config) *env {
	t.Helper()
	c := storetest.NewClock(storetest.Start)
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef0123"), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &fakeDeny{denied: map[string]time.Time{}}
	opts.Store, opts.Now, opts.Deny = st, c.Now, d
	opts.Config = func(id string) (breaker.Config, bool) { x, ok := cfgs[id]; return x, ok }
	for id := range cfgs {
		opts.Tenants = append(opts.Tenants, id)
	}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, clock: c, g: g, deny: d}
}

// admit sends n recipients for tenant through the store (the sent counters).
func (e *env) admit(t *testing.T, tenant string, n, from int) {
	t.Helper()
	for i := range n {
		d, err := e.st.Admit(context.Background(), store.AdmitRequest{Tenant: tenant, Recipients: []string{fmt.Sprintf("r%d@x.example", from+i)}})
		if err != nil || !d.Admitted {
			t.Fatalf("admit: %+v %v", d, err)
		}
	}
}

func (e *env) bounce(t *testing.T, tenant, addr, typ string) {
	t.Helper()
	now := e.clock.Now()
	ev := &feedback.Event{Type: feedback.TypeBounce, Tenant: tenant, SESMessageID: "m-" + addr, MailTime: now, EventTime: now,
		BounceType: typ, BounceSubType: "General", Recipients: []feedback.Recipient{{Address: addr}}}
	if err := e.g.ProcessEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

func TestSentCountedOnce(t *testing.T) {
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": breaker.TenantDefaults()})
	ctx := context.Background()
	e.admit(t, "acme", 30, 0)
	for range 3 {
		if err := e.g.Evaluate(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(time.Minute)
	e.admit(t, "acme", 20, 100)
	e.bounce(t, "acme", "r1@x.example", feedback.BouncePermanent)
	if err := e.g.Evaluate(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	st, err := e.g.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// 50 sent, 1 hard bounce: 2% over the hour window.
	if st.Stats.BounceRate != 0.02 || st.State != store.Closed {
		t.Fatalf("status %+v", st)
	}
}

func TestSuppressionFromEvents(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		typ    string
		tenant string // list the entry is expected on
		want   bool
		ttl    time.Duration
	}{
		{name: "permanent, global", typ: feedback.BouncePermanent, tenant: "", want: true},
		{name: "permanent, per tenant with expiry", opts: Options{SuppressionScope: ScopeTenant, SuppressionTTL: time.Hour}, typ: feedback.BouncePermanent, tenant: "acme", want: true, ttl: time.Hour},
		{name: "transient: counted, not suppressed", typ: feedback.BounceTransient, tenant: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts, map[string]breaker.Config{"acme": breaker.TenantDefaults()})
			e.bounce(t, "acme", "Gone@X.example", tc.typ)
			list, err := e.st.ListSuppressions(context.Background(), tc.tenant, 10)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want {
				if len(list) != 0 {
					t.Fatalf("suppressed: %+v", list)
				}
				return
			}
			if len(list) != 1 || list[0].Address != "gone@x.example" || list[0].Reason != store.HardBounce || !list[0].Added.Equal(storetest.Start) {
				t.Fatalf("list %+v", list)
			}
			if got := list[0].Expires; (tc.ttl == 0) != got.IsZero() || (tc.ttl > 0 && !got.Equal(storetest.Start.Add(tc.ttl))) {
				t.Fatalf("expiry %v", got)
			}
		})
	}
}

func TestWarningThenTripThenReset(t *testing.T) {
	c := breaker.TenantDefaults()
	c.MinSent, c.FastMinBounces = 100, 0
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": c})
	ctx := context.Background()
	e.admit(t, "acme", 100, 0)
	for i := range 3 { // 3%: over the 2.5% warning, under the 5% trip
		e.bounce(t, "acme", fmt.Sprintf("b%d@x.example", i), feedback.BouncePermanent)
	}
	rec, err := e.st.GetBreakerRecord(ctx, "acme")
	if err != nil || rec.State != store.Closed || !rec.Warning {
		t.Fatalf("after 3%%: %+v %v", rec.Breaker, err)
	}
	for i := 3; i < 5; i++ {
		e.bounce(t, "acme", fmt.Sprintf("b%d@x.example", i), feedback.BouncePermanent)
	}
	rec, _ = e.st.GetBreakerRecord(ctx, "acme")
	if rec.State != store.Open || rec.Warning || !rec.OpenUntil.Equal(storetest.Start.Add(15*time.Minute)) || rec.Probes != 20 {
		t.Fatalf("after 5%%: %+v warning %v", rec.Breaker, rec.Warning)
	}
	if !e.deny.has("acme") {
		t.Fatal("trip not put in the local deny cache")
	}
	for name, m := range map[string]struct{ got, want float64 }{
		"state":         {value(e.g.m.state.WithLabelValues("acme")), 2},
		"trips":         {value(e.g.m.trips.WithLabelValues("acme")), 1},
		"bounce events": {value(e.g.m.events.WithLabelValues("Bounce", "suppressed")), 5},
	} {
		if m.got != m.want {
			t.Errorf("metric %s = %v, want %v", name, m.got, m.want)
		}
	}
	d, err := e.st.Admit(ctx, store.AdmitRequest{Tenant: "acme", Recipients: []string{"new@x.example"}})
	if err != nil || d.Admitted || d.Reason != store.ReasonBreakerOpen {
		t.Fatalf("admission while open: %+v %v", d, err)
	}
	if err := e.g.Reset(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if e.deny.has("acme") {
		t.Fatal("reset left the local refusal")
	}
	st, err := e.g.Status(ctx, "acme")
	if err != nil || st.State != store.Closed || len(st.Trips) != 1 || st.Trips[0].At.IsZero() {
		t.Fatalf("after reset: %+v %v", st, err)
	}
	if err := e.g.ForceOpen(ctx, "acme", "looks odd"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.g.Status(ctx, "acme"); st.State != store.ForcedOpen || st.Reason != "looks odd" || len(st.Trips) != 2 || st.Trips[0].Reason != "looks odd" {
		t.Fatalf("forced: %+v", st)
	}
	for _, f := range []func() error{
		func() error { _, err := e.g.Status(ctx, "nobody"); return err },
		func() error { return e.g.Reset(ctx, "nobody") },
		func() error { return e.g.ForceOpen(ctx, "nobody", "x") },
	} {
		if err := f(); !errors.Is(err, ErrUnknownTenant) {
			t.Fatalf("unknown tenant: %v", err)
		}
	}
}

// TestAccountGuardShedsWorstFirst: two tenants under their own lines push
// the account over its 3%; the one with most bounces is forced open and
// the other keeps sending.
func TestAccountGuardShedsWorstFirst(t *testing.T) {
	tc := breaker.TenantDefaults()
	tc.TripBounceRate, tc.WarnBounceRate, tc.FastMinBounces = 0.5, 0, 0 // tenants alone never trip
	acct := breaker.AccountDefaults()
	acct.MinSent, acct.FastMinBounces = 200, 0
	e := newEnv(t, Options{Account: &acct}, map[string]breaker.Config{"worse": tc, "bad": tc, "fine": tc})
	ctx := context.Background()
	e.admit(t, "worse", 100, 0)
	e.admit(t, "bad", 100, 1000)
	e.admit(t, "fine", 100, 2000)
	for _, x := range []string{"fine", "bad", "worse"} {
		if err := e.g.Evaluate(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	// 300 sent; worse 6, bad 4 hard bounces: 3.3% for the account.
	for i := range 6 {
		e.bounce(t, "worse", fmt.Sprintf("w%d@x.example", i), feedback.BouncePermanent)
		if i < 4 {
			e.bounce(t, "bad", fmt.Sprintf("b%d@x.example", i), feedback.BouncePermanent)
		}
	}
	want := map[string]store.BreakerState{"worse": store.ForcedOpen, "bad": store.Closed, "fine": store.Closed}
	for id, w := range want {
		rec, err := e.st.GetBreakerRecord(ctx, id)
		if err != nil || rec.State != w {
			t.Errorf("%s: %q (%v), want %q", id, rec.State, err, w)
		}
	}
	acctRec, _ := e.st.GetBreakerRecord(ctx, AccountID)
	if acctRec.State != store.Open {
		t.Fatalf("account record %q", acctRec.State)
	}
}

func TestDeduperOnStore(t *testing.T) {
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": breaker.TenantDefaults()})
	d := Deduper{Store: e.st, TTL: time.Minute}
	ctx := context.Background()
	steps := []struct {
		name  string
		do    func() (bool, error)
		first bool
	}{
		{"first claim", func() (bool, error) { return d.Claim(ctx, "sns-1") }, true},
		{"replay", func() (bool, error) { return d.Claim(ctx, "sns-1") }, false},
		{"after release", func() (bool, error) { d.Release(ctx, "sns-1"); return d.Claim(ctx, "sns-1") }, true},
		{"after expiry", func() (bool, error) { e.clock.Add(2 * time.Minute); return d.Claim(ctx, "sns-1") }, true},
	}
	for _, s := range steps {
		first, err := s.do()
		if err != nil || first != s.first {
			t.Fatalf("%s: %v %v, want %v", s.name, first, err, s.first)
		}
	}
}

// value reads a gauge or counter.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// deafStore loses every announcement (a pub/sub outage).
type deafStore struct{ *boltstore.Store }

func (deafStore) SubscribeBreakers(ctx context.Context, _ func(string)) error {
	<-ctx.Done()
	return nil
}

type activeDeny struct{ *fakeDeny }

func (activeDeny) Tenants() []string { return []string{"acme"} }

// TestPeriodicCheckWithoutPubSub: a replica that misses the announcement
// still refuses a tenant active on it within a second of the trip.
func TestPeriodicCheckWithoutPubSub(t *testing.T) {
	c := breaker.TenantDefaults()
	c.FastMinBounces = 2
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": c})
	other := &fakeDeny{denied: map[string]time.Time{}}
	g2, err := New(Options{Store: deafStore{e.st}, Deny: activeDeny{other}, Now: e.clock.Now,
		Config: func(id string) (breaker.Config, bool) { return c, id == "acme" }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg := g2.Start(ctx)
	defer wg.Wait()
	defer cancel()
	e.admit(t, "acme", 5, 0)
	e.bounce(t, "acme", "a@x.example", feedback.BouncePermanent)
	e.bounce(t, "acme", "b@x.example", feedback.BouncePermanent)
	if r, _ := e.st.GetBreakerRecord(ctx, "acme"); r.State != store.Open {
		t.Fatalf("no trip: %q", r.State)
	}
	start := time.Now()
	for !other.has("acme") {
		if time.Since(start) > 1100*time.Millisecond {
			t.Fatal("the other replica does not refuse within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMinuteCounts(t *testing.T) {
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": breaker.TenantDefaults()})
	ctx := context.Background()
	e.admit(t, "acme", 10, 0)
	sendMinute := e.clock.Now().Unix() / 60
	e.bounce(t, "acme", "r1@x.example", feedback.BouncePermanent)
	e.bounce(t, "acme", "r2@x.example", feedback.BouncePermanent)
	e.bounce(t, "acme", "r3@x.example", feedback.BounceTransient) // counted, not a hard bounce
	got, err := e.g.MinuteCounts(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if b := got[sendMinute]; b.Bounces != 2 || b.Complaints != 0 {
		t.Fatalf("minute %d: %+v (all: %+v)", sendMinute, b, got)
	}
	if _, err := e.g.MinuteCounts(ctx, "nobody"); !errors.Is(err, ErrUnknownTenant) {
		t.Fatalf("unknown tenant: %v", err)
	}
}
