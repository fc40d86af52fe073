package server

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
)

// Batching of the tokens' last-used times.
const (
	lastUsedFlushEvery = 10 * time.Second
	maxLastUsedBatch   = 10000
)

// tokenToucher records the last successful use of tokens.
type tokenToucher interface {
	TouchTokens(ctx context.Context, used map[string]time.Time) error
}

// lastUsed remembers the successful uses of tokens and writes them to the
// store in batches, at most maxLastUsedBatch keys per flush.
type lastUsed struct {
	store tokenToucher
	log   *slog.Logger
	mu    sync.Mutex
	used  map[string]time.Time // key id -> last successful use, not yet written
}

func newLastUsed(store tokenToucher, log *slog.Logger) *lastUsed {
	return &lastUsed{store: store, log: log, used: map[string]time.Time{}}
}

// authenticator wraps the registry: successful uses are remembered, failed
// authentications counted.
func (l *lastUsed) authenticator(r *auth.Registry, m *metrics) gateway.Authenticator {
	return usedAuth{r: r, used: l, m: m}
}

func (l *lastUsed) touch(token string) {
	kid, ok := auth.KeyID(token)
	if !ok {
		return
	}
	l.mu.Lock()
	if len(l.used) < maxLastUsedBatch {
		l.used[kid] = time.Now().UTC()
	}
	l.mu.Unlock()
}

// flush writes the remembered uses.
func (l *lastUsed) flush(ctx context.Context) {
	l.mu.Lock()
	batch := l.used
	l.used = map[string]time.Time{}
	l.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := l.store.TouchTokens(cctx, batch); err != nil {
		l.log.Warn("recording token last-used times failed", "err", err.Error())
	}
}

// run flushes every lastUsedFlushEvery, and once more when ctx ends.
func (l *lastUsed) run(ctx context.Context) {
	t := time.NewTicker(lastUsedFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush(context.Background())
			return
		case <-t.C:
			l.flush(ctx)
		}
	}
}

type usedAuth struct {
	r    *auth.Registry
	used *lastUsed
	m    *metrics
}

func (u usedAuth) Authenticate(ctx context.Context, username, token string, src netip.Addr) (*gateway.Tenant, error) {
	t, err := u.r.Authenticate(ctx, username, token, src)
	if err != nil {
		u.m.authFailed(err)
		return t, err
	}
	u.used.touch(token)
	return t, nil
}
