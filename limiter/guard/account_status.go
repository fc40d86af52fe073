package guard

import (
	"cmp"
	"context"
	"slices"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// AccountStatus returns the account guard's breaker as an operator sees it
// (its record under AccountID: state, window sums against its config,
// trips) and its per-minute buckets by send minute (unix minute -> sent,
// hard bounces, complaints) over its window: the dashboard's account
// panel. ok is false when no account guard runs.
func (g *Guard) AccountStatus(ctx context.Context) (st Status, minutes map[int64]breaker.Bucket, ok bool, err error) {
	if g.account == nil {
		return Status{}, nil, false, nil
	}
	r, err := g.st.GetBreakerRecord(ctx, AccountID)
	if err != nil {
		return Status{}, nil, false, err
	}
	cfg := *g.account
	d := g.decode(AccountID, r.Data)
	trips := append([]store.Trip{}, d.History...)
	slices.Reverse(trips)
	st = Status{
		Tenant: AccountID, State: cmp.Or(r.State, store.Closed), Reason: d.Snap.Reason, Warning: r.Warning,
		Config: cfg, Stats: d.Snap.Stats(cfg, g.now()), Trips: trips, Timeline: d.timeline(),
	}
	if r.State == store.Open {
		st.OpenUntil = r.OpenUntil
	}
	return st, d.minuteCounts(), true, nil
}
