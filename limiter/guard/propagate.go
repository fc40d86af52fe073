package guard

import (
	"context"
	"sync"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// Start runs the propagation until ctx is done: the subscription to
// breaker announcements, the CheckEvery check of the records of the
// tenants active on this replica (and of those it refuses), and the
// EvalEvery re-evaluation (sent counters, half-open judgement, account
// guard) of the active tenants. It returns at once; Wait waits for the
// loops to end.
func (g *Guard) Start(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		every(ctx, g.eval, g.CheckWindows) // window.go
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := g.st.SubscribeBreakers(ctx, func(tenant string) { g.refresh(ctx, tenant) }); err != nil && ctx.Err() == nil {
				g.log.Warn("breaker subscription failed; retrying", "err", err.Error())
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		every(ctx, g.check, g.checkActive)
	}()
	return &wg
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// refresh reads one tenant's record and mirrors it in the deny cache.
func (g *Guard) refresh(ctx context.Context, tenant string) {
	if _, ok := g.cfg(tenant); !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	b, err := g.st.GetBreaker(cctx, tenant)
	if err != nil {
		g.log.Warn("breaker record not read", "tenant", tenant, "err", err.Error())
		return
	}
	g.apply(tenant, store.BreakerRecord{Breaker: b})
}

func (g *Guard) active() []string {
	seen := map[string]bool{}
	var out []string
	if g.deny != nil {
		for _, t := range g.deny.Tenants() {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	g.mu.Lock()
	for t := range g.seen {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	g.mu.Unlock()
	return out
}

func (g *Guard) checkActive(ctx context.Context) {
	tenants := g.active()
	for _, t := range tenants {
		g.refresh(ctx, t)
	}
	now := g.now()
	g.mu.Lock()
	due := now.Sub(g.lastEval) >= g.eval
	if due {
		g.lastEval = now
	}
	g.mu.Unlock()
	if !due {
		return
	}
	for _, t := range tenants {
		if err := g.Evaluate(ctx, t); err != nil {
			g.log.Warn("breaker evaluation failed", "tenant", t, "err", err.Error())
		}
	}
}

// Evaluate feeds a tenant's new sent counters to its breaker and the
// account guard and judges it (a half-open breaker closes once its probes
// went out ProbeHold ago without bounces).
func (g *Guard) Evaluate(ctx context.Context, tenant string) error {
	cfg, ok := g.cfg(tenant)
	if !ok {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := g.update(cctx, tenant, cfg, input{feed: true})
	if err != nil {
		return err
	}
	g.after(cctx, tenant, res)
	return g.accountUpdate(cctx, res.deltas, nil)
}
