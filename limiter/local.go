package limiter

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/gateway"
)

// Local is a per-process, per-tenant token bucket.
type Local struct {
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim   *rate.Limiter
	rate  float64
	burst int
}

var _ gateway.Limiter = (*Local)(nil)

// NewLocal returns a Local limiter; now may be nil for time.Now.
func NewLocal(now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	return &Local{now: now, buckets: make(map[string]*bucket)}
}

// Admit takes one message (or one token per recipient, RatePerRecipient)
// from t's bucket, or refuses with CodeRateLimited and the wait until it
// would fit. A tenant without a rate is not limited.
func (l *Local) Admit(_ context.Context, t *gateway.Tenant, rcpts []string) ([]*gateway.Error, error) {
	if t.Limits.Rate <= 0 {
		return nil, nil
	}
	if err := l.take(t, cost(t.Limits, len(rcpts))); err != nil {
		return nil, err
	}
	return nil, nil
}

// cost is what a message of n recipients takes from a rate.
func cost(l gateway.Limits, n int) int {
	if l.RatePerRecipient {
		return n
	}
	return 1
}

// take takes n tokens from t's bucket or refuses with the wait.
func (l *Local) take(t *gateway.Tenant, n int) *gateway.Error {
	now := l.now()
	b := l.bucket(t)
	r := b.lim.ReserveN(now, n)
	if !r.OK() {
		return &gateway.Error{Code: gateway.CodeTooManyRecipients, Msg: "message has more recipients than the rate's burst"}
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &gateway.Error{Code: gateway.CodeRateLimited, Msg: "rate limit exceeded", RetryAfter: d}
	}
	return nil
}

// bucket returns t's bucket, rebuilding it when the tenant's limits changed.
func (l *Local) bucket(t *gateway.Tenant) *bucket {
	burst := t.Limits.EffectiveBurst()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[t.ID]
	if !ok || b.rate != t.Limits.Rate || b.burst != burst {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(t.Limits.Rate), burst), rate: t.Limits.Rate, burst: burst}
		// A new bucket starts full, as of the injected clock.
		b.lim.SetBurstAt(l.now(), burst)
		l.buckets[t.ID] = b
	}
	return b
}
