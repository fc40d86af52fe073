package storeadmin

import (
	"context"
	"sync"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// tokenCache is the process's copy of the store's token records, kept up
// to date from the token change log (store.TokenLog): one change of 100,000
// tokens reads one record. It is read whole at the first use and every
// tokenFullEvery (which also picks up a write of a replica that predates
// the log).
type tokenCache struct {
	mu       sync.Mutex
	byID     map[string]store.TokenRecord
	byTenant map[string]map[string]bool // tenant -> its key ids
	applied  int64
	loadedAt time.Time
	// pending are the key ids changed since ApplyTo last took them; full
	// says the cache was read whole since (ApplyTo rebuilds the table).
	pending map[string]bool
	full    bool
}

func (c *tokenCache) put(r store.TokenRecord) {
	if old, ok := c.byID[r.KeyID]; ok && old.Tenant != r.Tenant {
		delete(c.byTenant[old.Tenant], r.KeyID)
	}
	c.byID[r.KeyID] = r
	if r.Tenant != "" {
		if c.byTenant[r.Tenant] == nil {
			c.byTenant[r.Tenant] = map[string]bool{}
		}
		c.byTenant[r.Tenant][r.KeyID] = true
	}
}

const tokenFullEvery = 5 * time.Minute

// tokenRecords returns every token record (LastUsed as of the last whole
// read: the authenticator does not need it).
func (b *Backend) tokenRecords(ctx context.Context) ([]store.TokenRecord, error) {
	if err := b.syncTokens(ctx); err != nil {
		return nil, err
	}
	c := &b.toks
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]store.TokenRecord, 0, len(c.byID))
	for _, r := range c.byID {
		out = append(out, r)
	}
	return out, nil
}

// syncTokens brings the cache up to date: whole at the first call and
// every tokenFullEvery, else the records changed since.
func (b *Backend) syncTokens(ctx context.Context) error {
	c := &b.toks
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := b.now(); c.byID == nil || now.Sub(c.loadedAt) >= tokenFullEvery || now.Before(c.loadedAt) {
		pos, err := b.st.TokenVersion(ctx)
		if err != nil {
			return err
		}
		recs, err := b.st.ListTokens(ctx)
		if err != nil {
			return err
		}
		c.byID, c.byTenant = make(map[string]store.TokenRecord, len(recs)), map[string]map[string]bool{}
		for _, r := range recs {
			c.put(r)
		}
		c.applied, c.loadedAt, c.full, c.pending = pos, now, true, map[string]bool{}
	}
	for {
		changes, err := b.st.ChangedTokens(ctx, c.applied, syncPage)
		if err != nil {
			return err
		}
		for _, ch := range changes {
			r := ch.TokenRecord
			r.LastUsed = c.byID[r.KeyID].LastUsed
			c.put(r)
			c.pending[r.KeyID] = true
			c.applied = max(c.applied, ch.Version)
		}
		if len(changes) < syncPage {
			return nil
		}
	}
}
