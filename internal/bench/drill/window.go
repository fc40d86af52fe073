package drill

import (
	"fmt"
	"time"

	"github.com/sesgate/sesgate/internal/sestest"
)

// latencyFloor is the shortest event latency of the scenario.
func (s *Scenario) latencyFloor() time.Duration {
	if s.EventLatency != nil {
		return s.EventLatency.Floor()
	}
	return s.EventDelay
}

// latencyCeil is the longest event latency of the scenario (how long to
// wait for the last events).
func (s *Scenario) latencyCeil() time.Duration {
	if l := s.EventLatency; l != nil {
		switch {
		case l.Fixed > 0:
			return l.Fixed
		case l.Max > 0:
			return l.Max
		}
		return sestest.MaxEventDelay
	}
	return s.EventDelay
}

// WindowBound is the most first contacts the victim's first-contact
// window lets through in the scenario, all its senders together (the
// attacker's included), or 0 when the victim has no window or the
// scenario's events can arrive at once (latency floor 0).
//
// The derivation: let L be the shortest time from a send to its first
// contact leaving the outstanding set, min(latency floor,
// outstanding_timeout). What was sent within the last L is all still
// outstanding, and every admission found outstanding plus its own new
// recipients within the window (or nothing outstanding: recipients per
// message, 1 in the drill). The window is at most min(max, initial + D),
// D the Deliveries settled so far, each of which is a first contact sent
// at least L earlier. So with S(t) the first contacts sent by t,
//
//	S(t) <= S(t-L) + min(max, initial + S(t-L)),
//
// and over the run's T = duration, in rounds of L:
//
//	S_0 = 0, S_k = S_{k-1} + min(max, initial + S_{k-1}), bound = S_ceil(T/L).
//
// Only Deliveries grow the window; hard bounces (by epoch, when more
// than shrink_bounce_rate of a sample bounced) and complaints only shrink
// it, and above the threshold it grows by 1/window per Delivery, so the
// real figure is far below: the bound assumes every first contact
// delivered, whatever the shrink rule.
func (s *Scenario) WindowBound() int64 {
	v := s.Victim()
	if v == nil || v.Limits.FirstContactWindow == nil {
		return 0
	}
	w := v.Limits.FirstContactWindow.Resolved()
	L := min(s.latencyFloor(), w.OutstandingTimeout)
	if L <= 0 {
		return 0
	}
	rounds := int64((s.Duration + L - 1) / L)
	init := max(w.Initial, w.Min, 1)
	var sum int64
	for range rounds {
		sum += min(w.Max, init+sum)
		if sum > 1<<40 {
			break
		}
	}
	return sum
}

// windowProblems checks the victim-independent window keys of t.
func (t *Tenant) windowProblems(key string) []string {
	if t.Limits.FirstContactWindow == nil {
		return nil
	}
	return t.Limits.FirstContactWindow.Problems(key + ".limits.first_contact_window")
}

// latencyText says when events arrive, for the log line.
func (s *Scenario) latencyText() string {
	l := s.EventLatency
	switch {
	case l == nil:
		return s.EventDelay.String()
	case l.Fixed > 0:
		return l.Fixed.String()
	}
	return fmt.Sprintf("median %v (sigma %g, %v..%v)", l.Median, l.Sigma, l.Min, l.Max)
}
