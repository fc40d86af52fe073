package guard

import (
	"fmt"
	"time"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// TimelineEntry is one step of a breaker's life, as the dashboard's
// timeline shows it. Event is one of: trip, forced_open, half_open, probe
// (probes seen while half-open: their recipients, hard bounces and
// complaints since the last entry), probe_passed (half-open closed),
// probe_failed (half-open reopened), reset, closed, warning,
// warning_cleared.
type TimelineEntry struct {
	At              time.Time          `json:"at"`
	Event           string             `json:"event"`
	From            store.BreakerState `json:"from,omitempty"`
	To              store.BreakerState `json:"to,omitempty"`
	Reason          string             `json:"reason,omitempty"`
	ProbeSent       int64              `json:"probe_sent,omitempty"`
	ProbeBounces    int64              `json:"probe_bounces,omitempty"`
	ProbeComplaints int64              `json:"probe_complaints,omitempty"`
}

// maxTimeline caps the timeline a breaker record keeps (the newest stay):
// at most a few KB of the record's data, in the shared store, so every
// replica shows the same.
const maxTimeline = 50

// noteTimeline appends what one update did to d.Timeline: each change,
// then the probes seen while half-open (before is the snapshot before the
// update). The first nOp changes are the operator's command's, named op
// (noted even when it changed nothing).
func (d *data) noteTimeline(before, after breaker.Snapshot, changes []breaker.Change, nOp int, op string, now time.Time) {
	for i, c := range changes {
		e := TimelineEntry{At: c.At, Event: changeEvent(c), From: c.From, To: c.To, Reason: c.Reason}
		if i < nOp && op != "" {
			e.Event = op
		}
		if c.From == store.HalfOpen { // the probe's outcome: what was judged
			e.ProbeSent, e.ProbeBounces, e.ProbeComplaints = c.ProbeSent, c.ProbeBounces, c.ProbeComplaints
		}
		d.Timeline = append(d.Timeline, e)
	}
	if op != "" && nOp == 0 {
		d.Timeline = append(d.Timeline, TimelineEntry{At: now, Event: op, From: after.State, To: after.State, Reason: "nothing to change"})
	}
	// The probes seen while half-open since the last entry (counted from
	// zero when this update began the half-open phase).
	if after.State == store.HalfOpen {
		var base breaker.Snapshot
		if before.State == store.HalfOpen && before.HalfOpenSince == after.HalfOpenSince {
			base = before
		}
		ds, db, dc := after.ProbeSent-base.ProbeSent, after.ProbeBounces-base.ProbeBounces, after.ProbeComplaints-base.ProbeComplaints
		if ds > 0 || db > 0 || dc > 0 {
			d.Timeline = append(d.Timeline, TimelineEntry{At: now, Event: "probe", From: store.HalfOpen, To: store.HalfOpen,
				Reason:    fmt.Sprintf("probes: %d recipients sent, %d hard bounces, %d complaints (so far %d hard bounces of %d)", ds, db, dc, after.ProbeBounces, after.ProbeSent),
				ProbeSent: ds, ProbeBounces: db, ProbeComplaints: dc})
		}
	}
	if len(d.Timeline) > maxTimeline {
		d.Timeline = d.Timeline[len(d.Timeline)-maxTimeline:]
	}
}

// changeEvent names a change as the timeline (and the log) does.
func changeEvent(c breaker.Change) string {
	switch {
	case c.To == store.ForcedOpen:
		return "forced_open"
	case c.From == store.HalfOpen && c.To == store.Open:
		return "probe_failed"
	case c.From == store.HalfOpen && c.To == store.Closed:
		return "probe_passed"
	case c.To == store.Open:
		return "trip"
	case c.To == store.HalfOpen:
		return "half_open"
	case c.From == store.Closed && c.To == store.Closed && c.Warning:
		return "warning"
	case c.From == store.Closed && c.To == store.Closed:
		return "warning_cleared"
	}
	return "closed"
}

// timeline returns d's timeline newest first (never nil).
func (d *data) timeline() []TimelineEntry {
	out := make([]TimelineEntry, len(d.Timeline))
	for i, e := range d.Timeline {
		out[len(out)-1-i] = e
	}
	return out
}
