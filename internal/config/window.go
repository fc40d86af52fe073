package config

import (
	"fmt"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// FirstContactWindow is a tenant's limits.first_contact_window: the
// TCP-like window on first contacts awaiting an SES event
// (gateway.FirstContactWindow). A key left out takes its default; the
// window applies only when the tenant's ses.delivery_events is true.
type FirstContactWindow struct {
	// Initial window of a tenant without history (default 20).
	Initial int64 `yaml:"initial"`
	// Min is the floor bounces shrink it to (default 5); Max its cap
	// (default 2000).
	Min int64 `yaml:"min"`
	Max int64 `yaml:"max"`
	// Threshold: below it each Delivery adds 1 (slow start), above it
	// 1/window (default 1000).
	Threshold int64 `yaml:"threshold"`
	// OutstandingTimeout frees the slot of a first contact no event
	// settled (default 10m).
	OutstandingTimeout time.Duration `yaml:"outstanding_timeout"`
	// Sample: settled first contacts (delivered or hard-bounced) per epoch
	// (default 20). Nil: left out.
	Sample *int64 `yaml:"sample"`
	// ShrinkBounceRate: the window halves when more than this fraction of
	// an epoch's settled first contacts hard-bounced (default 0.05, SES's
	// review line). Nil: left out.
	ShrinkBounceRate *float64 `yaml:"shrink_bounce_rate"`
}

// Bounds of the window's keys.
const (
	maxWindow        = 1_000_000
	minWindowTimeout = 10 * time.Second
	maxWindowTimeout = 24 * time.Hour
	minWindowSample  = 5
	maxWindowSample  = 10_000
	minShrinkRate    = 0.001
)

// Resolved is the window with its defaults filled in.
func (w *FirstContactWindow) Resolved() gateway.FirstContactWindow {
	or := func(v, d int64) int64 {
		if v == 0 {
			return d
		}
		return v
	}
	g := gateway.FirstContactWindow{
		Initial: or(w.Initial, gateway.DefaultWindowInitial), Min: or(w.Min, gateway.DefaultWindowMin),
		Max: or(w.Max, gateway.DefaultWindowMax), Threshold: or(w.Threshold, gateway.DefaultWindowThreshold),
		OutstandingTimeout: w.OutstandingTimeout,
	}
	if g.OutstandingTimeout == 0 {
		g.OutstandingTimeout = gateway.DefaultWindowTimeout
	}
	g.Sample, g.ShrinkBounceRate = gateway.DefaultWindowSample, gateway.DefaultWindowShrinkBounceRate
	if w.Sample != nil {
		g.Sample = *w.Sample
	}
	if w.ShrinkBounceRate != nil {
		g.ShrinkBounceRate = *w.ShrinkBounceRate
	}
	return g
}

// validate checks the window; path is its key.
func (w *FirstContactWindow) validate(path string, add func(path, format string, args ...any)) {
	for _, k := range []struct {
		name string
		v    int64
	}{{"initial", w.Initial}, {"min", w.Min}, {"max", w.Max}, {"threshold", w.Threshold}} {
		if k.v < 0 || k.v > maxWindow {
			add(path+"."+k.name, "must be between 1 and %d (or left out for the default)", maxWindow)
		}
	}
	if w.OutstandingTimeout != 0 && (w.OutstandingTimeout < minWindowTimeout || w.OutstandingTimeout > maxWindowTimeout) {
		add(path+".outstanding_timeout", "must be between 10s and 24h")
	}
	if w.Sample != nil && (*w.Sample < minWindowSample || *w.Sample > maxWindowSample) {
		add(path+".sample", "must be between %d and %d", minWindowSample, maxWindowSample)
	}
	if r := w.ShrinkBounceRate; r != nil && !(*r >= minShrinkRate && *r <= 1) {
		add(path+".shrink_bounce_rate", "must be between %g and 1", minShrinkRate)
	}
	g := w.Resolved()
	if g.Min > g.Max {
		add(path+".min", "min (%d) must not exceed max (%d)", g.Min, g.Max)
	}
	if g.Initial < g.Min || g.Initial > g.Max {
		add(path+".initial", "initial (%d) must be between min (%d) and max (%d)", g.Initial, g.Min, g.Max)
	}
}

// Problems lists what is wrong with the window, each naming its key under
// path ("" when all is well).
func (w *FirstContactWindow) Problems(path string) []string {
	var out []string
	w.validate(path, func(p, format string, args ...any) { out = append(out, p+": "+fmt.Sprintf(format, args...)) })
	return out
}
