package guard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
)

// TestMinuteCountsOutliveTrips: the dashboard's bounces per send minute
// are kept whatever restarts the breaker's window (a trip, a reset), for
// the tenant and for the account guard, and minutes older than
// feedbackKeep are dropped.
func TestMinuteCountsOutliveTrips(t *testing.T) {
	acct := breaker.AccountDefaults()
	e := newEnv(t, Options{Account: &acct}, map[string]breaker.Config{"acme": breaker.TenantDefaults()})
	ctx := context.Background()
	e.admit(t, "acme", 200, 0)
	minute := e.clock.Now().Unix() / 60
	for i := range 40 { // 40 of 200: the fast rule trips at 25
		e.bounce(t, "acme", fmt.Sprintf("r%d@x.example", i), feedback.BouncePermanent)
	}
	st, err := e.g.Status(ctx, "acme")
	if err != nil || len(st.Trips) == 0 {
		t.Fatalf("no trip: %+v %v", st, err)
	}
	if err := e.g.Reset(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	got, err := e.g.MinuteCounts(ctx, "acme")
	if err != nil || got[minute].Bounces != 40 {
		t.Fatalf("after the trip and a reset: minute %d %+v, %v; want 40 bounces", minute, got[minute], err)
	}
	_, am, on, err := e.g.AccountStatus(ctx)
	if err != nil || !on || am[minute].Bounces != 40 || am[minute].Sent != 200 {
		t.Fatalf("account minute %+v (on %v, %v); want 200 sent, 40 bounces", am[minute], on, err)
	}
	e.clock.Add(feedbackKeep + time.Minute)
	e.admit(t, "acme", 1, 1000)
	e.bounce(t, "acme", "late@x.example", feedback.BouncePermanent)
	got, _ = e.g.MinuteCounts(ctx, "acme")
	if _, ok := got[minute]; ok {
		t.Fatalf("minute %d kept past %v: %+v", minute, feedbackKeep, got)
	}
}
