package limiter

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// Admitter is the part of a store.Store that Shared uses.
type Admitter interface {
	Admit(ctx context.Context, req store.AdmitRequest) (store.Decision, error)
	CheckSuppressed(ctx context.Context, tenant string, addrs []string) ([]store.Suppression, error)
	// AddUsage is the reconcile of degraded admissions (store.Store).
	AddUsage(ctx context.Context, tenant string, at time.Time, add store.Usage) error
}

// Defaults of SharedOptions.
const (
	DefaultCallTimeout      = 50 * time.Millisecond
	DefaultDegradedWindow   = 60 * time.Second
	DefaultDegradedFraction = 0.5
	DefaultUnavailableRetry = 30 * time.Second
	DefaultMaxCache         = 60 * time.Second
	// DegradedDefaultRate (messages per second, before the fraction) applies
	// in degraded mode to a tenant without a rate or quota.
	DegradedDefaultRate = 1.0
)

// SharedOptions configure NewShared. Store is required.
type SharedOptions struct {
	Store  Admitter
	Logger *slog.Logger
	Now    func() time.Time
	// CallTimeout bounds one store call (default 50 ms); past it the
	// store counts as failed for this message.
	CallTimeout time.Duration
	// DegradedWindow is how long after the first store failure the
	// degraded budget applies (default 60 s; negative: none, fail closed at
	// once). After it, CodeStoreUnavailable with UnavailableRetry.
	DegradedWindow time.Duration
	// DegradedFraction of a tenant's rate is the degraded budget of the
	// whole fleet (default 0.5); each replica takes its share, divided by
	// Replicas (default 1).
	DegradedFraction float64
	Replicas         int
	UnavailableRetry time.Duration // default 30 s
	// MaxCache caps how long one refusal is cached in process (default
	// 60 s), so an operator's unfreeze or a quota raise is seen within it.
	MaxCache time.Duration
	// Registerer, when set, gets the sesgate_admission_* counters.
	Registerer prometheus.Registerer
}

// Stats are counters for tests and the log.
type Stats struct {
	StoreCalls       int64 // Admit calls that reached the store
	CacheRefusals    int64 // refused from the over-limit cache
	PreLimited       int64 // refused by the pre-limiter
	DegradedAdmitted int64 // admitted from the degraded budget
	DegradedRefused  int64 // refused in degraded mode (budget, last known block, window over)
	ShadowHits       int64 // shadow limits that would have refused
	// DegradedRecipients are the recipients of the degraded admissions,
	// Reconciled those of them added to the store since (AddUsage).
	DegradedRecipients int64
	Reconciled         int64
}

// Shared is the pipeline's limiter on a shared store: an over-limit cache,
// a pre-limiter, one store call per message, and the degraded mode. It
// implements gateway.Limiter and gateway.RecipientChecker.
type Shared struct {
	st       Admitter
	log      *slog.Logger
	now      func() time.Time
	timeout  time.Duration
	window   time.Duration
	fraction float64
	replicas int
	unavail  time.Duration
	maxCache time.Duration

	tenants     sync.Map     // tenant id -> *tenantState
	outageStart atomic.Int64 // unix ns of the first failure of the current outage; 0: none

	storeCalls, cacheRefusals, preLimited, degAdmitted, degRefused, shadowHits atomic.Int64
	degRecipients, reconciled                                                  atomic.Int64

	pendingTenants atomic.Int64 // tenants with degraded admissions not yet added to the store
	sweeping       atomic.Bool  // a background reconcile runs

	mDegraded *prometheus.CounterVec
	mRefused  *prometheus.CounterVec
	mShadow   *prometheus.CounterVec
	mHeld     *prometheus.CounterVec // by tenant: configured tenants only
}

var (
	_ gateway.Limiter          = (*Shared)(nil)
	_ gateway.RecipientChecker = (*Shared)(nil)
	_ gateway.TenantChecker    = (*Shared)(nil)
	_ gateway.RatePeeker       = (*Shared)(nil)
)

// cached is an immutable refusal held until until.
type cached struct {
	until   int64 // unix ns
	retryAt int64 // unix ns
	code    gateway.Code
	msg     string
}

type tenantState struct {
	cache   atomic.Pointer[cached]
	blocked atomic.Pointer[gateway.Error] // last known frozen/open; nil when last admitted
	pending atomic.Bool                   // spends is not empty

	mu       sync.Mutex
	limits   gateway.Limits // the limits the limiters were built for
	pre      *rate.Limiter  // nil: no rate
	degraded *rate.Limiter
	// the degraded budget (degraded.go) and the degraded admissions not yet
	// added to the store (oldest first)
	budget budget
	spends []spend

	recMu sync.Mutex // held by a reconcile of the tenant (degraded.go)
}

// NewShared builds a Shared limiter.
func NewShared(opts SharedOptions) (*Shared, error) {
	if opts.Store == nil {
		return nil, errors.New("limiter: Store is required")
	}
	s := &Shared{
		st: opts.Store, log: opts.Logger, now: opts.Now, timeout: opts.CallTimeout, window: opts.DegradedWindow,
		fraction: opts.DegradedFraction, replicas: opts.Replicas, unavail: opts.UnavailableRetry, maxCache: opts.MaxCache,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = DefaultCallTimeout
	}
	if s.window == 0 {
		s.window = DefaultDegradedWindow
	}
	if s.fraction <= 0 || s.fraction > 1 {
		s.fraction = DefaultDegradedFraction
	}
	if s.replicas <= 0 {
		s.replicas = 1
	}
	if s.unavail <= 0 {
		s.unavail = DefaultUnavailableRetry
	}
	if s.maxCache <= 0 {
		s.maxCache = DefaultMaxCache
	}
	if r := opts.Registerer; r != nil {
		s.mDegraded = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_admission_degraded_total", Help: "Admission decisions taken without the store, by outcome.",
		}, []string{"outcome"})
		s.mRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_admission_refused_total", Help: "Messages refused by admission, by reason and where decided (store, cache, prelimit).",
		}, []string{"reason", "by"})
		s.mShadow = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_admission_shadow_total", Help: "Shadow-mode limits that would have refused, by limit.",
		}, []string{"limit"})
		s.mHeld = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_first_contact_held_total", Help: "Messages held back (refused, temporary) by the tenant's first-contact window on this replica.",
		}, []string{"tenant"})
		for _, c := range []prometheus.Collector{s.mDegraded, s.mRefused, s.mShadow, s.mHeld} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Stats returns the counters.
func (s *Shared) Stats() Stats {
	return Stats{
		StoreCalls: s.storeCalls.Load(), CacheRefusals: s.cacheRefusals.Load(), PreLimited: s.preLimited.Load(),
		DegradedAdmitted: s.degAdmitted.Load(), DegradedRefused: s.degRefused.Load(), ShadowHits: s.shadowHits.Load(),
		DegradedRecipients: s.degRecipients.Load(), Reconciled: s.reconciled.Load(),
	}
}

func (s *Shared) state(id string) *tenantState {
	if v, ok := s.tenants.Load(id); ok {
		return v.(*tenantState)
	}
	v, _ := s.tenants.LoadOrStore(id, &tenantState{})
	return v.(*tenantState)
}

// cachedRefusal returns the cached refusal of tenant id, if one holds at
// now. It is the whole cost of refusing a token over its limit.
func (s *Shared) cachedRefusal(id string, now time.Time) *gateway.Error {
	v, ok := s.tenants.Load(id)
	if !ok {
		return nil
	}
	c := v.(*tenantState).cache.Load()
	n := now.UnixNano()
	if c == nil || n >= c.until {
		return nil
	}
	return &gateway.Error{Code: c.code, Msg: c.msg, RetryAfter: time.Duration(c.retryAt - n)}
}

// ForgetCached drops every cached refusal, so the next message of each
// tenant asks the store (an operator unfroze a tenant or reset a breaker).
func (s *Shared) ForgetCached() {
	s.tenants.Range(func(_, v any) bool {
		v.(*tenantState).cache.Store(nil)
		return true
	})
}

// CheckTenant refuses from the over-limit cache only (no I/O): front ends
// call it before reading a message.
func (s *Shared) CheckTenant(t *gateway.Tenant) error {
	if ge := s.cachedRefusal(t.ID, s.now()); ge != nil {
		s.cacheRefusals.Add(1)
		s.countRefused(ge.Code, "cache")
		return ge
	}
	return nil
}

// PeekRate refuses, without I/O and without taking a token, a tenant whose
// pre-limiter has less than one token now: no message of it, however few
// its recipients, would pass Admit's pre-limiter. HTTP calls it before
// reading a body, for rates per recipient too (which are not cached).
func (s *Shared) PeekRate(t *gateway.Tenant) error {
	v, ok := s.tenants.Load(t.ID)
	if !ok {
		return nil
	}
	ts := v.(*tenantState)
	now := s.now()
	ts.mu.Lock()
	pre := ts.pre
	if !sameRates(ts.limits, t.Limits) {
		pre = nil // limits reloaded: Admit rebuilds the limiter
	}
	ts.mu.Unlock()
	if pre == nil {
		return nil
	}
	tokens := pre.TokensAt(now)
	if tokens >= 1 {
		return nil
	}
	s.preLimited.Add(1)
	s.countRefused(gateway.CodeRateLimited, "prelimit")
	d := time.Duration((1 - tokens) / float64(pre.Limit()) * float64(time.Second))
	return &gateway.Error{Code: gateway.CodeRateLimited, Msg: "rate limit exceeded", RetryAfter: d}
}

// Admit decides for one message: cached refusal, pre-limiter, then one
// store call (or the degraded mode when the store fails).
func (s *Shared) Admit(ctx context.Context, t *gateway.Tenant, rcpts []string) ([]*gateway.Error, error) {
	now := s.now()
	if ge := s.cachedRefusal(t.ID, now); ge != nil {
		s.cacheRefusals.Add(1)
		s.countRefused(ge.Code, "cache")
		return nil, ge
	}
	ts := s.state(t.ID)
	degRate, degPerRcpt := s.degradedRate(t.Limits)
	pre, degraded := ts.limiters(t, degRate, degPerRcpt)
	cost := cost(t.Limits, len(rcpts))
	var held *rate.Reservation // the pre-limiter's tokens, given back if the store refuses
	if pre != nil {
		r := pre.ReserveN(now, cost)
		if r.OK() { // a cost above the burst is the store's to refuse
			held = r
			if d := r.DelayFrom(now); d > 0 {
				r.CancelAt(now)
				s.preLimited.Add(1)
				s.countRefused(gateway.CodeRateLimited, "prelimit")
				if !t.Limits.RatePerRecipient {
					// Every message costs one token: none passes here before
					// d, so the front ends may refuse it before reading it.
					ts.cache.Store(&cached{until: now.Add(min(d, s.maxCache)).UnixNano(), retryAt: now.Add(d).UnixNano(),
						code: gateway.CodeRateLimited, msg: "rate limit exceeded"})
				}
				return nil, &gateway.Error{Code: gateway.CodeRateLimited, Msg: "rate limit exceeded", RetryAfter: d}
			}
		}
	}

	req := store.AdmitRequest{Tenant: t.ID, Recipients: rcpts, Limits: t.Limits}
	if !t.WindowActive() { // without Delivery events the static budget applies alone
		req.Limits.FirstContactWindow = gateway.FirstContactWindow{}
	}
	if err := req.Validate(); err != nil { // a bad request is not an outage
		return nil, gateway.Wrap(gateway.CodeInternal, err, "internal error")
	}
	var d store.Decision
	var err error
	if ts.pending.Load() {
		// Degraded admissions of this tenant first, so that the store
		// counts them before it decides; its failure is the store's.
		err = s.reconcile(ctx, t.ID, ts)
	}
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		d, err = s.st.Admit(cctx, req)
		cancel()
		s.storeCalls.Add(1)
	}
	if (err != nil || !d.Admitted) && held != nil {
		// Nothing was sent: the pre-limiter only sheds floods, so it must
		// not hold back the next message for one the store refused.
		held.CancelAt(now)
	}
	if err != nil {
		if ctx.Err() != nil { // the client went away, not the store
			return nil, gateway.Wrap(gateway.CodeShuttingDown, ctx.Err(), "request cancelled")
		}
		return nil, s.degradedAdmit(t, ts, degraded, len(rcpts), err, now)
	}
	if start := s.outageStart.Swap(0); start != 0 {
		s.log.Warn("store reachable again; degraded mode over", "outage", now.Sub(time.Unix(0, start)).String())
	}
	s.startSweep()
	if d.Remaining.Known {
		s.learn(ts, t.Limits, d.Remaining)
	}
	if len(d.Shadowed) > 0 {
		s.shadowHits.Add(int64(len(d.Shadowed)))
		for _, l := range d.Shadowed {
			if s.mShadow != nil {
				s.mShadow.WithLabelValues(l).Inc()
			}
		}
		s.log.Info("shadow limit would refuse", "tenant", t.ID, "limits", d.Shadowed, "rcpts", len(rcpts))
	}
	rejected := rejections(rcpts, d.Suppressed)
	if d.Admitted {
		ts.blocked.Store(nil)
		return rejected, nil
	}
	ge := refusal(d, rejected)
	if d.Reason == store.ReasonFirstWindow && s.mHeld != nil {
		s.mHeld.WithLabelValues(t.ID).Inc()
	}
	switch d.Reason {
	case store.ReasonFrozen, store.ReasonBreakerOpen:
		ts.blocked.Store(&gateway.Error{Code: ge.Code, Msg: ge.Msg})
	}
	if d.CacheFor > 0 {
		hold := min(d.CacheFor, s.maxCache)
		ts.cache.Store(&cached{
			until: now.Add(hold).UnixNano(), retryAt: now.Add(max(d.RetryAfter, hold)).UnixNano(),
			code: ge.Code, msg: ge.Msg,
		})
	}
	s.countRefused(ge.Code, "store")
	return nil, ge
}

// cost is what a message of n recipients takes from a rate.
func cost(l gateway.Limits, n int) int {
	if l.RatePerRecipient {
		return n
	}
	return 1
}

func (s *Shared) countRefused(c gateway.Code, by string) {
	if s.mRefused != nil {
		s.mRefused.WithLabelValues(c.String(), by).Inc()
	}
}

// degradedRate is the fleet-wide degraded budget of a tenant in events per
// second and whether an event is a recipient (true) or a message.
func (s *Shared) degradedRate(l gateway.Limits) (float64, bool) {
	share := s.fraction / float64(s.replicas)
	switch {
	case l.Rate > 0:
		return l.Rate * share, l.RatePerRecipient
	case l.PerHour > 0:
		return float64(l.PerHour) / 3600 * share, true
	case l.PerDay > 0:
		return float64(l.PerDay) / 86400 * share, true
	}
	return DegradedDefaultRate * share, false
}

// limiters returns the pre-limiter (nil without a rate) and the degraded
// limiter, rebuilt when the tenant's limits changed (policy reload).
func (ts *tenantState) limiters(t *gateway.Tenant, degRate float64, perRcpt bool) (*rate.Limiter, *rate.Limiter) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.degraded == nil || !sameRates(ts.limits, t.Limits) {
		ts.limits = t.Limits
		ts.pre = nil
		if t.Limits.Rate > 0 {
			ts.pre = rate.NewLimiter(rate.Limit(t.Limits.Rate), t.Limits.EffectiveBurst())
		}
		burst := 1
		if perRcpt {
			burst = t.MaxRecipients()
		}
		ts.degraded = rate.NewLimiter(rate.Limit(degRate), burst)
	}
	return ts.pre, ts.degraded
}

func sameRates(a, b gateway.Limits) bool {
	return a.Rate == b.Rate && a.Burst == b.Burst && a.RatePerRecipient == b.RatePerRecipient &&
		a.PerHour == b.PerHour && a.PerDay == b.PerDay && a.MaxRecipients == b.MaxRecipients
}

// degradedAdmit decides without the store: window, last known block, rate,
// then the recipient budget (degraded.go). Every decision is logged.
func (s *Shared) degradedAdmit(t *gateway.Tenant, ts *tenantState, lim *rate.Limiter, n int, cause error, now time.Time) error {
	s.outageStart.CompareAndSwap(0, now.UnixNano())
	elapsed := now.Sub(time.Unix(0, s.outageStart.Load()))
	outcome, err := "admitted", error(nil)
	_, perRcpt := s.degradedRate(t.Limits)
	units := 1
	if perRcpt {
		units = n
	}
	switch {
	case s.window < 0 || elapsed >= s.window:
		outcome = "unavailable"
		err = &gateway.Error{Code: gateway.CodeStoreUnavailable, Msg: "policy store unavailable, try again later",
			Cause: cause, RetryAfter: s.unavail}
	case ts.blocked.Load() != nil:
		outcome = "blocked"
		b := ts.blocked.Load()
		err = &gateway.Error{Code: b.Code, Msg: b.Msg, Cause: cause, RetryAfter: store.FrozenRetry}
	case t.WindowActive() && !slices.Contains(t.Limits.Shadow, gateway.LimitFirstContactWindow):
		// The first-contact window lives in the store: without it no
		// message of a windowed tenant can be shown to fit (the known
		// recipients cannot be told from first contacts either).
		outcome = "window"
		err = &gateway.Error{Code: gateway.CodeStoreUnavailable, Msg: "policy store unavailable, try again later", Cause: cause, RetryAfter: s.unavail}
	case !s.fitsBudget(ts, t.Limits, n):
		outcome = "over_quota"
		err = &gateway.Error{Code: gateway.CodeStoreUnavailable, Msg: "policy store unavailable, try again later", Cause: cause, RetryAfter: s.unavail}
	default:
		r := lim.ReserveN(now, units)
		if !r.OK() {
			outcome = "over_budget"
			err = &gateway.Error{Code: gateway.CodeStoreUnavailable, Msg: "policy store unavailable, try again later", Cause: cause, RetryAfter: s.unavail}
		} else if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			outcome = "over_budget"
			err = &gateway.Error{Code: gateway.CodeRateLimited, Msg: "rate limit exceeded", Cause: cause, RetryAfter: d}
		} else if !s.spendBudget(ts, t.Limits, n, now) {
			r.CancelAt(now)
			outcome = "over_quota"
			err = &gateway.Error{Code: gateway.CodeStoreUnavailable, Msg: "policy store unavailable, try again later", Cause: cause, RetryAfter: s.unavail}
		}
	}
	if err == nil {
		s.degAdmitted.Add(1)
	} else {
		s.degRefused.Add(1)
	}
	if s.mDegraded != nil {
		s.mDegraded.WithLabelValues(outcome).Inc()
	}
	s.log.Warn("store unavailable: degraded admission decision", "tenant", t.ID, "outcome", outcome,
		"rcpts", n, "outage", elapsed.String(), "err", cause.Error())
	return err
}

// rejections maps suppressed addresses back to the recipients as given.
func rejections(rcpts []string, sup []store.Suppression) []*gateway.Error {
	if len(sup) == 0 {
		return nil
	}
	out := make([]*gateway.Error, 0, len(sup))
	for _, sp := range sup {
		addr := sp.Address
		for _, r := range rcpts {
			if strings.EqualFold(r, sp.Address) {
				addr = r
				break
			}
		}
		out = append(out, suppressedError(sp, addr))
	}
	return out
}

func suppressedError(sp store.Suppression, addr string) *gateway.Error {
	msg := "recipient suppressed"
	if sp.Reason == store.HardBounce {
		msg = "recipient suppressed after a hard bounce"
	} else if sp.Reason == store.Complaint {
		msg = "recipient suppressed after a complaint"
	}
	return &gateway.Error{Code: sp.Code(), Msg: msg, Recipient: addr}
}

// refusal turns a refused Decision into the client's error.
func refusal(d store.Decision, rejected []*gateway.Error) *gateway.Error {
	ge := &gateway.Error{RetryAfter: d.RetryAfter}
	switch d.Reason {
	case store.ReasonFrozen:
		ge.Code, ge.Msg = gateway.CodeFrozen, "tenant is frozen"
	case store.ReasonBreakerOpen:
		ge.Code, ge.Msg = gateway.CodeBreakerOpen, "sending paused: too many bounces or complaints"
	case store.ReasonRate:
		ge.Code, ge.Msg = gateway.CodeRateLimited, "rate limit exceeded"
	case store.ReasonPerDomainRate:
		ge.Code, ge.Msg = gateway.CodeRateLimited, "rate limit for a recipient domain exceeded"
	case store.ReasonPerHour:
		ge.Code, ge.Msg = gateway.CodeQuotaExceeded, "hourly recipient quota exceeded"
	case store.ReasonPerDay:
		ge.Code, ge.Msg = gateway.CodeQuotaExceeded, "daily recipient quota exceeded"
	case store.ReasonFirstHour, store.ReasonFirstDay:
		ge.Code, ge.Msg = gateway.CodeFirstContactLimited, "too many new recipients; known recipients can still be mailed"
	case store.ReasonFirstWindow:
		ge.Code, ge.Msg = gateway.CodeFirstContactLimited, "first-contact window full: too many new recipients awaiting SES delivery; retry shortly, known recipients can still be mailed"
	case store.ReasonTooMany:
		ge.Code, ge.Msg = gateway.CodeTooManyRecipients, "more recipients than the tenant's burst allows in one message"
	case store.ReasonSuppressed:
		ge.Code, ge.Msg, ge.Rejected = gateway.CodeSuppressed, "every recipient is suppressed", rejected
		if len(rejected) > 0 {
			ge.Code = rejected[0].Code
			for _, r := range rejected {
				if r.Code != ge.Code {
					ge.Code = gateway.CodeSuppressed
				}
			}
		}
		if len(rejected) == 1 {
			ge.Recipient = rejected[0].Recipient
		}
	default:
		ge.Code, ge.Msg = gateway.CodeInternal, "internal error"
		ge.Cause = errors.New("limiter: unknown store reason " + string(d.Reason))
	}
	return ge
}

// CheckRecipient refuses a suppressed recipient (SMTP RCPT). When the store
// cannot answer, the recipient passes here and admission (at DATA) decides
// in degraded mode; during an outage (from the first failed admission to
// the next successful one) it does not ask the store at all, so a RCPT
// costs no call timeout then. Admission checks suppression again.
func (s *Shared) CheckRecipient(ctx context.Context, t *gateway.Tenant, addr string) error {
	if s.outageStart.Load() != 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sup, err := s.st.CheckSuppressed(cctx, t.ID, []string{addr})
	if err != nil {
		s.log.Warn("store unavailable: suppression not checked at RCPT", "tenant", t.ID, "err", err.Error())
		return nil
	}
	if len(sup) > 0 {
		return suppressedError(sup[0], addr)
	}
	return nil
}

// Deny caches a refusal of every message of tenant id until until (capped
// at MaxCache), without asking the store: the feedback side calls it when
// a breaker trips, so even the first message after the trip is refused
// locally. The store still refuses on its own once the cache is gone.
func (s *Shared) Deny(id string, ge *gateway.Error, until time.Time) {
	now := s.now()
	until = minTime(until, now.Add(s.maxCache))
	if !until.After(now) {
		return
	}
	ts := s.state(id)
	ts.cache.Store(&cached{until: until.UnixNano(), retryAt: now.Add(max(ge.RetryAfter, until.Sub(now))).UnixNano(), code: ge.Code, msg: ge.Msg})
	ts.blocked.Store(&gateway.Error{Code: ge.Code, Msg: ge.Msg})
}

// Undeny drops tenant id's cached refusal (a breaker reset or close), so
// the next message asks the store.
func (s *Shared) Undeny(id string) {
	if v, ok := s.tenants.Load(id); ok {
		ts := v.(*tenantState)
		ts.cache.Store(nil)
		ts.blocked.Store(nil)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Tenants returns the ids of the tenants this replica has admitted for
// (bounded by the configured tenants).
func (s *Shared) Tenants() []string {
	var out []string
	s.tenants.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	return out
}
