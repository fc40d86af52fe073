package breaker

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// Bucket counts recipients sent, hard bounces and complaints for one
// minute or hour. At is the unix minute (or hour) it covers.
type Bucket struct {
	At         int64 `json:"at"`
	Sent       int64 `json:"sent,omitempty"`
	Bounces    int64 `json:"bounces,omitempty"`
	Complaints int64 `json:"complaints,omitempty"`
}

// Snapshot is the whole state of a breaker, for a store to persist. The
// fields the admission call reads are State, OpenUntil and ProbeBudget.
type Snapshot struct {
	State store.BreakerState `json:"state"` // "" reads as closed
	// OpenUntil is when an open breaker turns half-open, unix ms; 0 unless
	// State is open.
	OpenUntil int64 `json:"open_until"`
	// ProbeBudget is how many recipients half_open still admits; while
	// open, the budget the half_open phase that follows starts with (so an
	// admission call may move open to half_open by itself once OpenUntil
	// passed, as the store's contract allows).
	ProbeBudget int    `json:"probe_budget"`
	Warning     bool   `json:"warning"`
	Reason      string `json:"reason,omitempty"`
	// Trips are the unix ms of the trips within the force window.
	Trips []int64 `json:"trips,omitempty"`
	// Since (unix ms): mail sent before it was judged by an earlier trip or
	// reset, and its late events are ignored.
	Since int64 `json:"since"`
	// Half-open probe: when it began, what the probes did.
	HalfOpenSince   int64 `json:"half_open_since,omitempty"`
	ProbeSent       int64 `json:"probe_sent,omitempty"`
	ProbeBounces    int64 `json:"probe_bounces,omitempty"`
	ProbeComplaints int64 `json:"probe_complaints,omitempty"`
	LastProbe       int64 `json:"last_probe,omitempty"`
	// Rings: send-time minutes over Window, send-time hours over
	// ComplaintWindow, event-time minutes over the longer of FastWindow and
	// ComplaintBurstWindow.
	Minutes []Bucket `json:"minutes"`
	Hours   []Bucket `json:"hours"`
	Events  []Bucket `json:"events"`
}

// Change is a state change, or the warning level turning on or off (From
// and To both closed).
type Change struct {
	From, To  store.BreakerState
	Warning   bool
	Reason    string
	At        time.Time
	OpenUntil time.Time // zero unless To is open
	// The probes judged, when From is half-open: recipients sent, hard
	// bounces and complaints of the half-open phase that ends.
	ProbeSent, ProbeBounces, ProbeComplaints int64
}

// Observation is one input of Step: Sent recipients sent at MailTime (the
// denominator), and an event's hard bounces and complaints of mail sent at
// MailTime, received at EventTime. One Observation may carry both; the
// sent recipients count first.
type Observation struct {
	MailTime    time.Time
	EventTime   time.Time
	Sent        int
	HardBounces int
	Complaints  int
}

// Step is the state machine: it applies the time-driven transitions due at
// now (open to half-open, the half-open judgement), then each observation
// in order (tripping, warning, closing or reopening as the rules say), and
// returns the new snapshot and the changes, in order. s is not modified.
// Rings whose size no longer matches c start empty. It fails for an
// invalid c (Config.Validate) or an unknown state.
func Step(c Config, s Snapshot, now time.Time, obs ...Observation) (Snapshot, []Change, error) {
	if err := c.Validate(); err != nil {
		return s, nil, err
	}
	switch s.State {
	case store.Closed, store.Open, store.HalfOpen, store.ForcedOpen, "":
	default:
		return s, nil, fmt.Errorf("breaker: unknown state %q", s.State)
	}
	m := &machine{cfg: c, now: now, s: clone(s)}
	m.s.State = cmp.Or(m.s.State, store.Closed)
	m.sizeRings()
	for _, o := range obs {
		m.observe(o)
	}
	m.refresh()
	m.evaluate()
	return m.s, m.changes, nil
}

// Reset is the operator's reset: closed, windows and trip history
// cleared; mail sent before now is no longer judged.
func Reset(s Snapshot, now time.Time, reason string) (Snapshot, []Change) {
	from := cmp.Or(s.State, store.Closed)
	var changes []Change
	if from != store.Closed || s.Warning {
		changes = []Change{{From: from, To: store.Closed, Reason: reason, At: now}}
	}
	return Snapshot{State: store.Closed, Since: now.UnixMilli(), Reason: reason}, changes
}

// ForceOpen is the operator's kill switch: forced_open until Reset.
func ForceOpen(s Snapshot, now time.Time, reason string) (Snapshot, []Change) {
	m := &machine{now: now, s: clone(s)}
	m.s.State = cmp.Or(m.s.State, store.Closed)
	m.set(store.ForcedOpen, reason)
	return m.s, m.changes
}

// Allow asks s, which Step brought to now, to admit a message of n
// recipients: closed admits; half-open admits while the probe budget lasts
// and spends it; open and forced_open refuse. retryAfter, when refused, is
// a hint (0 when unknown). This is the model of the store's admission
// (which reads State, OpenUntil and ProbeBudget the same way).
func Allow(c Config, s Snapshot, now time.Time, n int) (next Snapshot, ok bool, retryAfter time.Duration) {
	switch cmp.Or(s.State, store.Closed) {
	case store.Closed:
		return s, true, 0
	case store.HalfOpen:
		if n <= s.ProbeBudget {
			s.ProbeBudget -= n
			return s, true, 0
		}
		return s, false, c.ProbeHold
	case store.Open:
		return s, false, time.UnixMilli(s.OpenUntil).Sub(now)
	}
	return s, false, 0
}

func clone(s Snapshot) Snapshot {
	s.Trips = slices.Clone(s.Trips)
	s.Minutes = slices.Clone(s.Minutes)
	s.Hours = slices.Clone(s.Hours)
	s.Events = slices.Clone(s.Events)
	return s
}

// machine is one Step's working state.
type machine struct {
	cfg     Config
	now     time.Time
	s       Snapshot
	changes []Change
}

func (m *machine) sizeRings() {
	n := int(m.cfg.Window / time.Minute)
	h := int(m.cfg.ComplaintWindow / time.Hour)
	e := int(max(m.cfg.FastWindow, m.cfg.ComplaintBurstWindow) / time.Minute)
	if len(m.s.Minutes) != n {
		m.s.Minutes = make([]Bucket, n)
	}
	if len(m.s.Hours) != h {
		m.s.Hours = make([]Bucket, h)
	}
	if len(m.s.Events) != e {
		m.s.Events = make([]Bucket, e)
	}
}

// observe counts o's sent recipients, then its bounces and complaints
// (attributed to the minute the mail was sent and to the minute the event
// arrived), judging after each; mail sent before Since is already judged.
func (m *machine) observe(o Observation) {
	mail := o.MailTime.UnixMilli()
	if o.Sent > 0 {
		m.refresh()
		if mail >= m.s.Since {
			n := int64(o.Sent)
			m.add(o.MailTime, Bucket{Sent: n}, false)
			if m.s.State == store.HalfOpen && mail >= m.s.HalfOpenSince {
				m.s.ProbeSent += n
				m.s.LastProbe = max(m.s.LastProbe, mail)
			}
			m.evaluate()
		}
	}
	if o.HardBounces > 0 || o.Complaints > 0 {
		m.refresh()
		if mail >= m.s.Since {
			k := Bucket{Bounces: int64(max(o.HardBounces, 0)), Complaints: int64(max(o.Complaints, 0))}
			m.add(o.MailTime, k, false)
			m.add(maxTime(o.EventTime, o.MailTime), k, true)
			if m.s.State == store.HalfOpen && mail >= m.s.HalfOpenSince {
				m.s.ProbeBounces += k.Bounces
				m.s.ProbeComplaints += k.Complaints
			}
			m.evaluate()
		}
	}
}

// refresh applies the transitions due at now.
func (m *machine) refresh() {
	if m.s.State == store.Open && m.now.UnixMilli() >= m.s.OpenUntil {
		until := m.s.OpenUntil
		m.set(store.HalfOpen, "open time over")
		// Half-open began when the open time ended, whenever this runs:
		// probes admitted since then (by the store) are judged as probes.
		m.s.HalfOpenSince = until
	}
	if m.s.State == store.HalfOpen {
		m.judgeProbe()
	}
}

func (m *machine) judgeProbe() {
	switch s := &m.s; {
	case s.ProbeBounces > m.cfg.ProbeMaxBounces || s.ProbeComplaints > 0:
		m.trip(fmt.Sprintf("probe failed: %d hard bounces, %d complaints of %d recipients", s.ProbeBounces, s.ProbeComplaints, s.ProbeSent))
	case s.ProbeSent > 0 && m.now.UnixMilli() >= s.LastProbe+m.cfg.ProbeHold.Milliseconds():
		m.set(store.Closed, fmt.Sprintf("probe passed: %d hard bounces of %d recipients", s.ProbeBounces, s.ProbeSent))
	}
}

// evaluate applies the rules after new counts.
func (m *machine) evaluate() {
	switch m.s.State {
	case store.HalfOpen:
		m.judgeProbe()
		return
	case store.Closed:
	default:
		return
	}
	st := m.s.Stats(m.cfg, m.now)
	c := m.cfg
	switch {
	case c.TripBounceRate > 0 && st.Sent >= c.MinSent && st.Sent > 0 && st.BounceRate >= c.TripBounceRate:
		m.trip(fmt.Sprintf("hard bounce rate %.2f%% (%d of %d) over %v", 100*st.BounceRate, st.HardBounces, st.Sent, c.Window))
		return
	case c.FastMinBounces > 0 && st.FastBounces >= c.FastMinBounces && float64(st.FastBounces) >= c.FastBounceRate*float64(st.FastSent):
		m.trip(fmt.Sprintf("%d hard bounces received in %v for %d sent", st.FastBounces, c.FastWindow, st.FastSent))
		return
	case c.TripComplaintRate > 0 && st.Sent24 >= c.ComplaintMinSent && st.Sent24 > 0 && st.ComplaintRate >= c.TripComplaintRate:
		m.trip(fmt.Sprintf("complaint rate %.3f%% (%d of %d) over %v", 100*st.ComplaintRate, st.Complaints24, st.Sent24, c.ComplaintWindow))
		return
	case c.ComplaintBurst > 0 && st.BurstComplaints >= c.ComplaintBurst:
		m.trip(fmt.Sprintf("%d complaints received in %v", st.BurstComplaints, c.ComplaintBurstWindow))
		return
	}
	warn := (c.WarnBounceRate > 0 && st.Sent >= c.MinSent && st.Sent > 0 && st.BounceRate >= c.WarnBounceRate) ||
		(c.WarnComplaintRate > 0 && st.Sent24 >= c.ComplaintMinSent && st.Sent24 > 0 && st.ComplaintRate >= c.WarnComplaintRate)
	if warn != m.s.Warning {
		m.s.Warning = warn
		reason := "warning cleared"
		if warn {
			reason = fmt.Sprintf("warning: hard bounce rate %.2f%%, complaint rate %.3f%%", 100*st.BounceRate, 100*st.ComplaintRate)
		}
		m.changes = append(m.changes, Change{From: store.Closed, To: store.Closed, Warning: warn, Reason: reason, At: m.now})
	}
}

// trip opens the breaker (or forces it open after ForceAfter trips) and
// starts new windows.
func (m *machine) trip(reason string) {
	window := m.cfg.ForceWindow
	if window <= 0 {
		window = 24 * time.Hour
	}
	cut := m.now.Add(-window).UnixMilli()
	m.s.Trips = slices.DeleteFunc(m.s.Trips, func(t int64) bool { return t <= cut })
	m.s.Trips = append(m.s.Trips, m.now.UnixMilli())
	// Clear the windows: the mail that tripped has been judged.
	m.s.Since = m.now.UnixMilli()
	m.s.Minutes, m.s.Hours, m.s.Events = nil, nil, nil
	m.sizeRings()
	if m.cfg.ForceAfter > 0 && len(m.s.Trips) >= m.cfg.ForceAfter {
		m.set(store.ForcedOpen, fmt.Sprintf("%s; trip %d within %v", reason, len(m.s.Trips), window))
		return
	}
	m.set(store.Open, reason)
}

// set moves to state to, resetting what the new state starts from.
func (m *machine) set(to store.BreakerState, reason string) {
	s := &m.s
	from := s.State
	ch := Change{From: from, To: to, Reason: reason, At: m.now}
	if from == store.HalfOpen {
		ch.ProbeSent, ch.ProbeBounces, ch.ProbeComplaints = s.ProbeSent, s.ProbeBounces, s.ProbeComplaints
	}
	s.State, s.Reason = to, reason
	s.OpenUntil, s.ProbeBudget = 0, 0
	s.HalfOpenSince, s.ProbeSent, s.ProbeBounces, s.ProbeComplaints, s.LastProbe = 0, 0, 0, 0, 0
	s.Warning = false
	switch to {
	case store.Open:
		d := m.cfg.OpenFor
		for i := 1; i < len(s.Trips) && d < m.cfg.MaxOpenFor; i++ {
			d *= 2
		}
		d = min(d, m.cfg.MaxOpenFor)
		s.OpenUntil = m.now.Add(d).UnixMilli()
		s.ProbeBudget = m.cfg.ProbeRecipients
		ch.OpenUntil = time.UnixMilli(s.OpenUntil)
	case store.HalfOpen:
		s.ProbeBudget = m.cfg.ProbeRecipients
		s.HalfOpenSince = m.now.UnixMilli()
	}
	m.changes = append(m.changes, ch)
}

// add adds k's counts to the bucket of t in the send-time rings, or in the
// event ring.
func (m *machine) add(t time.Time, k Bucket, event bool) {
	minute := t.Unix() / 60
	if event {
		addRing(m.s.Events, minute, k)
		return
	}
	addRing(m.s.Minutes, minute, k)
	addRing(m.s.Hours, t.Unix()/3600, k)
}

// addRing adds k's counts to the bucket of index at, unless at is older
// than what the ring still holds.
func addRing(ring []Bucket, at int64, k Bucket) {
	b := &ring[int(at%int64(len(ring)))]
	switch {
	case b.At == at:
	case b.At < at:
		*b = Bucket{At: at}
	default:
		return // a newer bucket took the slot: at is out of the window
	}
	b.Sent += k.Sent
	b.Bounces += k.Bounces
	b.Complaints += k.Complaints
}

// sumRing sums the buckets of the n indexes ending at cur.
func sumRing(ring []Bucket, cur int64, n int) (s Bucket) {
	for _, k := range ring {
		if k.At <= cur && k.At > cur-int64(n) {
			s.Sent += k.Sent
			s.Bounces += k.Bounces
			s.Complaints += k.Complaints
		}
	}
	return s
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
