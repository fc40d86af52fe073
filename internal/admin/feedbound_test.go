package admin_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/limiter/guard"
)

type countingTokens struct {
	admin.Tokens
	lists atomic.Int64
}

func (c *countingTokens) List(ctx context.Context) ([]admin.TokenInfo, error) {
	c.lists.Add(1)
	return c.Tokens.List(ctx)
}

type countingBreakers struct {
	*guard.Guard
	reads atomic.Int64
}

func (c *countingBreakers) Status(ctx context.Context, tenant string) (guard.Status, error) {
	c.reads.Add(1)
	return c.Guard.Status(ctx, tenant)
}

type countingTenants struct {
	admin.Tenants
	lists atomic.Int64
}

func (c *countingTenants) List(ctx context.Context) ([]admin.TenantStatus, error) {
	c.lists.Add(1)
	return c.Tenants.List(ctx)
}

// TestFeedReadsBounded: GET /v1/feed reads the token table, the tenant
// list and the breakers at most once per cache period (5 s) whatever the
// number of requests; with the shared feed it reads no breaker at all
// (trips arrive through the shared feed).
func TestFeedReadsBounded(t *testing.T) {
	for _, shared := range []bool{false, true} {
		var toks *countingTokens
		var brk *countingBreakers
		var ten *countingTenants
		mod := func(o *admin.Options) {
			toks = &countingTokens{Tokens: o.Tokens}
			brk = &countingBreakers{Guard: o.Breakers.(*guard.Guard)}
			ten = &countingTenants{Tenants: o.Tenants}
			o.Tokens, o.Breakers, o.Tenants = toks, brk, ten
			if !shared {
				o.Dashboard = nil
			}
		}
		c := &clock{t: time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)}
		e := newSharedEnv(t, stores[0].open(t, c.Now), c, mod)
		for range 20 {
			if a := e.call(t, "GET", "/v1/feed?limit=40", ""); a.status != 200 {
				t.Fatalf("feed: %d %s", a.status, a.body)
			}
		}
		wantBreakers := int64(3) // the three tenants, once
		if shared {
			wantBreakers = 0
		}
		if toks.lists.Load() != 1 || brk.reads.Load() != wantBreakers || ten.lists.Load() != min(1, wantBreakers) {
			t.Fatalf("shared=%v, 20 requests: %d token lists, %d breaker reads, %d tenant lists; want 1, %d, %d",
				shared, toks.lists.Load(), brk.reads.Load(), ten.lists.Load(), wantBreakers, min(1, wantBreakers))
		}
		c.Add(6 * time.Second) // past the cache period: read again, once
		for range 5 {
			e.call(t, "GET", "/v1/feed", "")
		}
		if toks.lists.Load() != 2 || brk.reads.Load() != 2*wantBreakers {
			t.Fatalf("shared=%v, after the cache period: %d token lists, %d breaker reads", shared, toks.lists.Load(), brk.reads.Load())
		}
	}
}
