package guard

import (
	"context"
	"fmt"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// accountUpdate feeds the account guard a tenant update's sent deltas and
// observation. When the account trips it sheds tenants.
func (g *Guard) accountUpdate(ctx context.Context, deltas map[int64]int64, obs *breaker.Observation) error {
	if g.account == nil || (len(deltas) == 0 && obs == nil) {
		return nil
	}
	res, err := g.update(ctx, AccountID, *g.account, input{sent: deltas, obs: obs})
	if err != nil {
		return err
	}
	g.after(ctx, AccountID, res)
	for _, c := range res.changes {
		if c.To == store.Open || c.To == store.ForcedOpen {
			return g.shed(ctx, c.Reason)
		}
	}
	return nil
}

// shed forces open the worst tenants (most hard bounces over the account
// window, then highest rate) until the others' bounce rate is under the
// account's trip line. They stay forced open until an operator resets
// them: a tenant that pushed the whole account over SES's line needs a
// person to look at it.
func (g *Guard) shed(ctx context.Context, why string) error {
	now := g.now()
	snaps := map[string]breaker.Snapshot{}
	var sent, bounces int64
	for _, t := range *g.tenants.Load() {
		r, err := g.st.GetBreakerRecord(ctx, t)
		if err != nil {
			return err
		}
		d := g.decode(t, r.Data)
		st := d.Snap.Stats(*g.account, now)
		sent += st.Sent
		bounces += st.HardBounces
		snaps[t] = d.Snap
	}
	for _, c := range breaker.RankByBounces(*g.account, now, snaps) {
		if sent <= 0 || float64(bounces)/float64(sent) < g.account.TripBounceRate {
			break
		}
		reason := fmt.Sprintf("account guard: %d of the account's hard bounces (%.1f%%) at %.2f%% (%s)", c.HardBounces, 100*c.Share, 100*c.BounceRate, why)
		if err := g.ForceOpen(ctx, c.Tenant, reason); err != nil {
			return err
		}
		g.log.Error("account guard shed a tenant", "tenant", c.Tenant, "hard_bounces", c.HardBounces, "sent", c.Sent)
		sent -= c.Sent
		bounces -= c.HardBounces
	}
	return nil
}
