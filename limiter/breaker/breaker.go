package breaker

import (
	"fmt"
	"sync"
	"time"
)

// State is the breaker's state; the strings are the store's contract.
type State string

// States.
const (
	Closed     State = "closed"
	Open       State = "open"
	HalfOpen   State = "half_open"
	ForcedOpen State = "forced_open"
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
	State State `json:"state"`
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

// Change is what OnStateChange receives: a state change, or the warning
// level turning on or off.
type Change struct {
	From, To  State
	Warning   bool
	Reason    string
	At        time.Time
	OpenUntil time.Time // zero unless To is open
}

// Observation is one event's contribution: hard bounces or complaints of
// mail sent at MailTime, received at EventTime.
type Observation struct {
	MailTime    time.Time
	EventTime   time.Time
	HardBounces int
	Complaints  int
}

// Options configure a Breaker. Config is required (see Validate).
type Options struct {
	Config Config
	Now    func() time.Time
	// State restores a persisted snapshot; nil starts closed. Rings whose
	// size no longer matches Config are dropped.
	State *Snapshot
	// OnStateChange is called after every change, outside the breaker's
	// lock (it may call the Breaker), in order within one call; calls from
	// concurrent callers may interleave.
	OnStateChange func(Change)
}

// Breaker is the state machine. It is safe for concurrent use.
type Breaker struct {
	cfg      Config
	now      func() time.Time
	onChange func(Change)

	mu      sync.Mutex
	s       Snapshot
	pending []Change
}

// New returns a Breaker built from opts.
func New(opts Options) (*Breaker, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{cfg: opts.Config, now: opts.Now, onChange: opts.OnStateChange}
	if b.now == nil {
		b.now = time.Now
	}
	if opts.State != nil {
		b.s = *opts.State
		b.s.Trips = append([]int64(nil), opts.State.Trips...)
		b.s.Minutes = append([]Bucket(nil), opts.State.Minutes...)
		b.s.Hours = append([]Bucket(nil), opts.State.Hours...)
		b.s.Events = append([]Bucket(nil), opts.State.Events...)
	}
	switch b.s.State {
	case Closed, Open, HalfOpen, ForcedOpen:
	case "":
		b.s.State = Closed
	default:
		return nil, fmt.Errorf("breaker: unknown state %q", b.s.State)
	}
	b.sizeRings()
	return b, nil
}

func (b *Breaker) sizeRings() {
	m := int(b.cfg.Window / time.Minute)
	h := int(b.cfg.ComplaintWindow / time.Hour)
	e := int(max(b.cfg.FastWindow, b.cfg.ComplaintBurstWindow) / time.Minute)
	if len(b.s.Minutes) != m {
		b.s.Minutes = make([]Bucket, m)
	}
	if len(b.s.Hours) != h {
		b.s.Hours = make([]Bucket, h)
	}
	if len(b.s.Events) != e {
		b.s.Events = make([]Bucket, e)
	}
}

// Snapshot returns a copy of the state, after time-driven transitions.
func (b *Breaker) Snapshot() Snapshot {
	b.mu.Lock()
	b.refresh(b.now())
	s := b.s
	s.Trips = append([]int64(nil), b.s.Trips...)
	s.Minutes = append([]Bucket(nil), b.s.Minutes...)
	s.Hours = append([]Bucket(nil), b.s.Hours...)
	s.Events = append([]Bucket(nil), b.s.Events...)
	b.unlock()
	return s
}

// State returns the current state, after time-driven transitions.
func (b *Breaker) State() State {
	b.mu.Lock()
	b.refresh(b.now())
	st := b.s.State
	b.unlock()
	return st
}

// Warning reports whether the warning level is on (halve the rate).
func (b *Breaker) Warning() bool {
	b.mu.Lock()
	defer b.unlock()
	b.refresh(b.now())
	return b.s.Warning
}

// Allow asks to admit a message of n recipients. Closed admits; half-open
// admits while the probe budget lasts and spends it; open and forced_open
// refuse. retryAfter, when refused, is a hint (0 when unknown).
func (b *Breaker) Allow(n int) (ok bool, retryAfter time.Duration) {
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	b.refresh(now)
	switch b.s.State {
	case Closed:
		return true, 0
	case HalfOpen:
		if n <= b.s.ProbeBudget {
			b.s.ProbeBudget -= n
			return true, 0
		}
		return false, b.cfg.ProbeHold
	case Open:
		return false, time.UnixMilli(b.s.OpenUntil).Sub(now)
	}
	return false, 0
}

// RecordSent counts n recipients sent at t (the denominator).
func (b *Breaker) RecordSent(t time.Time, n int) {
	if n <= 0 {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	b.refresh(now)
	if t.UnixMilli() < b.s.Since {
		return
	}
	b.add(t, func(k *Bucket) { k.Sent += int64(n) }, false)
	if b.s.State == HalfOpen && t.UnixMilli() >= b.s.HalfOpenSince {
		b.s.ProbeSent += int64(n)
		b.s.LastProbe = max(b.s.LastProbe, t.UnixMilli())
	}
	b.evaluate(now)
}

// Observe counts an event's hard bounces and complaints, attributed to the
// minute the mail was sent and to the minute the event arrived, then
// trips, warns, closes or reopens as the rules say.
func (b *Breaker) Observe(o Observation) {
	if o.HardBounces <= 0 && o.Complaints <= 0 {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	b.refresh(now)
	if o.MailTime.UnixMilli() < b.s.Since {
		return // already judged
	}
	nb, nc := int64(max(o.HardBounces, 0)), int64(max(o.Complaints, 0))
	b.add(o.MailTime, func(k *Bucket) { k.Bounces += nb; k.Complaints += nc }, false)
	b.add(maxTime(o.EventTime, o.MailTime), func(k *Bucket) { k.Bounces += nb; k.Complaints += nc }, true)
	if b.s.State == HalfOpen && o.MailTime.UnixMilli() >= b.s.HalfOpenSince {
		b.s.ProbeBounces += nb
		b.s.ProbeComplaints += nc
	}
	b.evaluate(now)
}

// Tick applies time-driven transitions (open to half-open, half-open to
// closed). Call it periodically; every other method also does.
func (b *Breaker) Tick() {
	b.mu.Lock()
	now := b.now()
	b.refresh(now)
	b.evaluate(now)
	b.unlock()
}

// Reset is the operator's reset: closed, windows and trip history cleared.
func (b *Breaker) Reset(reason string) {
	now := b.now()
	b.mu.Lock()
	from := b.s.State
	warn := b.s.Warning
	b.s = Snapshot{State: Closed, Since: now.UnixMilli(), Reason: reason}
	b.sizeRings()
	if from != Closed || warn {
		b.pending = append(b.pending, Change{From: from, To: Closed, Reason: reason, At: now})
	}
	b.unlock()
}

// ForceOpen is the operator's kill switch: forced_open until Reset.
func (b *Breaker) ForceOpen(reason string) {
	now := b.now()
	b.mu.Lock()
	b.set(now, ForcedOpen, reason)
	b.unlock()
}

// unlock releases the lock, then calls the hook for the pending changes.
func (b *Breaker) unlock() {
	changes := b.pending
	b.pending = nil
	b.mu.Unlock()
	if b.onChange == nil {
		return
	}
	for _, c := range changes {
		b.onChange(c)
	}
}

// refresh applies the transitions due at now. Called with b.mu held.
func (b *Breaker) refresh(now time.Time) {
	if b.s.State == Open && now.UnixMilli() >= b.s.OpenUntil {
		until := b.s.OpenUntil
		b.set(now, HalfOpen, "open time over")
		// Half-open began when the open time ended, whenever this runs:
		// probes admitted since then (by the store) are judged as probes.
		b.s.HalfOpenSince = until
	}
	if b.s.State == HalfOpen {
		b.judgeProbe(now)
	}
}

func (b *Breaker) judgeProbe(now time.Time) {
	switch {
	case b.s.ProbeBounces > b.cfg.ProbeMaxBounces || b.s.ProbeComplaints > 0:
		b.trip(now, fmt.Sprintf("probe failed: %d hard bounces, %d complaints of %d recipients", b.s.ProbeBounces, b.s.ProbeComplaints, b.s.ProbeSent))
	case b.s.ProbeSent > 0 && now.UnixMilli() >= b.s.LastProbe+b.cfg.ProbeHold.Milliseconds():
		b.set(now, Closed, fmt.Sprintf("probe passed: %d hard bounces of %d recipients", b.s.ProbeBounces, b.s.ProbeSent))
	}
}

// evaluate applies the rules after new counts. Called with b.mu held.
func (b *Breaker) evaluate(now time.Time) {
	switch b.s.State {
	case HalfOpen:
		b.judgeProbe(now)
		return
	case Closed:
	default:
		return
	}
	st := b.stats(now)
	c := b.cfg
	switch {
	case c.TripBounceRate > 0 && st.Sent >= c.MinSent && st.Sent > 0 && st.BounceRate >= c.TripBounceRate:
		b.trip(now, fmt.Sprintf("hard bounce rate %.2f%% (%d of %d) over %v", 100*st.BounceRate, st.HardBounces, st.Sent, c.Window))
		return
	case c.FastMinBounces > 0 && st.FastBounces >= c.FastMinBounces && float64(st.FastBounces) >= c.FastBounceRate*float64(st.FastSent):
		b.trip(now, fmt.Sprintf("%d hard bounces received in %v for %d sent", st.FastBounces, c.FastWindow, st.FastSent))
		return
	case c.TripComplaintRate > 0 && st.Sent24 >= c.ComplaintMinSent && st.Sent24 > 0 && st.ComplaintRate >= c.TripComplaintRate:
		b.trip(now, fmt.Sprintf("complaint rate %.3f%% (%d of %d) over %v", 100*st.ComplaintRate, st.Complaints24, st.Sent24, c.ComplaintWindow))
		return
	case c.ComplaintBurst > 0 && st.BurstComplaints >= c.ComplaintBurst:
		b.trip(now, fmt.Sprintf("%d complaints received in %v", st.BurstComplaints, c.ComplaintBurstWindow))
		return
	}
	warn := (c.WarnBounceRate > 0 && st.Sent >= c.MinSent && st.Sent > 0 && st.BounceRate >= c.WarnBounceRate) ||
		(c.WarnComplaintRate > 0 && st.Sent24 >= c.ComplaintMinSent && st.Sent24 > 0 && st.ComplaintRate >= c.WarnComplaintRate)
	if warn != b.s.Warning {
		b.s.Warning = warn
		reason := "warning cleared"
		if warn {
			reason = fmt.Sprintf("warning: hard bounce rate %.2f%%, complaint rate %.3f%%", 100*st.BounceRate, 100*st.ComplaintRate)
		}
		b.pending = append(b.pending, Change{From: Closed, To: Closed, Warning: warn, Reason: reason, At: now})
	}
}

// trip opens the breaker (or forces it open after ForceAfter trips) and
// starts new windows. Called with b.mu held.
func (b *Breaker) trip(now time.Time, reason string) {
	window := b.cfg.ForceWindow
	if window <= 0 {
		window = 24 * time.Hour
	}
	cut := now.Add(-window).UnixMilli()
	trips := b.s.Trips[:0]
	for _, t := range b.s.Trips {
		if t > cut {
			trips = append(trips, t)
		}
	}
	b.s.Trips = append(trips, now.UnixMilli())
	// Clear the windows: the mail that tripped has been judged.
	b.s.Since = now.UnixMilli()
	b.s.Minutes, b.s.Hours, b.s.Events = nil, nil, nil
	b.sizeRings()
	if b.cfg.ForceAfter > 0 && len(b.s.Trips) >= b.cfg.ForceAfter {
		b.set(now, ForcedOpen, fmt.Sprintf("%s; trip %d within %v", reason, len(b.s.Trips), window))
		return
	}
	b.set(now, Open, reason)
}

// set moves to state to, resetting what the new state starts from. Called
// with b.mu held.
func (b *Breaker) set(now time.Time, to State, reason string) {
	from := b.s.State
	b.s.State, b.s.Reason = to, reason
	b.s.OpenUntil, b.s.ProbeBudget = 0, 0
	b.s.HalfOpenSince, b.s.ProbeSent, b.s.ProbeBounces, b.s.ProbeComplaints, b.s.LastProbe = 0, 0, 0, 0, 0
	b.s.Warning = false
	ch := Change{From: from, To: to, Reason: reason, At: now}
	switch to {
	case Open:
		d := b.cfg.OpenFor
		for i := 1; i < len(b.s.Trips) && d < b.cfg.MaxOpenFor; i++ {
			d *= 2
		}
		d = min(d, b.cfg.MaxOpenFor)
		b.s.OpenUntil = now.Add(d).UnixMilli()
		b.s.ProbeBudget = b.cfg.ProbeRecipients
		ch.OpenUntil = time.UnixMilli(b.s.OpenUntil)
	case HalfOpen:
		b.s.ProbeBudget = b.cfg.ProbeRecipients
		b.s.HalfOpenSince = now.UnixMilli()
	}
	b.pending = append(b.pending, ch)
}

// add adds to the bucket of t in the send-time rings, or the event ring.
func (b *Breaker) add(t time.Time, f func(*Bucket), event bool) {
	minute := t.Unix() / 60
	if event {
		addRing(b.s.Events, minute, f)
		return
	}
	addRing(b.s.Minutes, minute, f)
	addRing(b.s.Hours, t.Unix()/3600, f)
}

// addRing adds to the bucket of index at, unless at is older than what the
// ring still holds.
func addRing(ring []Bucket, at int64, f func(*Bucket)) {
	k := &ring[int(at%int64(len(ring)))]
	switch {
	case k.At == at:
	case k.At < at:
		*k = Bucket{At: at}
	default:
		return // a newer bucket took the slot: at is out of the window
	}
	f(k)
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
