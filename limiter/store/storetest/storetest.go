// Package storetest is the conformance suite of store.Store: every store
// implementation runs Run in its tests, with a clock the suite drives, so
// the Redis and embedded stores are held to the same semantics.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// Clock is a settable clock for the store under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Start is where every scenario's clock starts: 10:00:00 UTC, so hour and
// day windows are far from their ends.
var Start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// KnownTTL is the known-recipient memory the factory must configure.
const KnownTTL = 48 * time.Hour

// Factory returns a fresh, empty store reading clock, configured with
// KnownTTL. Each call must give independent state (or a distinct tenant
// namespace: the suite uses a new tenant per scenario anyway).
type Factory func(t *testing.T, clock *Clock) store.Store

type scenario struct {
	name string
	run  func(t *testing.T, s store.Store, c *Clock, tenant string)
}

// Run runs every scenario against stores from newStore.
func Run(t *testing.T, newStore Factory) {
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			c := NewClock(Start)
			s := newStore(t, c)
			sc.run(t, s, c, fmt.Sprintf("conf%d", i))
		})
	}
}

func rcpts(n int, domain string, from int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@%s", from+i, domain)
	}
	return out
}

type want struct {
	admitted bool
	reason   store.Reason
	retry    time.Duration // -1: do not check
	cache    time.Duration // -1: do not check
}

func admit(t *testing.T, s store.Store, tenant string, l gateway.Limits, to []string, w want) store.Decision {
	t.Helper()
	d, err := s.Admit(context.Background(), store.AdmitRequest{Tenant: tenant, Recipients: to, Limits: l})
	if err != nil {
		t.Fatalf("Admit(%v): %v", to, err)
	}
	if d.Admitted != w.admitted || d.Reason != w.reason {
		t.Fatalf("Admit(%v) = admitted %v reason %q; want %v %q", to, d.Admitted, d.Reason, w.admitted, w.reason)
	}
	if w.retry >= 0 && d.RetryAfter != w.retry {
		t.Fatalf("Admit(%v) retry %v; want %v", to, d.RetryAfter, w.retry)
	}
	if w.cache >= 0 && d.CacheFor != w.cache {
		t.Fatalf("Admit(%v) cache %v; want %v", to, d.CacheFor, w.cache)
	}
	return d
}

var ok = want{admitted: true, retry: 0, cache: 0}

func sent(t *testing.T, s store.Store, tenant string) int64 {
	t.Helper()
	n, err := s.Sent(context.Background(), tenant, Start.Add(-time.Hour), Start.Add(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var scenarios = []scenario{
	{"quota per hour counts recipients and refuses the whole message", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{PerHour: 5}
		admit(t, s, ten, l, rcpts(2, "a.example", 0), ok)
		admit(t, s, ten, l, rcpts(2, "a.example", 2), ok)
		// 4 used: a message of 2 is refused whole, until the hour ends; not
		// cacheable, since 1 recipient still fits.
		admit(t, s, ten, l, rcpts(2, "a.example", 4), want{reason: store.ReasonPerHour, retry: time.Hour, cache: 0})
		admit(t, s, ten, l, rcpts(1, "a.example", 4), ok)
		if u, err := s.Usage(context.Background(), ten); err != nil || u != (store.Usage{Hour: 5, Day: 5}) {
			t.Fatalf("Usage = %+v, %v", u, err)
		}
		c.Add(15 * time.Minute)
		admit(t, s, ten, l, rcpts(1, "a.example", 5), want{reason: store.ReasonPerHour, retry: 45 * time.Minute, cache: 45 * time.Minute})
		if n := sent(t, s, ten); n != 5 {
			t.Fatalf("sent %d; want 5 (refusals count nothing)", n)
		}
		c.Add(45 * time.Minute)
		admit(t, s, ten, l, rcpts(5, "a.example", 10), ok)
	}},
	{"usage is counted for a tenant without quotas", func(t *testing.T, s store.Store, c *Clock, ten string) {
		// The operator's "recipients this hour · today" (issue 16): counted
		// in the same admission call whether or not a quota is set.
		admit(t, s, ten, gateway.Limits{}, rcpts(3, "a.example", 0), ok)
		admit(t, s, ten, gateway.Limits{Rate: 100}, rcpts(2, "a.example", 3), ok)
		if u, err := s.Usage(context.Background(), ten); err != nil || u != (store.Usage{Hour: 5, Day: 5}) {
			t.Fatalf("Usage = %+v, %v; want 5 this hour and today", u, err)
		}
		c.Add(time.Hour)
		admit(t, s, ten, gateway.Limits{}, rcpts(1, "a.example", 5), ok)
		if u, err := s.Usage(context.Background(), ten); err != nil || u != (store.Usage{Hour: 1, Day: 6}) {
			t.Fatalf("an hour later: Usage = %+v, %v; want 1 this hour, 6 today", u, err)
		}
		// A quota set later starts from what was counted.
		admit(t, s, ten, gateway.Limits{PerHour: 2}, rcpts(2, "a.example", 6), want{reason: store.ReasonPerHour, retry: -1, cache: -1})
	}},
	{"quota per day", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{PerDay: 3, PerHour: 100}
		admit(t, s, ten, l, rcpts(3, "a.example", 0), ok)
		admit(t, s, ten, l, rcpts(1, "a.example", 3), want{reason: store.ReasonPerDay, retry: 14 * time.Hour, cache: 14 * time.Hour})
		c.Add(14 * time.Hour)
		admit(t, s, ten, l, rcpts(3, "a.example", 3), ok)
	}},
	{"rate per message with burst", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{Rate: 2, Burst: 3}
		for i := range 3 {
			admit(t, s, ten, l, rcpts(5, "a.example", i*5), ok)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 20), want{reason: store.ReasonRate, retry: 500 * time.Millisecond, cache: 500 * time.Millisecond})
		c.Add(500 * time.Millisecond)
		admit(t, s, ten, l, rcpts(1, "a.example", 21), ok)
		admit(t, s, ten, l, rcpts(1, "a.example", 22), want{reason: store.ReasonRate, retry: 500 * time.Millisecond, cache: -1})
	}},
	{"rate per recipient", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{Rate: 10, Burst: 4, RatePerRecipient: true}
		admit(t, s, ten, l, rcpts(5, "a.example", 0), want{reason: store.ReasonTooMany, retry: 0, cache: 0})
		admit(t, s, ten, l, rcpts(3, "a.example", 0), ok)
		// 1 token left: 2 recipients wait 100 ms, 1 passes.
		admit(t, s, ten, l, rcpts(2, "a.example", 3), want{reason: store.ReasonRate, retry: 100 * time.Millisecond, cache: 0})
		admit(t, s, ten, l, rcpts(1, "a.example", 3), ok)
	}},
	{"first-contact budget stops new addresses, known ones flow", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{FirstContactPerHour: 3, FirstContactPerDay: 5}
		d := admit(t, s, ten, l, []string{"a@x.example", "b@x.example"}, ok)
		if d.NewRecipients != 2 {
			t.Fatalf("new %d; want 2", d.NewRecipients)
		}
		admit(t, s, ten, l, []string{"c@x.example", "d@x.example"}, want{reason: store.ReasonFirstHour, retry: time.Hour, cache: 0})
		// Known addresses (any case) are not first contacts.
		for range 10 {
			d = admit(t, s, ten, l, []string{"A@x.example", "b@x.example"}, ok)
			if d.NewRecipients != 0 {
				t.Fatalf("known counted as new: %d", d.NewRecipients)
			}
		}
		admit(t, s, ten, l, []string{"a@x.example", "c@x.example"}, ok)
		if u, err := s.Usage(context.Background(), ten); err != nil || u != (store.Usage{Hour: 24, Day: 24, FirstContactHour: 3, FirstContactDay: 3}) {
			t.Fatalf("Usage = %+v, %v", u, err)
		}
		c.Add(time.Hour)
		admit(t, s, ten, l, []string{"d@x.example", "e@x.example"}, ok)
		// Day budget (5) now used up.
		admit(t, s, ten, l, []string{"f@x.example"}, want{reason: store.ReasonFirstDay, retry: 13 * time.Hour, cache: 0})
		// The memory forgets after KnownTTL.
		c.Add(KnownTTL + time.Minute)
		d = admit(t, s, ten, l, []string{"a@x.example"}, ok)
		if d.NewRecipients != 1 {
			t.Fatalf("after KnownTTL: new %d; want 1", d.NewRecipients)
		}
	}},
	{"suppression: tenant and global, case-insensitive, expiry, dropped and not counted", func(t *testing.T, s store.Store, c *Clock, ten string) {
		ctx := context.Background()
		add := func(sp store.Suppression) {
			t.Helper()
			if err := s.AddSuppression(ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		add(store.Suppression{Tenant: ten, Address: "Bounce@X.example", Reason: store.HardBounce, Added: c.Now()})
		add(store.Suppression{Address: "complainer@y.example", Reason: store.Complaint, Added: c.Now()})
		add(store.Suppression{Tenant: ten, Address: "old@x.example", Reason: store.Manual, Added: c.Now().Add(-2 * time.Hour), Expires: c.Now().Add(-time.Hour)})
		add(store.Suppression{Tenant: "other" + ten, Address: "ok@x.example", Reason: store.Manual, Added: c.Now()})
		if err := s.AddSuppression(ctx, store.Suppression{Address: "x@y.example", Reason: "bogus", Added: c.Now()}); err == nil {
			t.Fatal("bad reason accepted")
		}

		l := gateway.Limits{PerHour: 10}
		d := admit(t, s, ten, l, []string{"bounce@x.example", "Complainer@y.example", "old@x.example", "ok@x.example"}, ok)
		got := map[string]store.SuppressionReason{}
		for _, sp := range d.Suppressed {
			got[sp.Address] = sp.Reason
		}
		if len(got) != 2 || got["bounce@x.example"] != store.HardBounce || got["complainer@y.example"] != store.Complaint {
			t.Fatalf("suppressed %+v", d.Suppressed)
		}
		d = admit(t, s, ten, l, []string{"bounce@x.example"}, want{reason: store.ReasonSuppressed, retry: 0, cache: 0})
		if len(d.Suppressed) != 1 || d.Suppressed[0].Code() != gateway.CodeSuppressedBounce {
			t.Fatalf("suppressed %+v", d.Suppressed)
		}

		hits, err := s.CheckSuppressed(ctx, ten, []string{"BOUNCE@x.example", "complainer@y.example", "old@x.example", "new@x.example"})
		if err != nil || len(hits) != 2 {
			t.Fatalf("CheckSuppressed = %+v, %v", hits, err)
		}
		list, err := s.ListSuppressions(ctx, ten, 100)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListSuppressions = %+v, %v", list, err)
		}
		global, err := s.ListSuppressions(ctx, "", 100)
		if err != nil || !slices.ContainsFunc(global, func(sp store.Suppression) bool {
			return sp.Address == "complainer@y.example" && sp.Tenant == "" && sp.Added.Equal(c.Now())
		}) {
			t.Fatalf("global list = %+v, %v", global, err)
		}
		if found, err := s.RemoveSuppression(ctx, ten, "BOUNCE@x.example"); err != nil || !found {
			t.Fatalf("RemoveSuppression = %v, %v", found, err)
		}
		if found, _ := s.RemoveSuppression(ctx, ten, "bounce@x.example"); found {
			t.Fatal("removed twice")
		}
		admit(t, s, ten, l, []string{"bounce@x.example"}, ok)
	}},
	{"frozen tenant and global freeze", func(t *testing.T, s store.Store, c *Clock, ten string) {
		ctx := context.Background()
		l := gateway.Limits{PerHour: 10}
		if err := s.SetFrozen(ctx, ten, true); err != nil {
			t.Fatal(err)
		}
		if f, err := s.Frozen(ctx, ten); err != nil || !f {
			t.Fatalf("Frozen = %v, %v", f, err)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 0), want{reason: store.ReasonFrozen, retry: store.FrozenRetry, cache: store.FrozenCache})
		if n := sent(t, s, ten); n != 0 {
			t.Fatalf("frozen refusal counted %d", n)
		}
		if err := s.SetFrozen(ctx, ten, false); err != nil {
			t.Fatal(err)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 0), ok)
		if err := s.SetFrozen(ctx, "", true); err != nil {
			t.Fatal(err)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 0), want{reason: store.ReasonFrozen, retry: store.FrozenRetry, cache: store.FrozenCache})
		if err := s.SetFrozen(ctx, "", false); err != nil {
			t.Fatal(err)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 0), ok)
	}},
	{"breaker open, half-open probes, forced open", func(t *testing.T, s store.Store, c *Clock, ten string) {
		ctx := context.Background()
		l := gateway.Limits{}
		if err := s.SetBreaker(ctx, ten, store.Breaker{State: store.Open, OpenUntil: c.Now().Add(30 * time.Second), Probes: 3}); err != nil {
			t.Fatal(err)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 0), want{reason: store.ReasonBreakerOpen, retry: 30 * time.Second, cache: 30 * time.Second})
		c.Add(30 * time.Second)
		// Half-open: the probe budget (3) must cover the message.
		admit(t, s, ten, l, rcpts(4, "a.example", 0), want{reason: store.ReasonBreakerOpen, retry: store.ProbeRetry, cache: 0})
		admit(t, s, ten, l, rcpts(2, "a.example", 0), ok)
		admit(t, s, ten, l, rcpts(2, "a.example", 2), want{reason: store.ReasonBreakerOpen, retry: store.ProbeRetry, cache: 0})
		admit(t, s, ten, l, rcpts(1, "a.example", 2), ok)
		admit(t, s, ten, l, rcpts(1, "a.example", 3), want{reason: store.ReasonBreakerOpen, retry: store.ProbeRetry, cache: store.ProbeRetry})
		b, err := s.GetBreaker(ctx, ten)
		if err != nil || b.State != store.HalfOpen || b.Probes != 0 {
			t.Fatalf("GetBreaker = %+v, %v", b, err)
		}
		if err := s.SetBreaker(ctx, ten, store.Breaker{State: store.ForcedOpen}); err != nil {
			t.Fatal(err)
		}
		admit(t, s, ten, l, rcpts(1, "a.example", 0), want{reason: store.ReasonBreakerOpen, retry: store.FrozenRetry, cache: store.FrozenCache})
		if err := s.SetBreaker(ctx, ten, store.Breaker{State: store.Closed}); err != nil {
			t.Fatal(err)
		}
		admit(t, s, ten, l, rcpts(50, "a.example", 0), ok)
		if b, _ := s.GetBreaker(ctx, "never"+ten); b.State != store.Closed {
			t.Fatalf("missing breaker reads %+v", b)
		}
		if err := s.SetBreaker(ctx, ten, store.Breaker{State: "ajar"}); err == nil {
			t.Fatal("bad state accepted")
		}
	}},
	{"shadow limits are evaluated and reported, not enforced", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{PerHour: 2, Rate: 1, Burst: 1, Shadow: []string{gateway.LimitPerHour, gateway.LimitRate}}
		admit(t, s, ten, l, rcpts(2, "a.example", 0), ok)
		d := admit(t, s, ten, l, rcpts(2, "a.example", 2), ok)
		slices.Sort(d.Shadowed)
		if !slices.Equal(d.Shadowed, []string{gateway.LimitPerHour, gateway.LimitRate}) {
			t.Fatalf("shadowed %v", d.Shadowed)
		}
		if n := sent(t, s, ten); n != 4 {
			t.Fatalf("sent %d; want 4", n)
		}
	}},
	{"per-recipient-domain rate", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{PerDomainRate: 1, PerDomainBurst: 2}
		admit(t, s, ten, l, []string{"a@x.example", "b@X.example", "c@y.example"}, ok)
		admit(t, s, ten, l, []string{"c@x.example"}, want{reason: store.ReasonPerDomainRate, retry: time.Second, cache: 0})
		admit(t, s, ten, l, []string{"d@y.example"}, ok)
		admit(t, s, ten, l, rcpts(3, "z.example", 0), want{reason: store.ReasonTooMany, retry: 0, cache: 0})
		c.Add(time.Second)
		admit(t, s, ten, l, []string{"c@x.example"}, ok)
	}},
	{"remaining after every decision", func(t *testing.T, s store.Store, c *Clock, ten string) {
		ctx := context.Background()
		rem := func(d store.Decision, want store.Remaining) {
			t.Helper()
			if d.Remaining != want {
				t.Fatalf("Remaining = %+v; want %+v", d.Remaining, want)
			}
		}
		const U = store.Unlimited
		l := gateway.Limits{PerHour: 8, PerDay: 15, FirstContactPerHour: 4, Rate: 1, Burst: 2}
		// Admitted: this message counted.
		rem(admit(t, s, ten, l, rcpts(3, "a.example", 0), ok), store.Remaining{Known: true, Hour: 5, Day: 12, FirstHour: 1, FirstDay: U})
		// Refused by the first-contact budget: nothing counted.
		rem(admit(t, s, ten, l, rcpts(2, "a.example", 3), want{reason: store.ReasonFirstHour, retry: -1, cache: -1}),
			store.Remaining{Known: true, Hour: 5, Day: 12, FirstHour: 1, FirstDay: U})
		// Known recipients: quotas only.
		rem(admit(t, s, ten, l, rcpts(3, "a.example", 0), ok), store.Remaining{Known: true, Hour: 2, Day: 9, FirstHour: 1, FirstDay: U})
		// Refused by the quota, and by the rate.
		rem(admit(t, s, ten, l, rcpts(1, "a.example", 0), want{reason: store.ReasonRate, retry: -1, cache: -1}),
			store.Remaining{Known: true, Hour: 2, Day: 9, FirstHour: 1, FirstDay: U})
		c.Add(3 * time.Second)
		rem(admit(t, s, ten, l, rcpts(3, "a.example", 0), want{reason: store.ReasonPerHour, retry: -1, cache: -1}),
			store.Remaining{Known: true, Hour: 2, Day: 9, FirstHour: 1, FirstDay: U})
		// Refused before the counters are read: not known.
		if err := s.SetFrozen(ctx, ten, true); err != nil {
			t.Fatal(err)
		}
		rem(admit(t, s, ten, l, rcpts(1, "a.example", 0), want{reason: store.ReasonFrozen, retry: -1, cache: -1}), store.Remaining{})
		if err := s.SetFrozen(ctx, ten, false); err != nil {
			t.Fatal(err)
		}
		// No windowed limit: every field unlimited.
		rem(admit(t, s, "free"+ten, gateway.Limits{}, rcpts(2, "a.example", 0), ok), store.Remaining{Known: true, Hour: U, Day: U, FirstHour: U, FirstDay: U})
		// A shadowed limit run over reads 0.
		sl := gateway.Limits{PerHour: 2, FirstContactPerDay: 1, Shadow: []string{gateway.LimitPerHour, gateway.LimitFirstContactPerDay}}
		rem(admit(t, s, "shadow"+ten, sl, rcpts(3, "a.example", 0), ok), store.Remaining{Known: true, Hour: 0, Day: U, FirstHour: U, FirstDay: 0})
	}},
	{"added usage counts in the windows of the spend", func(t *testing.T, s store.Store, c *Clock, ten string) {
		ctx := context.Background()
		add := func(at time.Time, u store.Usage) {
			t.Helper()
			if err := s.AddUsage(ctx, ten, at, u); err != nil {
				t.Fatalf("AddUsage(%v, %+v): %v", at, u, err)
			}
		}
		usage := func(want store.Usage) {
			t.Helper()
			if u, err := s.Usage(ctx, ten); err != nil || u != want {
				t.Fatalf("Usage = %+v, %v; want %+v", u, err, want)
			}
		}
		all := func(rcpts, firsts int64) store.Usage {
			return store.Usage{Hour: rcpts, Day: rcpts, FirstContactHour: firsts, FirstContactDay: firsts}
		}
		l := gateway.Limits{PerHour: 10, PerDay: 20, FirstContactPerHour: 5, FirstContactPerDay: 8}
		add(c.Now(), all(6, 3))
		usage(all(6, 3))
		// Admission sees the added usage.
		admit(t, s, ten, l, rcpts(3, "a.example", 0), want{reason: store.ReasonFirstHour, retry: -1, cache: -1})
		d := admit(t, s, ten, l, rcpts(2, "a.example", 0), ok)
		if want := (store.Remaining{Known: true, Hour: 2, Day: 12, FirstHour: 0, FirstDay: 3}); d.Remaining != want {
			t.Fatalf("Remaining = %+v; want %+v", d.Remaining, want)
		}
		// A spend in the previous hour of the same day: the day only.
		add(c.Now().Add(-time.Hour), all(1, 1))
		usage(store.Usage{Hour: 8, Day: 9, FirstContactHour: 5, FirstContactDay: 6})
		// A spend ahead of the store's clock counts now; each counter gets
		// its own figure.
		add(c.Now().Add(2*time.Hour), store.Usage{Hour: 1, FirstContactDay: 2})
		usage(store.Usage{Hour: 9, Day: 9, FirstContactHour: 5, FirstContactDay: 8})
		// A spend of the previous day: nothing.
		add(c.Now().Add(-24*time.Hour), all(5, 5))
		add(c.Now(), store.Usage{})
		usage(store.Usage{Hour: 9, Day: 9, FirstContactHour: 5, FirstContactDay: 8})
		for _, bad := range []struct {
			tenant string
			u      store.Usage
		}{{ten, store.Usage{Hour: -1}}, {ten, store.Usage{FirstContactDay: -1}}, {ten, store.Usage{Day: store.MaxUsageAdd + 1}},
			{"", all(1, 1)}, {"a{b", all(1, 1)}} {
			if err := s.AddUsage(ctx, bad.tenant, c.Now(), bad.u); err == nil {
				t.Fatalf("AddUsage(%q, %+v) accepted", bad.tenant, bad.u)
			}
		}
		// The next hour starts from the day's count.
		c.Add(time.Hour)
		usage(store.Usage{Day: 9, FirstContactDay: 8})
		add(c.Now(), all(2, 2))
		usage(store.Usage{Hour: 2, Day: 11, FirstContactHour: 2, FirstContactDay: 10})
	}},
	{"a recipient stays known for the whole memory", knownForTheWholeMemory},
	{"concurrent admissions are decided one after another", concurrentLimits},
	{"sent counter per minute", func(t *testing.T, s store.Store, c *Clock, ten string) {
		l := gateway.Limits{}
		admit(t, s, ten, l, rcpts(3, "a.example", 0), ok)
		c.Add(time.Minute)
		admit(t, s, ten, l, rcpts(4, "a.example", 0), ok)
		ctx := context.Background()
		if n, err := s.Sent(ctx, ten, Start, Start); err != nil || n != 3 {
			t.Fatalf("first minute %d, %v", n, err)
		}
		if n, err := s.Sent(ctx, ten, Start, c.Now()); err != nil || n != 7 {
			t.Fatalf("two minutes %d, %v", n, err)
		}
	}},
}
