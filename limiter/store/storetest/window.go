package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// WindowPair returns two clients of one fresh store reading clock (two
// connections to one Redis; the same embedded store twice), both
// implementing store.WindowStore.
type WindowPair func(t *testing.T, clock *Clock) (store.Store, store.Store)

// testWindow is the window the scenarios use: start 4, floor 2, cap 10,
// slow start below 6, outstanding for a minute.
var testWindow = gateway.FirstContactWindow{Initial: 4, Min: 2, Max: 10, Threshold: 6, OutstandingTimeout: time.Minute}

// together runs f for g = 0..7 at once and returns when all are done; the
// race scenarios give odd g the second client.
func together(f func(g int)) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() { f(g) })
	}
	wg.Wait()
}

// RunWindow runs the first-contact window scenarios (store/window.go)
// against stores from newPair.
func RunWindow(t *testing.T, newPair WindowPair) {
	ctx := context.Background()
	get := func(t *testing.T) (store.Store, store.WindowStore, store.Store, *Clock) {
		c := NewClock(Start)
		a, b := newPair(t, c)
		w, ok := a.(store.WindowStore)
		if !ok {
			t.Fatal("store does not implement store.WindowStore")
		}
		return a, w, b, c
	}
	lim := gateway.Limits{FirstContactWindow: testWindow}
	settle := func(t *testing.T, w store.WindowStore, ten string, o store.Settle, to ...string) store.SettleResult {
		t.Helper()
		r, err := w.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ten, Outcome: o, Recipients: to, Window: testWindow})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	status := func(t *testing.T, w store.WindowStore, ten string) store.WindowStatus {
		t.Helper()
		st, err := w.FirstContactWindow(ctx, ten, testWindow)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	full := want{reason: store.ReasonFirstWindow, retry: store.WindowRetry, cache: 0}

	t.Run("outstanding first contacts fill the window, known recipients pass", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-fill"
		if st := status(t, w, ten); st.Window != 4 || st.Threshold != 6 || st.Outstanding != 0 {
			t.Fatalf("fresh status %+v; want window 4, threshold 6, nothing outstanding", st)
		}
		admit(t, s, ten, lim, rcpts(3, "x.example", 0), ok)
		admit(t, s, ten, lim, rcpts(2, "x.example", 3), full) // 3 + 2 > 4
		d := admit(t, s, ten, lim, rcpts(1, "x.example", 3), ok)
		if d.NewRecipients != 1 {
			t.Fatalf("new %d; want 1", d.NewRecipients)
		}
		admit(t, s, ten, lim, rcpts(1, "x.example", 4), full)
		// Known recipients are never held back, alone or with each other.
		for range 5 {
			admit(t, s, ten, lim, rcpts(4, "x.example", 0), ok)
		}
		// A refusal counts nothing: the same message with a known address
		// and a new one is refused whole.
		admit(t, s, ten, lim, []string{"user0@x.example", "new@x.example"}, full)
		if st := status(t, w, ten); st.Outstanding != 4 || st.Held != 3 {
			t.Fatalf("status %+v; want 4 outstanding, 3 held", st)
		}
	})
	t.Run("a message finding nothing outstanding passes whatever its size", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-big"
		admit(t, s, ten, lim, rcpts(12, "x.example", 0), ok) // above Max
		admit(t, s, ten, lim, rcpts(1, "x.example", 12), full)
		if st := status(t, w, ten); st.Outstanding != 12 {
			t.Fatalf("outstanding %d; want 12", st.Outstanding)
		}
		r := settle(t, w, ten, store.SettleNeutral, rcpts(12, "x.example", 0)...)
		if r.Settled != 12 || r.Status.Window != 4 || r.Status.Outstanding != 0 {
			t.Fatalf("neutral settle %+v; want 12 settled, window unchanged", r)
		}
		admit(t, s, ten, lim, rcpts(4, "x.example", 12), ok)
	})
	t.Run("deliveries grow: slow start then additive, up to max; duplicates change nothing", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-grow"
		admit(t, s, ten, lim, rcpts(4, "x.example", 0), ok)
		r := settle(t, w, ten, store.SettleDelivery, "User0@x.example", "user1@x.example")
		if r.Settled != 2 || r.Status.Window != 6 || r.Status.Outstanding != 2 || r.Status.Deliveries != 2 {
			t.Fatalf("after 2 deliveries %+v; want window 6 (4+2), 2 outstanding", r)
		}
		// The same event again: nothing outstanding to settle, no growth.
		r = settle(t, w, ten, store.SettleDelivery, "user0@x.example", "user1@x.example")
		if r.Settled != 0 || r.Status.Window != 6 || r.Status.Deliveries != 4 {
			t.Fatalf("duplicate delivery %+v; want no change but the count", r)
		}
		// At the threshold: +1/window per delivery.
		r = settle(t, w, ten, store.SettleDelivery, "user2@x.example")
		if want := 6 + 1.0/6; r.Status.Window != want {
			t.Fatalf("window %v; want %v (additive above the threshold)", r.Status.Window, want)
		}
		// A delivery of a recipient that never was outstanding grows nothing.
		r = settle(t, w, ten, store.SettleDelivery, "stranger@x.example")
		if r.Settled != 0 || r.Status.Window != 6+1.0/6 {
			t.Fatalf("stranger delivery %+v", r)
		}
		// Up to Max: 10.
		big := gateway.Limits{FirstContactWindow: gateway.FirstContactWindow{Initial: 4, Min: 2, Max: 10, Threshold: 100, OutstandingTimeout: time.Minute}}
		ten2 := "win-cap"
		admit(t, s, ten2, big, rcpts(20, "y.example", 0), ok)
		r, err := w.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ten2, Outcome: store.SettleDelivery, Recipients: rcpts(20, "y.example", 0), Window: big.FirstContactWindow})
		if err != nil || r.Settled != 20 || r.Status.Window != 10 {
			t.Fatalf("capped growth %+v, %v; want window 10", r, err)
		}
		admit(t, s, ten2, big, rcpts(1, "y.example", 20), ok)
		admit(t, s, ten2, big, rcpts(9, "y.example", 21), ok)
		admit(t, s, ten2, big, rcpts(1, "y.example", 30), full)
	})
	t.Run("a complaint halves the window at once, once per recipient, down to the floor", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-shrink"
		admit(t, s, ten, lim, rcpts(4, "x.example", 0), ok)
		settle(t, w, ten, store.SettleDelivery, rcpts(2, "x.example", 0)...) // window 6
		r := settle(t, w, ten, store.SettleComplaint, "user2@x.example")
		if r.Settled != 1 || !r.Shrunk || r.Status.Window != 3 || r.Status.Threshold != 3 || r.Status.Outstanding != 1 {
			t.Fatalf("after a complaint %+v; want window 3, threshold 3, 1 outstanding", r)
		}
		r = settle(t, w, ten, store.SettleComplaint, "user2@x.example") // duplicate
		if r.Shrunk || r.Status.Window != 3 {
			t.Fatalf("duplicate complaint shrank again: %+v", r)
		}
		// A complaint about a delivered (settled) recipient still shrinks, once.
		r = settle(t, w, ten, store.SettleComplaint, "user0@x.example")
		if r.Settled != 0 || r.Status.Window != 2 {
			t.Fatalf("complaint %+v; want window 2 (the floor)", r)
		}
		r = settle(t, w, ten, store.SettleComplaint, "user1@x.example")
		if r.Status.Window != 2 || r.Status.Threshold != 2 {
			t.Fatalf("below the floor: %+v", r)
		}
		// 1 outstanding, window 2: one more new recipient fits, two do not.
		admit(t, s, ten, lim, rcpts(2, "x.example", 10), full)
		admit(t, s, ten, lim, rcpts(1, "x.example", 10), ok)
		// Above the (new) threshold growth is additive.
		r = settle(t, w, ten, store.SettleDelivery, "user10@x.example")
		if r.Status.Window != 2.5 {
			t.Fatalf("window %v; want 2.5", r.Status.Window)
		}
	})
	t.Run("hard bounces at 2% never shrink the window", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-2pct"
		bw := gateway.FirstContactWindow{Initial: 4, Min: 2, Max: 1000, Threshold: 1000, OutstandingTimeout: time.Minute} // sample 20, 5%
		l := gateway.Limits{FirstContactWindow: bw}
		// 200 first contacts, one at a time; every 50th hard-bounces. Each
		// epoch of 20 has at most one bounce: 5%, not above it.
		for i := range 200 {
			to := fmt.Sprintf("user%d@x.example", i)
			admit(t, s, ten, l, []string{to}, ok)
			o := store.SettleDelivery
			if i%50 == 7 {
				o = store.SettleBounce
			}
			r, err := w.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ten, Outcome: o, Recipients: []string{to}, Window: bw})
			if err != nil {
				t.Fatal(err)
			}
			if r.Settled != 1 || r.Shrunk || r.Status.EpochDelivered+r.Status.EpochBounced != int64((i+1)%20) {
				t.Fatalf("settle %d (%s): %+v; want 1 settled, no shrink, %d in the epoch", i, o, r, (i+1)%20)
			}
		}
		if st, err := w.FirstContactWindow(ctx, ten, bw); err != nil || st.Window != 4+196 || st.Threshold != 1000 {
			t.Fatalf("status %+v, %v; want window 200 (4 + 196 deliveries), threshold 1000", st, err)
		}
	})
	t.Run("hard bounces at 30% halve the window once per sample; duplicates count nothing", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-30pct"
		bw := gateway.FirstContactWindow{Initial: 100, Min: 2, Max: 1000, Threshold: 1000, OutstandingTimeout: time.Minute, Sample: 10, ShrinkBounceRate: 0.05}
		l := gateway.Limits{FirstContactWindow: bw}
		admit(t, s, ten, l, rcpts(40, "x.example", 0), ok)
		one := func(o store.Settle, to string) store.SettleResult {
			t.Helper()
			r, err := w.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ten, Outcome: o, Recipients: []string{to}, Window: bw})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		shrinks := 0
		for e := range 4 {
			// Each epoch: 3 bounces first (no shrink before the sample is
			// complete), then 7 deliveries; the 10th settles the epoch.
			for i := range 10 {
				to := fmt.Sprintf("user%d@x.example", e*10+i)
				o := store.SettleDelivery
				if i < 3 {
					o = store.SettleBounce
				}
				st, err := w.FirstContactWindow(ctx, ten, bw)
				if err != nil {
					t.Fatal(err)
				}
				before := st.Window
				r := one(o, to)
				if r.Shrunk != (i == 9) {
					t.Fatalf("epoch %d settle %d: %+v; want a shrink only on the 10th", e, i, r)
				}
				if i == 2 && (r.Status.Window != before || r.Status.EpochBounced != 3 || r.Status.EpochDelivered != 0) {
					t.Fatalf("after 3 bounces %+v; want window %v, 3 bounced in the epoch", r, before)
				}
				if i == 2 {
					// The same bounce again: nothing outstanding, nothing counted.
					if d := one(store.SettleBounce, to); d.Settled != 0 || d.Status.EpochBounced != 3 {
						t.Fatalf("duplicate bounce %+v; want nothing counted", d)
					}
				}
				if r.Shrunk {
					shrinks++
					if e == 0 && (r.Status.Window != 53 || r.Status.Threshold == 53) {
						t.Fatalf("first shrink %+v; want window 53 (floor((100+7)/2)) and the threshold kept (a bad epoch is not a complaint)", r)
					}
					if r.Status.EpochDelivered != 0 || r.Status.EpochBounced != 0 {
						t.Fatalf("epoch not reset: %+v", r)
					}
				}
			}
		}
		if shrinks != 4 {
			t.Fatalf("%d shrinks; want 4", shrinks)
		}
	})
	t.Run("epochs reset: a bounce counts in one epoch only", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-epoch"
		// 15%: one bounce in 10 is fine, two are not. Were epochs not
		// reset, 3 bounces in 20 (15%) would never shrink.
		bw := gateway.FirstContactWindow{Initial: 8, Min: 2, Max: 1000, Threshold: 1000, OutstandingTimeout: time.Minute, Sample: 10, ShrinkBounceRate: 0.15}
		l := gateway.Limits{FirstContactWindow: bw}
		admit(t, s, ten, l, rcpts(20, "x.example", 0), ok)
		set := func(o store.Settle, from, n int) store.SettleResult {
			t.Helper()
			r, err := w.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ten, Outcome: o, Recipients: rcpts(n, "x.example", from), Window: bw})
			if err != nil || r.Settled != n {
				t.Fatalf("settle %+v, %v; want %d settled", r, err, n)
			}
			return r
		}
		set(store.SettleBounce, 0, 1)
		if r := set(store.SettleDelivery, 1, 9); r.Shrunk || r.Status.Window != 17 || r.Status.EpochDelivered != 0 || r.Status.EpochBounced != 0 {
			t.Fatalf("end of the first epoch %+v; want window 17 (8+9), no shrink, a new epoch", r)
		}
		if r := set(store.SettleBounce, 10, 2); r.Status.EpochBounced != 2 || r.Status.EpochDelivered != 0 {
			t.Fatalf("second epoch %+v; want 2 bounced, 0 delivered", r)
		}
		if r := set(store.SettleDelivery, 12, 8); !r.Shrunk || r.Status.Window != 12 || r.Status.Threshold != 1000 {
			t.Fatalf("end of the second epoch %+v; want a shrink to floor((17+8)/2) = 12, the threshold kept at 1000", r)
		}
		// Deliveries then grow it by one each again (slow start up to the
		// kept threshold), not by 1/window.
		admit(t, s, ten, l, rcpts(4, "x.example", 20), ok)
		if r := set(store.SettleDelivery, 20, 4); r.Status.Window != 16 {
			t.Fatalf("after 4 deliveries %+v; want 16 (slow start again below the threshold)", r)
		}
	})
	t.Run("two clients settling bounces at once shrink once per sample", func(t *testing.T) {
		a, w, b, _ := get(t)
		wb, ok2 := b.(store.WindowStore)
		if !ok2 {
			t.Fatal("second client does not implement store.WindowStore")
		}
		ten := "win-race-bounce"
		bw := gateway.FirstContactWindow{Initial: 64, Min: 2, Max: 1000, Threshold: 1000, OutstandingTimeout: time.Minute, Sample: 10, ShrinkBounceRate: 0.05}
		admit(t, a, ten, gateway.Limits{FirstContactWindow: bw}, rcpts(40, "x.example", 0), ok)
		var shrinks atomic.Int64
		together(func(g int) {
			c := w
			if g%2 == 1 {
				c = wb
			}
			for i := range 5 {
				r, err := c.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ten, Outcome: store.SettleBounce,
					Recipients: rcpts(1, "x.example", g*5+i), Window: bw})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Shrunk {
					shrinks.Add(1)
				}
			}
		})
		st, err := w.FirstContactWindow(ctx, ten, bw)
		if err != nil {
			t.Fatal(err)
		}
		if shrinks.Load() != 4 || st.Window != 4 || st.Outstanding != 0 || st.EpochBounced != 0 {
			t.Fatalf("%d shrinks, status %+v; want 4 shrinks (64 -> 4), nothing outstanding", shrinks.Load(), st)
		}
	})
	t.Run("outstanding entries expire without growing the window", func(t *testing.T) {
		s, w, _, c := get(t)
		ten := "win-expire"
		admit(t, s, ten, lim, rcpts(4, "x.example", 0), ok)
		c.Add(40 * time.Second)
		admit(t, s, ten, lim, rcpts(1, "x.example", 4), want{reason: store.ReasonFirstWindow, retry: store.WindowRetry, cache: 0})
		c.Add(19 * time.Second)
		// The oldest expires in 1 s: the retry says so.
		admit(t, s, ten, lim, rcpts(1, "x.example", 4), want{reason: store.ReasonFirstWindow, retry: time.Second, cache: 0})
		c.Add(time.Second)
		admit(t, s, ten, lim, rcpts(4, "x.example", 4), ok)
		st := status(t, w, ten)
		if st.Expired != 4 || st.Outstanding != 4 || st.Window != 4 || st.Deliveries != 0 {
			t.Fatalf("status %+v; want 4 expired, 4 outstanding, window 4, no deliveries", st)
		}
		// A late delivery of an expired entry settles nothing and grows nothing.
		if r := settle(t, w, ten, store.SettleDelivery, "user0@x.example"); r.Settled != 0 || r.Status.Window != 4 {
			t.Fatalf("late delivery %+v", r)
		}
	})
	t.Run("shadow mode evaluates without enforcing", func(t *testing.T) {
		s, w, _, _ := get(t)
		ten := "win-shadow"
		sh := lim
		sh.Shadow = []string{gateway.LimitFirstContactWindow}
		admit(t, s, ten, sh, rcpts(4, "x.example", 0), ok)
		d := admit(t, s, ten, sh, rcpts(2, "x.example", 4), ok)
		if len(d.Shadowed) != 1 || d.Shadowed[0] != gateway.LimitFirstContactWindow {
			t.Fatalf("shadowed %v; want [%s]", d.Shadowed, gateway.LimitFirstContactWindow)
		}
		if st := status(t, w, ten); st.Outstanding != 6 || st.Held != 0 {
			t.Fatalf("status %+v; want 6 outstanding, none held", st)
		}
	})
	t.Run("with the static budget: both apply", func(t *testing.T) {
		s, _, _, _ := get(t)
		ten := "win-budget"
		l := lim
		l.FirstContactPerHour = 5
		admit(t, s, ten, l, rcpts(4, "x.example", 0), ok)
		admit(t, s, ten, l, rcpts(1, "x.example", 4), full)
		admit(t, s, ten, l, rcpts(2, "x.example", 4), want{reason: store.ReasonFirstHour, retry: -1, cache: 0})
	})
	t.Run("bad requests", func(t *testing.T) {
		_, w, _, _ := get(t)
		for _, r := range []store.SettleRequest{
			{Tenant: "", Outcome: store.SettleDelivery, Window: testWindow},
			{Tenant: "a", Outcome: "grow", Window: testWindow},
			{Tenant: "a", Outcome: store.SettleDelivery},
			{Tenant: "a", Outcome: store.SettleDelivery, Window: testWindow, Recipients: rcpts(store.MaxSettleRecipients+1, "x.example", 0)},
		} {
			if _, err := w.SettleFirstContacts(ctx, r); err == nil {
				t.Errorf("SettleFirstContacts(%+v) accepted", r)
			}
		}
	})
	t.Run("two clients at once never exceed the window", func(t *testing.T) {
		a, w, b, _ := get(t)
		ten := "win-race"
		wl := gateway.Limits{FirstContactWindow: gateway.FirstContactWindow{Initial: 7, Min: 2, Max: 50, Threshold: 50, OutstandingTimeout: time.Minute}}
		var admitted atomic.Int64
		together(func(g int) {
			s := a
			if g%2 == 1 {
				s = b
			}
			for i := range 10 {
				to := []string{fmt.Sprintf("g%d-%d@x.example", g, i), fmt.Sprintf("g%d-%d-b@x.example", g, i)}
				d, err := s.Admit(ctx, store.AdmitRequest{Tenant: ten, Recipients: to, Limits: wl})
				if err != nil {
					t.Error(err)
					return
				}
				if d.Admitted {
					admitted.Add(int64(d.NewRecipients))
				}
			}
		})
		st, err := w.FirstContactWindow(ctx, ten, wl.FirstContactWindow)
		if err != nil {
			t.Fatal(err)
		}
		// Messages of 2 new recipients into a window of 7: 3 messages.
		if admitted.Load() != 6 || st.Outstanding != 6 || st.Held != 80-3 {
			t.Fatalf("admitted %d new, status %+v; want 6 new, 6 outstanding, 77 held", admitted.Load(), st)
		}
	})
}
