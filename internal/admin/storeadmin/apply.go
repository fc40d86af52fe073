package storeadmin

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/limiter/store"
)

// TokenTable is the authenticator's token table ApplyTo keeps in step
// (auth.Registry).
type TokenTable interface {
	Replace(entries []auth.Entry)
	Patch(set []auth.Entry, remove []string)
}

// applied is what ApplyTo last gave the table.
type applied struct {
	mu     sync.Mutex
	policy *Policy // nil: nothing yet
}

// ApplyTo brings table in line with the store's admin state, like
// table.Replace(Entries()) but, after the first time, by patching only the
// key ids that changed: tokens created, revoked or expired, and the tokens
// of the API tenants that changed. The whole table is rebuilt after a
// policy reload and after the token cache was read whole.
func (b *Backend) ApplyTo(ctx context.Context, table TokenTable) error {
	a := &b.applied
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := b.SyncTenants(ctx); err != nil {
		return err
	}
	if err := b.syncTokens(ctx); err != nil {
		return err
	}
	// Take what changed (under the locks of each), then resolve.
	b.api.mu.Lock()
	tenants := b.api.pending
	b.api.pending = map[string]bool{}
	b.api.mu.Unlock()
	c := &b.toks
	c.mu.Lock()
	defer c.mu.Unlock()
	p := b.policy.Load()
	if a.policy != p || c.full {
		c.full, c.pending = false, map[string]bool{}
		table.Replace(b.entriesLocked(p, slices.Collect(maps.Values(c.byID))))
		a.policy = p
		return nil
	}
	kids := c.pending
	c.pending = map[string]bool{}
	for id := range tenants {
		for kid := range c.byTenant[id] {
			kids[kid] = true
		}
	}
	if len(kids) == 0 {
		return nil
	}
	var set []auth.Entry
	var remove []string
	for kid := range kids {
		if e, ok := b.entryFor(p, kid, c.byID); ok {
			set = append(set, e)
		} else {
			remove = append(remove, kid)
		}
	}
	table.Patch(set, remove)
	return nil
}

// entryFor is the entry of key id kid as Entries makes it, or false when
// it has none (revoked, unknown, its tenant gone).
func (b *Backend) entryFor(p *Policy, kid string, recs map[string]store.TokenRecord) (auth.Entry, bool) {
	r, inStore := recs[kid]
	if e, ok := p.entryOf[kid]; ok {
		if inStore && !r.Revoked.IsZero() {
			return auth.Entry{}, false
		}
		e.Expires = r.Expires
		return e, true
	}
	if !inStore || r.SHA256 == "" || !r.Revoked.IsZero() {
		return auth.Entry{}, false
	}
	t := b.tenant(r.Tenant)
	h, err := auth.ParseHash(r.SHA256)
	if t == nil || err != nil {
		return auth.Entry{}, false // tenant gone, or a damaged record
	}
	return auth.Entry{Record: auth.Record{KeyID: r.KeyID, Hash: h, Tenant: r.Tenant}, Tenant: t, Expires: r.Expires}, true
}
