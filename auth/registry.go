package auth

import (
	"context"
	"log/slog"
	"maps"
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
	// FailureRate and FailureBurst bound failed attempts, both per (source,
	// key id) and per source (see Authenticate): Burst failures at once,
	// then one per 1/Rate. Defaults: 10 and 1 per 6 s.
	FailureRate  rate.Limit
	FailureBurst int
	// MaxSources bounds the throttle table, per-source and per-(source, key
	// id) entries together (default 100000).
	MaxSources int
	Logger     *slog.Logger
	Now        func() time.Time
	// AWSKeys derives the secret access keys of AWS keys (VerifyAWS); nil
	// refuses every AWS key.
	AWSKeys *AWSKeys
}

// Registry authenticates tokens. It implements gateway.Authenticator.
type Registry struct {
	table atomic.Pointer[tokenTable]
	write sync.Mutex // Replace and Patch, one at a time
	log   *slog.Logger
	now   func() time.Time

	awsKeys *AWSKeys

	failRate   rate.Limit
	failBurst  int
	maxSources int
	mu         sync.Mutex
	failures   map[throttleKey]*rate.Limiter
}

// throttleKey names one failure budget: a source's (kid empty), or a
// source's for one known key id.
type throttleKey struct {
	src netip.Prefix // gateway.SourceKey
	kid string
}

var _ gateway.Authenticator = (*Registry)(nil)

// NewRegistry builds a Registry.
func NewRegistry(opts RegistryOptions) *Registry {
	r := &Registry{
		log: opts.Logger, now: opts.Now,
		failRate: opts.FailureRate, failBurst: opts.FailureBurst, maxSources: opts.MaxSources,
		awsKeys:  opts.AWSKeys,
		failures: make(map[throttleKey]*rate.Limiter),
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

// tokenTable is the token table: a base map, rebuilt by Replace, and a
// small overlay of the changes Patch made since (a nil entry: removed), so
// that one change among 100,000 tokens copies the overlay, not the base.
// Both maps are never written after the table is published.
type tokenTable struct {
	base map[string]Entry
	over map[string]*Entry
}

// maxOverlay is how many patched key ids the overlay holds before Patch
// folds it into a new base.
const maxOverlay = 1024

func (t *tokenTable) get(kid string) (Entry, bool) {
	if e, ok := t.over[kid]; ok {
		if e == nil {
			return Entry{}, false
		}
		return *e, true
	}
	e, ok := t.base[kid]
	return e, ok
}

// Replace swaps the whole token table; the next attempt sees the new one.
func (r *Registry) Replace(entries []Entry) {
	m := make(map[string]Entry, len(entries))
	for _, e := range entries {
		m[e.Record.KeyID] = e
	}
	r.write.Lock()
	r.table.Store(&tokenTable{base: m})
	r.write.Unlock()
}

// Patch sets the entries of set and drops the key ids of remove, in one
// swap: the changes go to a copy of the overlay (folded into a copy of the
// base once it holds maxOverlay key ids), so one change costs about the
// overlay, not a rebuild of every entry.
func (r *Registry) Patch(set []Entry, remove []string) {
	r.write.Lock()
	defer r.write.Unlock()
	cur := r.table.Load()
	over := make(map[string]*Entry, len(cur.over)+len(set)+len(remove))
	maps.Copy(over, cur.over)
	for _, k := range remove {
		over[k] = nil
	}
	for _, e := range set {
		over[e.Record.KeyID] = &e
	}
	next := &tokenTable{base: cur.base, over: over}
	if len(over) > maxOverlay {
		base := maps.Clone(cur.base)
		for k, e := range over {
			if e == nil {
				delete(base, k)
			} else {
				base[k] = *e
			}
		}
		next = &tokenTable{base: base}
	}
	r.table.Store(next)
}

// Authenticate resolves token to its tenant. When username is not empty it
// must be the tenant's id.
//
// Failures are throttled on two budgets so that guessing stays bounded while
// nobody can lock out someone else's correct token:
//   - a token whose key id is known is checked against its (source, key id)
//     budget first: once that is spent the attempt is refused with
//     CodeAuthThrottled without being verified, so secrets of one key id
//     can be guessed at FailureRate per source at most. Its failures are
//     also charged to the source's budget.
//   - a token whose key id is unknown (or that is malformed) is checked
//     against the source's budget only: guessing key ids is bounded per
//     source.
//
// So the source's budget never refuses a known key id: tenant B's correct
// token passes from a source where tenant A's app (or an attacker behind the
// same NAT) spent every failure, and A's correct token passes from any other
// source. A known key id's failure is answered CodeAuthThrottled rather than
// CodeBadCredentials while the source's budget is spent, so the answers do
// not tell an attacker which key ids exist.
func (r *Registry) Authenticate(_ context.Context, username, token string, src netip.Addr) (*gateway.Tenant, error) {
	var (
		e     Entry
		known bool
	)
	if kid, ok := KeyID(token); ok {
		e, known = r.table.Load().get(kid)
	}
	return r.attempt(src, e, known, func() bool {
		return e.Record.Hash.Matches(token) && (username == "" || username == e.Tenant.ID) &&
			(e.Expires.IsZero() || r.now().Before(e.Expires))
	}, "invalid credentials", "invalid credentials")
}

// attempt throttles and charges one attempt from src as Authenticate
// describes, for a token (Authenticate) or an AWS key (VerifyAWS): e is the
// table's entry of the presented key id when known; ok, called only then,
// reports whether the presented secret is right. unknownMsg and wrongMsg
// are the CodeBadCredentials messages of an unknown key id and of a wrong
// secret.
func (r *Registry) attempt(src netip.Addr, e Entry, known bool, ok func() bool, unknownMsg, wrongMsg string) (*gateway.Tenant, error) {
	srcKey := throttleKey{src: gateway.SourceKey(src)}
	if !known {
		if r.throttled(srcKey) {
			return nil, r.throttledError()
		}
		r.fail(srcKey)
		return nil, &gateway.Error{Code: gateway.CodeBadCredentials, Msg: unknownMsg}
	}
	// The key comes from the table, not the token, so the table never
	// holds on to a presented (wrong) secret.
	kidKey := throttleKey{src: srcKey.src, kid: e.Record.KeyID}
	if r.throttled(kidKey) {
		return nil, r.throttledError()
	}
	if ok() {
		return e.Tenant, nil
	}
	if srcSpent := r.fail(kidKey, srcKey); srcSpent {
		return nil, r.throttledError()
	}
	return nil, &gateway.Error{Code: gateway.CodeBadCredentials, Msg: wrongMsg}
}

func (r *Registry) throttledError() *gateway.Error {
	return &gateway.Error{Code: gateway.CodeAuthThrottled, Msg: "too many failed attempts", RetryAfter: r.retryAfter()}
}

func (r *Registry) retryAfter() time.Duration {
	return time.Duration(float64(time.Second) / float64(r.failRate))
}

func (r *Registry) throttled(key throttleKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.failures[key]
	return ok && l.TokensAt(r.now()) < 1
}

// fail charges one failure to each budget in keys. It reports whether the
// last of them was already spent before this failure.
func (r *Registry) fail(keys ...throttleKey) (lastWasSpent bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range keys {
		l, ok := r.failures[key]
		if !ok {
			if len(r.failures) >= r.maxSources {
				r.sweepLocked(now)
			}
			l = rate.NewLimiter(r.failRate, r.failBurst)
			r.failures[key] = l
		}
		lastWasSpent = !l.AllowN(now, 1)
		if !lastWasSpent && l.TokensAt(now) < 1 {
			if key.kid == "" {
				r.log.Warn("auth throttled", "src", key.src.String())
			} else {
				r.log.Warn("auth throttled", "src", key.src.String(), "key_id", key.kid)
			}
		}
	}
	return lastWasSpent
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
