package guard

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/limiter/breaker"
)

var _ admin.Breakers = (*Guard)(nil)

// Status implements admin.Breakers.
func (g *Guard) Status(ctx context.Context, tenant string) (admin.BreakerStatus, error) {
	cfg, ok := g.cfg(tenant)
	if !ok {
		return admin.BreakerStatus{}, admin.ErrNotFound
	}
	r, err := g.st.GetBreakerRecord(ctx, tenant)
	if err != nil {
		return admin.BreakerStatus{}, err
	}
	d := g.decode(tenant, r.Data)
	b, err := breaker.New(breaker.Options{Config: cfg, Now: g.now, State: &d.Snap})
	if err != nil {
		return admin.BreakerStatus{}, err
	}
	st := b.Stats()
	out := admin.BreakerStatus{
		Tenant: tenant, State: string(r.State), Reason: d.Snap.Reason, Warning: r.Warning,
		Rates: admin.Rates{Window: cfg.Window.String(), SentPerMinute: float64(st.Sent) / cfg.Window.Minutes(), BounceRate: st.BounceRate, ComplaintRate: st.ComplaintRate},
		Windows: map[string]string{
			"window": cfg.Window.String(), "min_volume": strconv.FormatInt(cfg.MinSent, 10),
			"bounce_threshold":    strconv.FormatFloat(cfg.TripBounceRate, 'g', -1, 64),
			"complaint_window":    cfg.ComplaintWindow.String(),
			"complaint_threshold": strconv.FormatFloat(cfg.TripComplaintRate, 'g', -1, 64),
		},
		Trips: []admin.Trip{},
	}
	if out.State == "" {
		out.State = admin.BreakerClosed
	}
	if r.State == "open" {
		out.OpenUntil = r.OpenUntil
	}
	for _, t := range slices.Backward(d.History) {
		out.Trips = append(out.Trips, admin.Trip{At: t.At, Reason: t.Reason})
	}
	return out, nil
}

// Reset implements admin.Breakers: the breaker closes and forgets its
// counts (the sent minutes already fed stay fed); the trip history stays.
func (g *Guard) Reset(ctx context.Context, tenant string) error {
	cfg, ok := g.cfg(tenant)
	if !ok {
		return admin.ErrNotFound
	}
	res, err := g.update(ctx, tenant, cfg, false, nil, func(b *breaker.Breaker) { b.Reset("operator reset") })
	if err != nil {
		return err
	}
	g.after(ctx, tenant, res)
	return nil
}

// ForceOpen implements admin.Breakers.
func (g *Guard) ForceOpen(ctx context.Context, tenant, reason string) error {
	if _, ok := g.cfg(tenant); !ok {
		return admin.ErrNotFound
	}
	return g.forceOpen(ctx, tenant, reason)
}

func (g *Guard) forceOpen(ctx context.Context, tenant, reason string) error {
	cfg, ok := g.cfg(tenant)
	if !ok {
		return fmt.Errorf("guard: unknown tenant %q", tenant)
	}
	if reason == "" {
		reason = "forced open by an operator"
	}
	res, err := g.update(ctx, tenant, cfg, false, nil, func(b *breaker.Breaker) { b.ForceOpen(reason) })
	if err != nil {
		return err
	}
	g.after(ctx, tenant, res)
	return nil
}

// MinuteCounts returns the hard bounces and complaints of tenant by the
// minute the bounced mail was sent (unix minute -> counts), over the
// breaker's window: the per-minute series of the dashboard.
func (g *Guard) MinuteCounts(ctx context.Context, tenant string) (map[int64]breaker.Bucket, error) {
	if _, ok := g.cfg(tenant); !ok {
		return nil, admin.ErrNotFound
	}
	r, err := g.st.GetBreakerRecord(ctx, tenant)
	if err != nil {
		return nil, err
	}
	d := g.decode(tenant, r.Data)
	out := make(map[int64]breaker.Bucket, len(d.Snap.Minutes))
	for _, b := range d.Snap.Minutes {
		if b.At != 0 {
			out[b.At] = b
		}
	}
	return out, nil
}
