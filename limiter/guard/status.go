package guard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// ErrUnknownTenant is the error (wrapped with the tenant's id) of every
// operator call about a tenant the guard has no breaker config for.
var ErrUnknownTenant = errors.New("unknown tenant")

// Status is a tenant's breaker as an operator sees it.
type Status struct {
	Tenant    string
	State     store.BreakerState // the record's: never ""
	Reason    string             // of the last change
	OpenUntil time.Time          // zero unless State is open
	Warning   bool
	Config    breaker.Config
	Stats     breaker.Stats // the window sums now
	Trips     []store.Trip  // newest first; never nil
	// Timeline: trips, half-open probes and outcomes, resets, forced
	// opens, warnings; newest first, never nil (the record's, so every
	// replica shows the same).
	Timeline []TimelineEntry
}

// config returns tenant's breaker config, or ErrUnknownTenant.
func (g *Guard) config(tenant string) (breaker.Config, error) {
	cfg, ok := g.cfg(tenant)
	if !ok {
		return breaker.Config{}, fmt.Errorf("%w %q", ErrUnknownTenant, tenant)
	}
	return cfg, nil
}

// Status returns tenant's breaker: the record's state, the last change's
// reason, the window sums and the trip history.
func (g *Guard) Status(ctx context.Context, tenant string) (Status, error) {
	cfg, err := g.config(tenant)
	if err != nil {
		return Status{}, err
	}
	r, err := g.st.GetBreakerRecord(ctx, tenant)
	if err != nil {
		return Status{}, err
	}
	d := g.decode(tenant, r.Data)
	trips := append([]store.Trip{}, d.History...)
	slices.Reverse(trips)
	out := Status{
		Tenant: tenant, State: cmp.Or(r.State, store.Closed), Reason: d.Snap.Reason, Warning: r.Warning,
		Config: cfg, Stats: d.Snap.Stats(cfg, g.now()), Trips: trips, Timeline: d.timeline(),
	}
	if r.State == store.Open {
		out.OpenUntil = r.OpenUntil
	}
	return out, nil
}

// Reset is the operator's reset: the breaker closes and forgets its counts
// (the sent minutes already fed stay fed); the trip history stays.
func (g *Guard) Reset(ctx context.Context, tenant string) error {
	cfg, err := g.config(tenant)
	if err != nil {
		return err
	}
	res, err := g.update(ctx, tenant, cfg, input{opName: "reset", op: func(s breaker.Snapshot, now time.Time) (breaker.Snapshot, []breaker.Change) {
		return breaker.Reset(s, now, "operator reset")
	}})
	if err != nil {
		return err
	}
	g.after(ctx, tenant, res)
	return nil
}

// ForceOpen opens tenant's breaker until a Reset.
func (g *Guard) ForceOpen(ctx context.Context, tenant, reason string) error {
	cfg, err := g.config(tenant)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "forced open by an operator"
	}
	res, err := g.update(ctx, tenant, cfg, input{opName: "forced_open", op: func(s breaker.Snapshot, now time.Time) (breaker.Snapshot, []breaker.Change) {
		return breaker.ForceOpen(s, now, reason)
	}})
	if err != nil {
		return err
	}
	g.after(ctx, tenant, res)
	return nil
}

// MinuteCounts returns the hard bounces and complaints of tenant by the
// minute the bounced mail was sent (unix minute -> counts), over the
// breaker's window and the last 6 hours (store.SeriesSpan) whatever tripped or reset it
// (data.Feedback): the per-minute series of the dashboard.
func (g *Guard) MinuteCounts(ctx context.Context, tenant string) (map[int64]breaker.Bucket, error) {
	if _, err := g.config(tenant); err != nil {
		return nil, err
	}
	r, err := g.st.GetBreakerRecord(ctx, tenant)
	if err != nil {
		return nil, err
	}
	d := g.decode(tenant, r.Data)
	return d.minuteCounts(), nil
}
