package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// Store is what the guard needs of the shared store; store/redisstore and
// store/boltstore implement it.
type Store interface {
	AddSuppression(ctx context.Context, s store.Suppression) error
	GetBreakerRecord(ctx context.Context, tenant string) (store.BreakerRecord, error)
	// GetBreaker reads only the admission fields (the per-second check).
	GetBreaker(ctx context.Context, tenant string) (store.Breaker, error)
	// UpdateBreakerRecord is one atomic read-modify-write; fn may run more
	// than once and returns false to write nothing.
	UpdateBreakerRecord(ctx context.Context, tenant string, fn func(*store.BreakerRecord) (bool, error)) (waited bool, err error)
	SentMinutes(ctx context.Context, tenant string, from, to time.Time) (first int64, counts []int64, err error)
	PublishBreaker(ctx context.Context, tenant string) error
	SubscribeBreakers(ctx context.Context, fn func(tenant string)) error
}

// DenyCache is the limiter's local refusal cache (limiter.Shared).
type DenyCache interface {
	Deny(id string, ge *gateway.Error, until time.Time)
	Undeny(id string)
	Tenants() []string
}

// Suppression scopes.
const (
	ScopeGlobal = "global"
	ScopeTenant = "tenant"
)

// AccountID is the record name of the account guard ("_" cannot start a
// tenant id).
const AccountID = "_account"

// Defaults of Options.
const (
	DefaultCheckEvery = time.Second
	DefaultEvalEvery  = 10 * time.Second
	// sentLookback is how far back the sent counters are re-read (the
	// store keeps store.DefaultSentTTL).
	sentLookback = store.DefaultSentTTL
	maxHistory   = 20
)

// Options configure New. Store and Config are required.
type Options struct {
	Store Store
	// Config returns a tenant's breaker config; false for an unknown
	// tenant.
	Config func(tenant string) (breaker.Config, bool)
	// Tenants lists the configured tenants (the account guard ranks them).
	Tenants []string
	// Account, when set, runs the account guard with it.
	Account *breaker.Config
	// SuppressionScope is ScopeGlobal (default) or ScopeTenant.
	SuppressionScope string
	// SuppressionTTL: suppressions from events expire after it; 0 never.
	SuppressionTTL time.Duration
	Deny           DenyCache // optional
	Alerts         *Alerter  // optional
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
	Now            func() time.Time
	CheckEvery     time.Duration // the record check of active tenants; default 1 s
	EvalEvery      time.Duration // re-evaluation (sent counters, half-open judgement); default 10 s
}

// Guard is the feedback.Processor and the breakers' keeper. Start runs its
// propagation loops.
type Guard struct {
	st       Store
	cfg      func(string) (breaker.Config, bool)
	tenants  atomic.Pointer[[]string]
	account  *breaker.Config
	scope    string
	supTTL   time.Duration
	deny     DenyCache
	alerts   *Alerter
	log      *slog.Logger
	now      func() time.Time
	check    time.Duration
	eval     time.Duration
	m        *metrics
	mu       sync.Mutex
	seen     map[string]store.BreakerState // last state mirrored per tenant (bounded by the tenants)
	lastEval time.Time
}

var _ feedback.Processor = (*Guard)(nil)

// New returns a Guard built from opts.
func New(opts Options) (*Guard, error) {
	if opts.Store == nil || opts.Config == nil {
		return nil, errors.New("guard: Options.Store and Config are required")
	}
	g := &Guard{st: opts.Store, cfg: opts.Config, account: opts.Account, scope: opts.SuppressionScope,
		supTTL: opts.SuppressionTTL, deny: opts.Deny, alerts: opts.Alerts, log: opts.Logger, now: opts.Now,
		check: opts.CheckEvery, eval: opts.EvalEvery, seen: map[string]store.BreakerState{}}
	switch g.scope {
	case "":
		g.scope = ScopeGlobal
	case ScopeGlobal, ScopeTenant:
	default:
		return nil, fmt.Errorf("guard: suppression scope %q: want global or tenant", g.scope)
	}
	if g.account != nil {
		if err := g.account.Validate(); err != nil {
			return nil, fmt.Errorf("guard: account guard: %w", err)
		}
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.check <= 0 {
		g.check = DefaultCheckEvery
	}
	if g.eval <= 0 {
		g.eval = DefaultEvalEvery
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	g.m = m
	g.SetTenants(opts.Tenants)
	return g, nil
}

// Trip is one time a breaker opened.
type Trip struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Forced bool      `json:"forced,omitempty"`
}

// data is the guard's part of a breaker record.
type data struct {
	Snap    breaker.Snapshot `json:"snap"`
	Sent    map[int64]int64  `json:"sent,omitempty"` // unix minute -> recipients fed to RecordSent
	History []Trip           `json:"history,omitempty"`
}

func (g *Guard) decode(tenant string, raw []byte) data {
	var d data
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &d); err != nil {
			g.log.Error("breaker data unreadable; starting afresh", "tenant", tenant, "err", err.Error())
			d = data{}
		}
	}
	if d.Sent == nil {
		d.Sent = map[int64]int64{}
	}
	return d
}

// result is what one update did.
type result struct {
	changes []breaker.Change
	deltas  map[int64]int64 // sent recipients newly fed, by minute
	rec     store.BreakerRecord
	stats   breaker.Stats
	waited  bool
}

// update runs op on tenant's breaker inside one atomic record update: the
// sent counters are fed first (sync), then op, then the admission fields
// are derived from the snapshot.
func (g *Guard) update(ctx context.Context, tenant string, cfg breaker.Config, sync bool, extra map[int64]int64, op func(b *breaker.Breaker)) (result, error) {
	now := g.now()
	var res result
	waited, err := g.st.UpdateBreakerRecord(ctx, tenant, func(rec *store.BreakerRecord) (bool, error) {
		res = result{deltas: map[int64]int64{}}
		d := g.decode(tenant, rec.Data)
		b, err := breaker.New(breaker.Options{Config: cfg, Now: g.now, State: &d.Snap,
			OnStateChange: func(c breaker.Change) { res.changes = append(res.changes, c) }})
		if err != nil {
			return false, err
		}
		if sync {
			if err := g.feedSent(ctx, tenant, b, &d, now, res.deltas); err != nil {
				return false, err
			}
		}
		for m, n := range extra {
			b.RecordSent(minuteTime(m, now), int(n))
		}
		if op != nil {
			op(b)
		}
		b.Tick()
		d.Snap = b.Snapshot()
		res.stats = b.Stats()
		for _, c := range res.changes {
			if c.To == breaker.Open || c.To == breaker.ForcedOpen {
				d.History = append(d.History, Trip{At: c.At, Reason: c.Reason, Forced: c.To == breaker.ForcedOpen})
			}
		}
		if len(d.History) > maxHistory {
			d.History = d.History[len(d.History)-maxHistory:]
		}
		next := derive(rec.Breaker, d.Snap, len(res.changes) > 0)
		changed := len(res.changes) > 0 || len(res.deltas) > 0 || len(extra) > 0 || op != nil ||
			next != rec.Breaker || rec.Warning != d.Snap.Warning
		if !changed {
			res.rec = *rec
			return false, nil
		}
		raw, err := json.Marshal(d)
		if err != nil {
			return false, err
		}
		rec.Breaker, rec.Warning, rec.Data = next, d.Snap.Warning, raw
		res.rec = *rec
		return true, nil
	})
	res.waited = waited
	return res, err
}

// feedSent feeds the store's per-minute sent counters not yet fed.
func (g *Guard) feedSent(ctx context.Context, tenant string, b *breaker.Breaker, d *data, now time.Time, deltas map[int64]int64) error {
	from := now.Add(-sentLookback)
	first, counts, err := g.st.SentMinutes(ctx, tenant, from, now)
	if err != nil {
		return err
	}
	for i, c := range counts {
		m := first + int64(i)
		if seen := d.Sent[m]; c > seen {
			b.RecordSent(minuteTime(m, now), int(c-seen))
			deltas[m] = c - seen
			d.Sent[m] = c
		}
	}
	for m := range d.Sent {
		if m < first {
			delete(d.Sent, m)
		}
	}
	return nil
}

// minuteTime is a time inside unix minute m, not after now (so a send in
// the current minute counts as a half-open probe).
func minuteTime(m int64, now time.Time) time.Time {
	t := time.Unix(m*60+59, 0)
	if t.After(now) {
		return now
	}
	return t
}

// derive computes the admission fields from the snapshot. Without a state
// change the record's own (admission moved open to half_open and spends
// probes) wins.
func derive(cur store.Breaker, s breaker.Snapshot, changed bool) store.Breaker {
	if !changed {
		if s.State == breaker.HalfOpen && cur.State == store.Open {
			return store.Breaker{State: store.HalfOpen, Probes: cur.Probes}
		}
		if string(s.State) == string(cur.State) || (s.State == breaker.Closed && cur.State == "") {
			return cur
		}
	}
	switch s.State {
	case breaker.Open:
		return store.Breaker{State: store.Open, OpenUntil: time.UnixMilli(s.OpenUntil).UTC(), Probes: int64(s.ProbeBudget)}
	case breaker.HalfOpen:
		if cur.State == store.HalfOpen || cur.State == store.Open {
			return store.Breaker{State: store.HalfOpen, Probes: cur.Probes}
		}
		return store.Breaker{State: store.HalfOpen, Probes: int64(s.ProbeBudget)}
	case breaker.ForcedOpen:
		return store.Breaker{State: store.ForcedOpen}
	}
	return store.Breaker{State: store.Closed}
}

// ProcessEvent implements feedback.Processor.
func (g *Guard) ProcessEvent(ctx context.Context, ev *feedback.Event) error {
	cfg, ok := g.cfg(ev.Tenant)
	if !ok {
		g.m.events.WithLabelValues(string(ev.Type), "unknown_tenant").Inc()
		return nil // the Ingester checks tenants; nothing to do here
	}
	outcome := "counted"
	if reason := ev.SuppressionReason(); reason != "" {
		if err := g.suppress(ctx, ev, reason); err != nil {
			g.m.events.WithLabelValues(string(ev.Type), "error").Inc()
			return err
		}
		outcome = "suppressed"
	}
	hb, cp := ev.HardBounces(), ev.Complaints()
	if hb > 0 || cp > 0 {
		obs := breaker.Observation{MailTime: ev.MailTime, EventTime: ev.EventTime, HardBounces: hb, Complaints: cp}
		res, err := g.update(ctx, ev.Tenant, cfg, true, nil, func(b *breaker.Breaker) { b.Observe(obs) })
		if err != nil {
			g.m.events.WithLabelValues(string(ev.Type), "error").Inc()
			return fmt.Errorf("breaker of %s: %w", ev.Tenant, err)
		}
		g.after(ctx, ev.Tenant, res)
		if err := g.accountUpdate(ctx, res.deltas, &obs); err != nil {
			g.log.Error("account guard update failed", "err", err.Error())
		}
	}
	g.m.events.WithLabelValues(string(ev.Type), outcome).Inc()
	return nil
}

func (g *Guard) suppress(ctx context.Context, ev *feedback.Event, reason string) error {
	now := g.now()
	tenant := ""
	if g.scope == ScopeTenant {
		tenant = ev.Tenant
	}
	for _, addr := range ev.Addresses() {
		sp := store.Suppression{Tenant: tenant, Address: addr, Reason: store.SuppressionReason(reason), Added: now}
		if g.supTTL > 0 {
			sp.Expires = now.Add(g.supTTL)
		}
		if err := sp.Normalize(); err != nil {
			g.log.Warn("event recipient not suppressed: bad address", "tenant", ev.Tenant, "err", err.Error())
			continue
		}
		if err := g.st.AddSuppression(ctx, sp); err != nil {
			return fmt.Errorf("suppression: %w", err)
		}
		g.log.Info("recipient suppressed", "tenant", ev.Tenant, "scope", g.scope, "reason", reason, "ses_message_id", ev.SESMessageID)
	}
	return nil
}

// after logs, counts, alerts and propagates what an update did.
func (g *Guard) after(ctx context.Context, tenant string, res result) {
	g.m.set(tenant, res.rec, res.stats)
	for _, c := range res.changes {
		ev, level := "", slog.LevelInfo
		switch {
		case c.To == breaker.ForcedOpen:
			ev, level = "forced_open", slog.LevelError
		case c.To == breaker.Open:
			ev, level = "trip", slog.LevelError
		case c.To == breaker.HalfOpen:
			ev = "half_open"
		case c.From == breaker.Closed && c.To == breaker.Closed && c.Warning:
			ev, level = "warning", slog.LevelWarn
		case c.From == breaker.Closed && c.To == breaker.Closed:
			ev = "warning_cleared"
		default:
			ev = "closed"
		}
		if ev == "trip" || ev == "forced_open" {
			g.m.trips.WithLabelValues(label(tenant)).Inc()
		}
		g.log.Log(ctx, level, "breaker "+ev, "tenant", tenant, "from", string(c.From), "to", string(c.To),
			"reason", c.Reason, "open_until", c.OpenUntil, "durable_ack", res.waited)
		if g.alerts != nil {
			text := fmt.Sprintf("sesgate: tenant %s breaker %s (%s)", tenant, ev, c.Reason)
			if tenant == AccountID {
				text = fmt.Sprintf("sesgate: ACCOUNT guard %s (%s)", ev, c.Reason)
			}
			g.alerts.Send(Alert{Text: text, Tenant: tenant, Event: ev, State: string(c.To), Reason: c.Reason, OpenUntil: c.OpenUntil, At: c.At})
		}
	}
	if len(res.changes) > 0 && tenant != AccountID {
		g.apply(tenant, res.rec)
		if err := g.st.PublishBreaker(ctx, tenant); err != nil {
			g.log.Warn("breaker change not announced; replicas see it within their check interval", "tenant", tenant, "err", err.Error())
		}
	}
}

// apply mirrors a record into the local deny cache: open and forced open
// are refused locally; a move to closed or half-open drops any cached
// refusal (a probe-budget refusal included) so the tenant is asked about
// at once.
func (g *Guard) apply(tenant string, r store.BreakerRecord) {
	if g.deny == nil || tenant == AccountID {
		return
	}
	now := g.now()
	ge := &gateway.Error{Code: gateway.CodeBreakerOpen, Msg: "sending paused: too many bounces or complaints"}
	state := r.State
	if state == "" {
		state = store.Closed
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	last, known := g.seen[tenant]
	switch {
	case state == store.ForcedOpen:
		ge.RetryAfter = store.FrozenRetry
		g.deny.Deny(tenant, ge, now.Add(store.FrozenRetry))
	case state == store.Open && r.OpenUntil.After(now):
		ge.RetryAfter = r.OpenUntil.Sub(now)
		g.deny.Deny(tenant, ge, r.OpenUntil)
	case known && last != state:
		g.deny.Undeny(tenant)
	}
	if state == store.Closed && !known {
		return // nothing to remember for a tenant that never tripped here
	}
	g.seen[tenant] = state
}

func label(tenant string) string { return tenant }

// Scope returns the suppression scope in use.
func (g *Guard) Scope() string { return g.scope }

// SetTenants replaces the tenants the account guard ranks (a policy reload).
func (g *Guard) SetTenants(ids []string) {
	ids = slices.Clone(ids)
	g.tenants.Store(&ids)
}
