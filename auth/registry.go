package auth

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/gateway"
)

// Entry binds a stored token record to its tenant.
type Entry struct {
	Record Record
	Tenant *gateway.Tenant
	// Expires, when set, is when the token stops being accepted (a
	// rotation's grace deadline).
	Expires time.Time
}

// RegistryOptions configure a Registry.
type RegistryOptions struct {
	Entries []Entry
	// FailureRate and FailureBurst bound failed attempts per source address:
	// Burst failures at once, then one per 1/Rate. Defaults: 10 and 1 per 6 s.
	FailureRate  rate.Limit
	FailureBurst int
	// MaxSources bounds the throttle table (default 100000).
	MaxSources int
	Logger     *slog.Logger
	Now        func() time.Time
}

// Registry authenticates tokens. It implements gateway.Authenticator.
type Registry struct {
	table atomic.Pointer[map[string]Entry]
	log   *slog.Logger
	now   func() time.Time

	failRate   rate.Limit
	failBurst  int
	maxSources int
	mu         sync.Mutex
	failures   map[netip.Prefix]*rate.Limiter
}

var _ gateway.Authenticator = (*Registry)(nil)

// NewRegistry builds a Registry.
func NewRegistry(opts RegistryOptions) *Registry {
	r := &Registry{
		log: opts.Logger, now: opts.Now,
		failRate: opts.FailureRate, failBurst: opts.FailureBurst, maxSources: opts.MaxSources,
		failures: make(map[netip.Prefix]*rate.Limiter),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.failRate == 0 {
		r.failRate = rate.Every(6 * time.Second)
	}
	if r.failBurst == 0 {
		r.failBurst = 10
	}
	if r.maxSources == 0 {
		r.maxSources = 100000
	}
	r.Replace(opts.Entries)
	return r
}

// Replace swaps the whole token table; the next attempt sees the new one.
func (r *Registry) Replace(entries []Entry) {
	m := make(map[string]Entry, len(entries))
	for _, e := range entries {
		m[e.Record.KeyID] = e
	}
	r.table.Store(&m)
}

// Authenticate resolves token to its tenant. When username is not empty it
// must be the tenant's id. Failures are counted per source address; once a
// source is over its failure budget every attempt is refused with
// CodeAuthThrottled, whatever the token, until the budget refills.
func (r *Registry) Authenticate(_ context.Context, username, token string, src netip.Addr) (*gateway.Tenant, error) {
	key := sourceKey(src)
	if r.throttled(key) {
		return nil, &gateway.Error{Code: gateway.CodeAuthThrottled, Msg: "too many failed attempts", RetryAfter: r.retryAfter()}
	}
	if kid, ok := KeyID(token); ok {
		if e, found := (*r.table.Load())[kid]; found && e.Record.Hash.Matches(token) &&
			(username == "" || username == e.Tenant.ID) && (e.Expires.IsZero() || r.now().Before(e.Expires)) {
			return e.Tenant, nil
		}
	}
	r.fail(key)
	return nil, &gateway.Error{Code: gateway.CodeBadCredentials, Msg: "invalid credentials"}
}

func (r *Registry) retryAfter() time.Duration {
	return time.Duration(float64(time.Second) / float64(r.failRate))
}

// sourceKey groups IPv6 clients by /64, since one host usually holds a whole /64.
func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil { // invalid address: one shared bucket
		return netip.Prefix{}
	}
	return p
}

func (r *Registry) throttled(key netip.Prefix) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.failures[key]
	return ok && l.TokensAt(r.now()) < 1
}

func (r *Registry) fail(key netip.Prefix) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.failures[key]
	if !ok {
		if len(r.failures) >= r.maxSources {
			r.sweepLocked(now)
		}
		l = rate.NewLimiter(r.failRate, r.failBurst)
		r.failures[key] = l
	}
	l.AllowN(now, 1)
	if l.TokensAt(now) < 1 {
		r.log.Warn("auth throttled", "src", key.String())
	}
}

// sweepLocked drops sources whose budget has refilled; if none has, it drops
// an arbitrary half so the table stays bounded.
func (r *Registry) sweepLocked(now time.Time) {
	for k, l := range r.failures {
		if l.TokensAt(now) >= float64(r.failBurst) {
			delete(r.failures, k)
		}
	}
	if len(r.failures) < r.maxSources {
		return
	}
	n := len(r.failures) / 2
	for k := range r.failures {
		if n == 0 {
			break
		}
		delete(r.failures, k)
		n--
	}
}
