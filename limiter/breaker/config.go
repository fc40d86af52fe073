package breaker

import (
	"errors"
	"fmt"
	"time"
)

// Config holds every threshold of a breaker. A zero rate or count disables
// its rule. Start from TenantDefaults or AccountDefaults and override.
type Config struct {
	// Slow rule, by send time: hard bounces / recipients sent over Window
	// (one bucket per minute), judged once MinSent recipients were sent.
	Window         time.Duration
	MinSent        int64
	TripBounceRate float64
	WarnBounceRate float64 // warning: halve the rate, alert

	// Fast rule, by event time: at least FastMinBounces hard bounces
	// received over FastWindow, and at least FastBounceRate of the
	// recipients sent over the same last minutes.
	FastWindow     time.Duration
	FastBounceRate float64
	FastMinBounces int64

	// Complaint rules: complaints / recipients by send time over
	// ComplaintWindow (one bucket per hour) once ComplaintMinSent were
	// sent; and a burst of ComplaintBurst complaints received within
	// ComplaintBurstWindow (event time).
	ComplaintWindow      time.Duration
	ComplaintMinSent     int64
	TripComplaintRate    float64
	WarnComplaintRate    float64
	ComplaintBurstWindow time.Duration
	ComplaintBurst       int64

	// Open time: OpenFor after the first trip, doubled for every further
	// trip within ForceWindow, at most MaxOpenFor.
	OpenFor    time.Duration
	MaxOpenFor time.Duration
	// ForceAfter trips within ForceWindow make the breaker forced_open
	// until an operator resets it; 0 never forces.
	ForceAfter  int
	ForceWindow time.Duration

	// Half-open: ProbeRecipients are admitted; once ProbeHold passed after
	// the last probe send with at most ProbeMaxBounces hard bounces and no
	// complaint among the probes, the breaker closes; more reopen it.
	ProbeRecipients int
	ProbeHold       time.Duration
	ProbeMaxBounces int64
}

// TenantDefaults returns the per-tenant defaults: trip at 5% hard bounces
// over 60 min (min 100 sent) or 10% and 25 bounces in 5 min; warn at 2.5%;
// complaints 0.1% over 24 h (min 1,000) or 5 in 60 min; open 15 min doubling to 4 h; forced open after 3 trips in
// 24 h; 20 probe recipients held 10 min, at most 1 bounce.
func TenantDefaults() Config {
	return Config{
		Window: time.Hour, MinSent: 100, TripBounceRate: 0.05, WarnBounceRate: 0.025,
		FastWindow: 5 * time.Minute, FastBounceRate: 0.10, FastMinBounces: 25,
		ComplaintWindow: 24 * time.Hour, ComplaintMinSent: 1000, TripComplaintRate: 0.001, WarnComplaintRate: 0.0008,
		ComplaintBurstWindow: time.Hour, ComplaintBurst: 5,
		OpenFor: 15 * time.Minute, MaxOpenFor: 4 * time.Hour, ForceAfter: 3, ForceWindow: 24 * time.Hour,
		ProbeRecipients: 20, ProbeHold: 10 * time.Minute, ProbeMaxBounces: 1,
	}
}

// AccountDefaults returns the defaults of the account guard, which trips
// before SES's own lines (5% bounces, 0.1% complaints): 3% hard bounces
// over 60 min (min 1,000 sent) or 5% and 100 bounces in 5 min; warn at 2%;
// complaints 0.08% over 24 h (min 10,000); open 15 min, and a second trip
// within 24 h forces it open for an operator.
func AccountDefaults() Config {
	c := TenantDefaults()
	c.MinSent, c.TripBounceRate, c.WarnBounceRate = 1000, 0.03, 0.02
	c.FastBounceRate, c.FastMinBounces = 0.05, 100
	c.ComplaintMinSent, c.TripComplaintRate, c.WarnComplaintRate = 10000, 0.0008, 0.0005
	c.ComplaintBurst = 0
	c.ForceAfter = 2
	c.ProbeRecipients = 200
	return c
}

// Bounds on the windows, which size the serialized state.
const (
	MaxWindow          = 24 * time.Hour // minute buckets: at most 1,440
	MaxComplaintWindow = 7 * 24 * time.Hour
)

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("breaker: "+format, args...)) }
	minutes := func(name string, d, limit time.Duration) {
		if d < time.Minute || d > limit || d%time.Minute != 0 {
			bad("%s %v must be whole minutes within [1m, %v]", name, d, limit)
		}
	}
	minutes("Window", c.Window, MaxWindow)
	minutes("FastWindow", c.FastWindow, c.Window)
	minutes("ComplaintBurstWindow", c.ComplaintBurstWindow, MaxWindow)
	if c.ComplaintWindow < time.Hour || c.ComplaintWindow > MaxComplaintWindow || c.ComplaintWindow%time.Hour != 0 {
		bad("ComplaintWindow %v must be whole hours within [1h, %v]", c.ComplaintWindow, MaxComplaintWindow)
	}
	for name, r := range map[string]float64{"TripBounceRate": c.TripBounceRate, "WarnBounceRate": c.WarnBounceRate,
		"FastBounceRate": c.FastBounceRate, "TripComplaintRate": c.TripComplaintRate, "WarnComplaintRate": c.WarnComplaintRate} {
		if r < 0 || r > 1 {
			bad("%s %v outside [0, 1]", name, r)
		}
	}
	if c.MinSent < 0 || c.FastMinBounces < 0 || c.ComplaintMinSent < 0 || c.ComplaintBurst < 0 || c.ProbeMaxBounces < 0 || c.ForceAfter < 0 {
		bad("counts must not be negative")
	}
	if c.OpenFor <= 0 || c.MaxOpenFor < c.OpenFor {
		bad("OpenFor %v must be > 0 and at most MaxOpenFor %v", c.OpenFor, c.MaxOpenFor)
	}
	if c.ForceAfter > 0 && c.ForceWindow <= 0 {
		bad("ForceWindow must be > 0 when ForceAfter is set")
	}
	if c.ProbeRecipients < 1 || c.ProbeHold < 0 {
		bad("ProbeRecipients must be >= 1 and ProbeHold >= 0")
	}
	return errors.Join(errs...)
}
