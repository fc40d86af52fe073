package limiter

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

const unl = store.Unlimited

// known is an admission whose Remaining is r.
func known(r store.Remaining) store.Decision {
	r.Known = true
	return store.Decision{Admitted: true, Remaining: r}
}

func rcptList(n int, from int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("r%d@x.example", from+i)
	}
	return out
}

func newDegraded(t *testing.T, fs *faultStore, c *clock) *Shared {
	t.Helper()
	s, err := NewShared(SharedOptions{Store: fs, Now: c.now, DegradedWindow: time.Hour, DegradedFraction: 0.5, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDegradedBudget: without the store, a replica admits at most its share
// (1/Replicas) of what the store last said the tenant had left, counted in
// recipients, every recipient a first contact; then it adds what it
// admitted to the store before the tenant's next admission.
func TestDegradedBudget(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name   string
		limits gateway.Limits
		last   *store.Remaining // nil: the store never answered for the tenant
		msgs   []int            // recipients of each message, in order
		want   string           // "ok" or the code, per message
		added  store.Usage      // what the reconcile adds
	}{
		{"quota left 20: 10 per replica", gateway.Limits{PerHour: 300},
			&store.Remaining{Hour: 20, Day: unl, FirstHour: unl, FirstDay: unl},
			[]int{3, 3, 3, 3, 1, 1}, "ok ok ok store_unavailable ok store_unavailable", store.Usage{Hour: 10}},
		{"daily quota binds", gateway.Limits{PerHour: 300, PerDay: 1000},
			&store.Remaining{Hour: 200, Day: 7, FirstHour: unl, FirstDay: unl},
			[]int{2, 2, 1}, "ok store_unavailable ok", store.Usage{Hour: 3, Day: 3}},
		{"first contacts spent: nothing", gateway.Limits{PerHour: 300, FirstContactPerHour: 40},
			&store.Remaining{Hour: 260, Day: unl, FirstHour: 0, FirstDay: unl},
			[]int{1, 10}, "store_unavailable store_unavailable", store.Usage{}},
		{"first contacts left 9: 4 per replica, every recipient new", gateway.Limits{FirstContactPerDay: 100},
			&store.Remaining{Hour: unl, Day: unl, FirstHour: unl, FirstDay: 9},
			[]int{3, 2, 1}, "ok store_unavailable ok", store.Usage{FirstContactDay: 4}},
		{"shadowed limits are not enforced, still counted", gateway.Limits{PerHour: 10, FirstContactPerHour: 5, Shadow: []string{gateway.LimitPerHour, gateway.LimitFirstContactPerHour}},
			&store.Remaining{Hour: 0, Day: unl, FirstHour: 0, FirstDay: unl},
			[]int{3}, "ok", store.Usage{Hour: 3, FirstContactHour: 3}},
		{"no windowed limit: the rate alone", gateway.Limits{},
			&store.Remaining{Hour: unl, Day: unl, FirstHour: unl, FirstDay: unl},
			[]int{50, 50}, "ok ok", store.Usage{}},
		{"no state: fraction of the quotas per replica", gateway.Limits{PerHour: 100, PerDay: 1000}, nil,
			[]int{25, 1}, "ok store_unavailable", store.Usage{Hour: 25, Day: 25}},
		{"no state with a first-contact budget: nothing", gateway.Limits{PerHour: 100, FirstContactPerDay: 1000}, nil,
			[]int{1}, "store_unavailable", store.Usage{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
			fs := &faultStore{}
			s := newDegraded(t, fs, c)
			ten := &gateway.Tenant{ID: "t", Limits: tc.limits}
			ten.Limits.Rate, ten.Limits.Burst = 1000, 1000 // out of the way
			ctx := context.Background()
			if tc.last != nil {
				fs.set(known(*tc.last), nil)
				if _, err := s.Admit(ctx, ten, rcptList(1, 1000)); err != nil {
					t.Fatal(err)
				}
			}
			fs.set(store.Decision{}, down)
			var got string
			var last time.Time // of the last degraded admission
			for i, n := range tc.msgs {
				c.t = c.t.Add(10 * time.Millisecond) // the degraded rate (250/s) allows it
				_, err := s.Admit(ctx, ten, rcptList(n, 100*i))
				if got != "" {
					got += " "
				}
				got += code(err)
				if err == nil {
					last = c.t
				}
			}
			if got != tc.want {
				t.Fatalf("answers %q; want %q", got, tc.want)
			}
			// Back: the degraded admissions reach the store first.
			fs.set(known(store.Remaining{Hour: unl, Day: unl, FirstHour: unl, FirstDay: unl}), nil)
			calls := fs.calls
			if _, err := s.Admit(ctx, ten, rcptList(1, 2000)); err != nil {
				t.Fatal(err)
			}
			var want []usageCall
			if tc.added != (store.Usage{}) {
				want = []usageCall{{"t", last, tc.added}}
			}
			if got := fs.added(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("added %v; want %v", got, want)
			}
			if fs.calls != calls+1 {
				t.Fatalf("%d admissions after the outage; want 1", fs.calls-calls)
			}
			if st := s.Stats(); tc.added != (store.Usage{}) && st.DegradedRecipients != st.Reconciled {
				t.Fatalf("stats %+v: degraded recipients not all reconciled", st)
			}
		})
	}
}

// TestDegradedReconcile: the budget is not refilled within an outage nor by
// a failed reconcile; spends in two hours are added to each; the store's
// next answer, less what is still to add, is the next budget; a tenant's
// limits changing drops its last known state; another tenant's success
// reconciles an idle tenant in the background.
func TestDegradedReconcile(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 2, 10, 59, 59, 0, time.UTC)}
	fs := &faultStore{}
	s := newDegraded(t, fs, c)
	ctx := context.Background()
	ten := &gateway.Tenant{ID: "t", Limits: gateway.Limits{PerHour: 300, Rate: 1000, Burst: 1000}}
	other := &gateway.Tenant{ID: "o", Limits: gateway.Limits{Rate: 1000, Burst: 1000}}
	admit := func(tn *gateway.Tenant, n int) string {
		t.Helper()
		c.t = c.t.Add(10 * time.Millisecond)
		_, err := s.Admit(ctx, tn, rcptList(n, 0))
		return code(err)
	}
	fs.set(known(store.Remaining{Hour: 40, Day: unl, FirstHour: unl, FirstDay: unl}), nil)
	admit(ten, 1) // 20 per replica

	fs.set(store.Decision{}, errors.New("down"))
	if got := admit(ten, 10); got != "ok" { // 10:59:59.02
		t.Fatalf("first: %s", got)
	}
	c.t = c.t.Add(time.Second) // the next hour
	if got := admit(ten, 10); got != "ok" {
		t.Fatalf("second: %s", got)
	}
	if got := admit(ten, 1); got != "store_unavailable" {
		t.Fatalf("budget spent: %s", got)
	}
	// Each message of the tenant tries the reconcile first, and fails: no
	// admission call on top.
	calls, adds := fs.calls, fs.addCalls
	admit(ten, 1)
	if fs.calls != calls || fs.addCalls != adds+1 {
		t.Fatalf("during the outage: %d admissions, %d adds; want 0, 1", fs.calls-calls, fs.addCalls-adds)
	}
	// RCPT does not ask the store during an outage.
	if err := s.CheckRecipient(ctx, ten, "a@x.example"); err != nil || fs.supCalls != 0 {
		t.Fatalf("CheckRecipient during the outage: %v after %d store calls", err, fs.supCalls)
	}

	// Another tenant's success starts the background reconcile.
	fs.set(known(store.Remaining{Hour: unl, Day: unl, FirstHour: unl, FirstDay: unl}), nil)
	if got := admit(other, 1); got != "ok" {
		t.Fatal(got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(fs.added()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	want := []usageCall{
		{"t", time.Date(2026, 3, 2, 10, 59, 59, 20_000_000, time.UTC), store.Usage{Hour: 10}},
		{"t", time.Date(2026, 3, 2, 11, 0, 0, 30_000_000, time.UTC), store.Usage{Hour: 10}},
	}
	if got := fs.added(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("added %v; want %v", got, want)
	}
	if st := s.Stats(); st.DegradedRecipients != 20 || st.Reconciled != 20 {
		t.Fatalf("stats %+v", st)
	}

	// A fresh answer is the next budget: 11 left, 5 per replica.
	fs.set(known(store.Remaining{Hour: 11, Day: unl, FirstHour: unl, FirstDay: unl}), nil)
	admit(ten, 1)
	fs.set(store.Decision{}, errors.New("down again"))
	if got := admit(ten, 6); got != "store_unavailable" {
		t.Fatalf("new budget, 6: %s", got)
	}
	if got := admit(ten, 5); got != "ok" {
		t.Fatalf("new budget, 5: %s", got)
	}
	// A policy reload lowering the quota drops the last known state: no
	// state, 0.5 x 20 / 2 = 5.
	ten.Limits.PerHour = 20
	if got := admit(ten, 6); got != "store_unavailable" {
		t.Fatalf("reloaded, 6: %s", got)
	}
	if got := admit(ten, 5); got != "ok" {
		t.Fatalf("reloaded, 5: %s", got)
	}
	// Reconcile reports the store's failure; nothing is lost.
	if err := s.Reconcile(ctx); err == nil {
		t.Fatal("Reconcile with the store down: no error")
	}
	fs.set(store.Decision{}, nil)
	if err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DegradedRecipients != 30 || st.Reconciled != 30 {
		t.Fatalf("stats %+v", st)
	}
}
