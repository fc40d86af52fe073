package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/breaker"
)

// TestFirstContactWindowTwoReplicas: two replicas on one real Redis, SES
// (sestest) publishing Delivery and Bounce events to them in turn. The
// window holds first contacts back once full (429 first_contact_limited
// with Retry-After) on either replica, Delivery events grow it, hard
// bounces halve it, and known recipients always pass.
func TestFirstContactWindowTwoReplicas(t *testing.T) {
	// A sample of 12 settled first contacts: the 4 of the first round and
	// the 8 of the second, one of which bounces (8% > 5%).
	w := gateway.FirstContactWindow{Initial: 4, Min: 2, Max: 100, Threshold: 100, OutstandingTimeout: time.Minute, Sample: 12, ShrinkBounceRate: 0.05}
	fs := startFeedbackStackWith(t, 2, map[string]breaker.Config{"app": breaker.TenantDefaults()}, fbOptions{
		limits: map[string]gateway.Limits{"app": {FirstContactWindow: w}},
		// events late enough to fill the window before any arrives
		events: sestest.EventOptions{Deliveries: true, Latency: &sestest.Latency{Fixed: 1500 * time.Millisecond}},
	})
	ctx := context.Background()
	window := func() (float64, int64) {
		st, err := fs.replicas[0].guard.Window(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		return st.Window, st.Outstanding
	}
	// 4 first contacts over both replicas fill the window of 4.
	for i := range 4 {
		if a := fs.send(t, i%2, "app", fmt.Sprintf("user%d@list.example", i)); a.code() != "ok" {
			t.Fatalf("first contact %d: %d %s", i, a.status, a.code())
		}
	}
	for r := range 2 {
		a := fs.send(t, r, "app", fmt.Sprintf("extra%d@list.example", r))
		if a.status != 429 || a.code() != "first_contact_limited" || a.retryAfter == "" {
			t.Fatalf("replica %d over the window: %d %s retry-after %q", r, a.status, a.code(), a.retryAfter)
		}
		if a := fs.send(t, r, "app", "user0@list.example"); a.code() != "ok" {
			t.Fatalf("replica %d held back a known recipient: %s", r, a.code())
		}
	}
	// The 4 Deliveries arrive: the window grows to 8, nothing outstanding.
	waitUntil(t, "deliveries", 10*time.Second, func() bool { w, out := window(); return w == 8 && out == 0 })
	// 8 more fit now (one still outstanding counts), a 9th does not.
	for i := range 8 {
		to := fmt.Sprintf("more%d@list.example", i)
		if i == 7 {
			to = "bounce7@list.example"
		}
		if a := fs.send(t, i%2, "app", to); a.code() != "ok" {
			t.Fatalf("after deliveries, first contact %d: %s", i, a.code())
		}
	}
	if a := fs.send(t, 1, "app", "ninth@list.example"); a.code() != "first_contact_limited" {
		t.Fatalf("9th over a window of 8: %s", a.code())
	}
	// 7 Deliveries (+1 each) and one hard bounce, in any order: the 12th
	// settled first contact ends the epoch with 1 of 12 bounced (8% > 5%),
	// so the window is halved once, after the growth: (8+7)/2 = 7; never
	// the 15 of no shrink.
	waitUntil(t, "events of the second round", 10*time.Second, func() bool { _, out := window(); return out == 0 })
	got, _ := window()
	if got != 7 {
		t.Fatalf("window %v after 7 deliveries and a hard bounce; want it halved once at the end of the epoch (7)", got)
	}
	t.Logf("window after 7 deliveries and a hard bounce: %v", got)
}
