package guard

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestTimelineProbesAndOutcomes: a breaker's timeline holds the warning,
// the trip, the half-open phase, each probe batch with its bounces, the
// probe's outcome, an operator's reset (even of a closed breaker) and
// forced open, newest first; a second guard on the same store (another
// replica) reads the same timeline.
func TestTimelineProbesAndOutcomes(t *testing.T) {
	c := breaker.TenantDefaults()
	c.FastMinBounces = 0
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": c})
	ctx := context.Background()
	e.admit(t, "acme", 100, 0)
	for i := range 5 {
		e.bounce(t, "acme", fmt.Sprintf("b%d@x.example", i), feedback.BouncePermanent)
	}
	e.clock.Add(16 * time.Minute) // past the open time: admission probes
	e.admit(t, "acme", 3, 1000)
	if err := e.g.Evaluate(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	e.bounce(t, "acme", "r1000@x.example", feedback.BouncePermanent) // 1: within ProbeMaxBounces
	e.clock.Add(11 * time.Minute)                                    // past ProbeHold
	if err := e.g.Evaluate(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := e.g.Reset(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := e.g.ForceOpen(ctx, "acme", "looks odd"); err != nil {
		t.Fatal(err)
	}
	st, err := e.g.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, x := range st.Timeline {
		events = append(events, x.Event)
	}
	want := []string{"forced_open", "reset", "probe_passed", "probe", "probe", "half_open", "trip", "warning"}
	if !slices.Equal(events, want) {
		t.Fatalf("timeline %v, want %v\n%+v", events, want, st.Timeline)
	}
	tl := st.Timeline
	if tl[4].ProbeSent != 3 || tl[4].ProbeBounces != 0 || tl[3].ProbeSent != 0 || tl[3].ProbeBounces != 1 {
		t.Fatalf("probes: %+v, %+v", tl[4], tl[3])
	}
	if tl[2].ProbeSent != 3 || tl[2].ProbeBounces != 1 || !strings.HasPrefix(tl[2].Reason, "probe passed") || tl[2].From != store.HalfOpen || tl[2].To != store.Closed {
		t.Fatalf("outcome: %+v", tl[2])
	}
	if tl[1].Reason != "nothing to change" || tl[0].Reason != "looks odd" || tl[0].To != store.ForcedOpen || !tl[6].At.Equal(tl[7].At) {
		t.Fatalf("operator entries: %+v, %+v", tl[1], tl[0])
	}
	// Another replica's guard on the same store shows the same.
	g2, err := New(Options{Store: e.st, Now: e.clock.Now, Config: func(string) (breaker.Config, bool) { return c, true }})
	if err != nil {
		t.Fatal(err)
	}
	st2, err := g2.Status(ctx, "acme")
	if err != nil || !slices.Equal(st2.Timeline, st.Timeline) {
		t.Fatalf("second replica: %+v %v", st2.Timeline, err)
	}
}

// TestTimelineProbeFailedAndCapped: a failed probe is noted with its
// counts, and the timeline keeps the newest maxTimeline entries.
func TestTimelineProbeFailedAndCapped(t *testing.T) {
	c := breaker.TenantDefaults()
	c.FastMinBounces, c.ForceAfter = 0, 0
	e := newEnv(t, Options{}, map[string]breaker.Config{"acme": c})
	ctx := context.Background()
	e.admit(t, "acme", 100, 0)
	for i := range 5 {
		e.bounce(t, "acme", fmt.Sprintf("b%d@x.example", i), feedback.BouncePermanent)
	}
	e.clock.Add(16 * time.Minute)
	e.admit(t, "acme", 2, 1000)
	for i := range 2 {
		e.bounce(t, "acme", fmt.Sprintf("r%d@x.example", 1000+i), feedback.BouncePermanent)
	}
	st, _ := e.g.Status(ctx, "acme")
	if x := st.Timeline[0]; x.Event != "probe_failed" || x.ProbeBounces != 2 || x.ProbeSent != 2 || x.To != store.Open {
		t.Fatalf("failed probe: %+v", st.Timeline)
	}
	for range maxTimeline {
		if err := e.g.Reset(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = e.g.Status(ctx, "acme")
	if len(st.Timeline) != maxTimeline || st.Timeline[maxTimeline-1].Event != "reset" {
		t.Fatalf("capped: %d entries, oldest %+v", len(st.Timeline), st.Timeline[len(st.Timeline)-1])
	}
}
