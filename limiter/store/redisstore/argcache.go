package redisstore

import (
	"strconv"
	"sync"

	"github.com/sesgate/sesgate/gateway"
)

// maxArgHeads bounds argHeads: past it the cache starts over (a tenant's
// head is rebuilt on its next admission, a few allocations).
const maxArgHeads = 1 << 16

// argHeads caches, per tenant, the part of admit.lua's KEYS and ARGV that
// depends only on the tenant and its limits: the three keys and ARGV from
// the tenant prefix to the window's timeout, formatted and boxed once
// instead of on every admission (about twenty allocations per message).
// An entry is used only while the tenant's limits equal those it was
// built from; a policy change rebuilds it. The cached slices are never
// written after they are stored: callers copy them.
type argHeads struct {
	mu sync.RWMutex
	m  map[string]*argHead // by tenant ID
}

// argHead is one tenant's cached KEYS and ARGV head.
type argHead struct {
	limits scriptLimitSet // what the head was built from
	keys   []string
	head   []any // ARGV[3:admitArgc], from the prefix on
}

// get returns tenant's head for limits l, building it on a miss.
func (c *argHeads) get(s *Store, tenant string, l gateway.Limits) *argHead {
	set := scriptLimits(l)
	c.mu.RLock()
	h, ok := c.m[tenant]
	c.mu.RUnlock()
	if ok && h.limits == set {
		return h
	}
	h = s.buildHead(tenant, l)
	h.limits = set
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxArgHeads {
		c.m = make(map[string]*argHead)
	}
	c.m[tenant] = h
	c.mu.Unlock()
	return h
}

// buildHead formats tenant's KEYS and ARGV head for limits l, in the order
// of the locals at admit.lua's top.
func (s *Store) buildHead(tenant string, l gateway.Limits) *argHead {
	p := tenantPrefix(tenant)
	w := l.FirstContactWindow
	return &argHead{
		keys: []string{p + keyBreaker, p + keySup, p + keyState},
		head: []any{
			p,
			strconv.FormatFloat(l.Rate, 'g', -1, 64), l.EffectiveBurst(), flag(l.RatePerRecipient),
			l.PerHour, l.PerDay, l.FirstContactPerHour, l.FirstContactPerDay,
			strconv.FormatFloat(l.PerDomainRate, 'g', -1, 64), l.EffectivePerDomainBurst(),
			s.knownTTL.Milliseconds(), s.sentTTL.Milliseconds(),
			shadowMask(l.Shadow),
			w.Initial, w.Min, w.Max, w.Threshold, w.OutstandingTimeout.Milliseconds(),
		},
	}
}
