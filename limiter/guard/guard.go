package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	// store keeps them store.DefaultSentTTL, the dashboard's longest span;
	// the breaker needs 2 hours at most).
	sentLookback = 2 * time.Hour
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
	Notify         Notifier  // optional: the apps' webhooks
	// Status, when set, keeps each message's events for StatusTTL
	// (default store.DefaultMessageTTL) for its app.
	Status     StatusStore
	StatusTTL  time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
	CheckEvery time.Duration // the record check of active tenants; default 1 s
	EvalEvery  time.Duration // re-evaluation (sent counters, half-open judgement, windows); default 10 s
	// Windows, when set, gives each tenant's first-contact window: events
	// then settle first contacts (window.go) when the Store implements
	// store.WindowStore.
	Windows WindowFunc
}

// Guard is the feedback.Processor and the breakers' keeper. Start runs its
// propagation loops.
type Guard struct {
	st        Store
	cfg       func(string) (breaker.Config, bool)
	tenants   atomic.Pointer[[]string]
	account   *breaker.Config
	scope     string
	supTTL    time.Duration
	deny      DenyCache
	alerts    *Alerter
	notify    Notifier
	status    StatusStore
	statusTTL time.Duration
	log       *slog.Logger
	now       func() time.Time
	check     time.Duration
	eval      time.Duration
	m         *metrics
	win       *windows
	mu        sync.Mutex
	seen      map[string]store.BreakerState // last state mirrored per tenant (bounded by the tenants)
	lastEval  time.Time
}

var _ feedback.Processor = (*Guard)(nil)

// New returns a Guard built from opts.
func New(opts Options) (*Guard, error) {
	if opts.Store == nil || opts.Config == nil {
		return nil, errors.New("guard: Options.Store and Config are required")
	}
	g := &Guard{st: opts.Store, cfg: opts.Config, account: opts.Account, scope: opts.SuppressionScope,
		supTTL: opts.SuppressionTTL, deny: opts.Deny, alerts: opts.Alerts, notify: opts.Notify, status: opts.Status, statusTTL: opts.StatusTTL, log: opts.Logger, now: opts.Now,
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
	if g.statusTTL <= 0 {
		g.statusTTL = store.DefaultMessageTTL
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
	if g.win, err = newWindows(opts.Store, opts.Windows, opts.Registerer); err != nil {
		return nil, err
	}
	g.SetTenants(opts.Tenants)
	return g, nil
}

// data is the guard's part of a breaker record.
type data struct {
	Snap    breaker.Snapshot `json:"snap"`
	Sent    map[int64]int64  `json:"sent,omitempty"` // unix minute -> recipients fed to the breaker
	History []store.Trip     `json:"history,omitempty"`
	// Feedback: hard bounces and complaints by the unix minute the mail
	// was sent, over the last feedbackKeep, that nothing resets (a trip, a
	// force-open or a reset restarts Snap's window): the dashboard's
	// per-minute series (MinuteCounts).
	Feedback map[int64]breaker.Bucket `json:"feedback,omitempty"`
	// Timeline: trips, half-open probes and their outcomes, resets and
	// forced opens, oldest first, at most maxTimeline (timeline.go).
	Timeline []TimelineEntry `json:"timeline,omitempty"`
}

// feedbackKeep is how long data.Feedback keeps a minute: the dashboard's
// longest span.
const feedbackKeep = store.SeriesSpan

// noteFeedback adds an observation's bounces and complaints to d.Feedback
// and drops the minutes older than feedbackKeep.
func (d *data) noteFeedback(o *breaker.Observation, now time.Time) {
	if o == nil || (o.HardBounces == 0 && o.Complaints == 0) {
		return
	}
	oldest := now.Add(-feedbackKeep).Unix() / 60
	at := o.MailTime.Unix() / 60
	if at < oldest {
		return
	}
	if d.Feedback == nil {
		d.Feedback = map[int64]breaker.Bucket{}
	}
	b := d.Feedback[at]
	b.At = at
	b.Bounces += int64(o.HardBounces)
	b.Complaints += int64(o.Complaints)
	d.Feedback[at] = b
	for m := range d.Feedback {
		if m < oldest {
			delete(d.Feedback, m)
		}
	}
}

// minuteCounts merges the breaker's minute buckets with Feedback (which
// outlives a trip): unix minute -> counts.
func (d *data) minuteCounts() map[int64]breaker.Bucket {
	out := make(map[int64]breaker.Bucket, len(d.Snap.Minutes)+len(d.Feedback))
	for _, b := range d.Snap.Minutes {
		if b.At != 0 {
			out[b.At] = b
		}
	}
	for at, f := range d.Feedback {
		b := out[at]
		b.At = at
		b.Bounces, b.Complaints = max(b.Bounces, f.Bounces), max(b.Complaints, f.Complaints)
		out[at] = b
	}
	return out
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

// input is what one update gives a breaker.
type input struct {
	// feed: the store's per-minute sent counters not yet fed.
	feed bool
	// sent: more recipients sent, by unix minute (a tenant update's
	// counters, fed to the account guard).
	sent map[int64]int64
	// obs: an event's hard bounces and complaints.
	obs *breaker.Observation
	// op: an operator's command (breaker.Reset, breaker.ForceOpen). It
	// runs before the observations; no caller gives both.
	op func(breaker.Snapshot, time.Time) (breaker.Snapshot, []breaker.Change)
	// opName names op in the timeline ("reset", "forced_open").
	opName string
}

// result is what one update did.
type result struct {
	changes []breaker.Change
	deltas  map[int64]int64 // sent recipients newly fed, by minute
	rec     store.BreakerRecord
	stats   breaker.Stats
	waited  bool
}

// update steps tenant's breaker inside one atomic record update: the
// operator's command, then the sent counters and the observation, then the
// admission fields are derived from the new snapshot.
func (g *Guard) update(ctx context.Context, tenant string, cfg breaker.Config, in input) (result, error) {
	now := g.now()
	var res result
	waited, err := g.st.UpdateBreakerRecord(ctx, tenant, func(rec *store.BreakerRecord) (bool, error) {
		res = result{deltas: map[int64]int64{}}
		d := g.decode(tenant, rec.Data)
		var obs []breaker.Observation
		if in.feed {
			fed, err := g.feedSent(ctx, tenant, &d, now, res.deltas)
			if err != nil {
				return false, err
			}
			obs = fed
		}
		obs = append(obs, sentObservations(in.sent, now)...)
		if in.obs != nil {
			obs = append(obs, *in.obs)
		}
		d.noteFeedback(in.obs, now)
		snap := d.Snap
		if in.op != nil {
			snap, res.changes = in.op(snap, now)
		}
		snap, changes, err := breaker.Step(cfg, snap, now, obs...)
		if err != nil {
			return false, err
		}
		opChanges := len(res.changes)
		res.changes = append(res.changes, changes...)
		before := d.Snap
		d.Snap = snap
		opName := ""
		if in.op != nil {
			opName = in.opName
		}
		d.noteTimeline(before, snap, res.changes, opChanges, opName, now)
		res.stats = snap.Stats(cfg, now)
		for _, c := range res.changes {
			if c.To == store.Open || c.To == store.ForcedOpen {
				d.History = append(d.History, store.Trip{At: c.At, Reason: c.Reason})
			}
		}
		if len(d.History) > maxHistory {
			d.History = d.History[len(d.History)-maxHistory:]
		}
		next := derive(rec.Breaker, d.Snap, len(res.changes) > 0)
		changed := len(res.changes) > 0 || len(res.deltas) > 0 || len(in.sent) > 0 || in.obs != nil || in.op != nil ||
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

// sentObservations turns recipients sent per unix minute into
// observations, oldest minute first.
func sentObservations(sent map[int64]int64, now time.Time) []breaker.Observation {
	var out []breaker.Observation
	for _, m := range slices.Sorted(maps.Keys(sent)) {
		out = append(out, breaker.Observation{MailTime: minuteTime(m, now), Sent: int(sent[m])})
	}
	return out
}

// feedSent returns the store's per-minute sent counters not yet fed, as
// observations, and remembers them as fed in d.
func (g *Guard) feedSent(ctx context.Context, tenant string, d *data, now time.Time, deltas map[int64]int64) ([]breaker.Observation, error) {
	from := now.Add(-sentLookback)
	first, counts, err := g.st.SentMinutes(ctx, tenant, from, now)
	if err != nil {
		return nil, err
	}
	var obs []breaker.Observation
	for i, c := range counts {
		m := first + int64(i)
		if seen := d.Sent[m]; c > seen {
			obs = append(obs, breaker.Observation{MailTime: minuteTime(m, now), Sent: int(c - seen)})
			deltas[m] = c - seen
			d.Sent[m] = c
		}
	}
	for m := range d.Sent {
		if m < first {
			delete(d.Sent, m)
		}
	}
	return obs, nil
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
		if s.State == store.HalfOpen && cur.State == store.Open {
			return store.Breaker{State: store.HalfOpen, Probes: cur.Probes}
		}
		if s.State == cur.State || (s.State == store.Closed && cur.State == "") {
			return cur
		}
	}
	switch s.State {
	case store.Open:
		return store.Breaker{State: store.Open, OpenUntil: time.UnixMilli(s.OpenUntil).UTC(), Probes: int64(s.ProbeBudget)}
	case store.HalfOpen:
		if cur.State == store.HalfOpen || cur.State == store.Open {
			return store.Breaker{State: store.HalfOpen, Probes: cur.Probes}
		}
		return store.Breaker{State: store.HalfOpen, Probes: int64(s.ProbeBudget)}
	case store.ForcedOpen:
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
	var suppressed []string
	reason := ev.SuppressionReason()
	if reason != "" {
		var err error
		if suppressed, err = g.suppress(ctx, ev, reason); err != nil {
			g.m.events.WithLabelValues(string(ev.Type), "error").Inc()
			return err
		}
		outcome = "suppressed"
	}
	hb, cp := ev.HardBounces(), ev.Complaints()
	if hb > 0 || cp > 0 {
		obs := breaker.Observation{MailTime: ev.MailTime, EventTime: ev.EventTime, HardBounces: hb, Complaints: cp}
		res, err := g.update(ctx, ev.Tenant, cfg, input{feed: true, obs: &obs})
		if err != nil {
			g.m.events.WithLabelValues(string(ev.Type), "error").Inc()
			return fmt.Errorf("breaker of %s: %w", ev.Tenant, err)
		}
		g.after(ctx, ev.Tenant, res)
		if err := g.accountUpdate(ctx, res.deltas, &obs); err != nil {
			g.log.Error("account guard update failed", "err", err.Error())
		}
	}
	g.settle(ctx, ev)
	g.m.events.WithLabelValues(string(ev.Type), outcome).Inc()
	g.recordStatus(ctx, ev)
	if g.notify != nil {
		g.notify.Event(ctx, ev)
		if len(suppressed) > 0 {
			g.notify.Suppressed(ctx, ev, suppressed, reason, g.scope)
		}
	}
	return nil
}

// suppress puts the event's recipients on the suppression list and
// returns those it suppressed.
func (g *Guard) suppress(ctx context.Context, ev *feedback.Event, reason string) ([]string, error) {
	now := g.now()
	var done []string
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
			return nil, fmt.Errorf("suppression: %w", err)
		}
		done = append(done, sp.Address)
		g.log.Info("recipient suppressed", "tenant", ev.Tenant, "scope", g.scope, "reason", reason, "ses_message_id", ev.SESMessageID)
	}
	return done, nil
}

// after logs, counts, alerts and propagates what an update did.
func (g *Guard) after(ctx context.Context, tenant string, res result) {
	g.m.set(tenant, res.rec, res.stats)
	for _, c := range res.changes {
		ev, level := "", slog.LevelInfo
		switch {
		case c.To == store.ForcedOpen:
			ev, level = "forced_open", slog.LevelError
		case c.To == store.Open:
			ev, level = "trip", slog.LevelError
		case c.To == store.HalfOpen:
			ev = "half_open"
		case c.From == store.Closed && c.To == store.Closed && c.Warning:
			ev, level = "warning", slog.LevelWarn
		case c.From == store.Closed && c.To == store.Closed:
			ev = "warning_cleared"
		default:
			ev = "closed"
		}
		if ev == "trip" || ev == "forced_open" {
			g.m.trips.WithLabelValues(tenant).Inc()
		}
		g.log.Log(ctx, level, "breaker "+ev, "tenant", tenant, "from", string(c.From), "to", string(c.To),
			"reason", c.Reason, "open_until", c.OpenUntil, "durable_ack", res.waited)
		if g.alerts != nil {
			text := fmt.Sprintf("sesgate: tenant %s breaker %s (%s)", tenant, ev, c.Reason)
			if tenant == AccountID {
				text = fmt.Sprintf("sesgate: ACCOUNT guard %s (%s)", ev, c.Reason)
			}
			g.alerts.Send(Alert{Text: text, Tenant: tenant, Event: ev, State: c.To, Reason: c.Reason, OpenUntil: c.OpenUntil, At: c.At})
		}
	}
	g.notifyChanges(ctx, tenant, res.changes)
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

// Scope returns the suppression scope in use.
func (g *Guard) Scope() string { return g.scope }

// SetTenants replaces the tenants the account guard ranks (a policy reload).
func (g *Guard) SetTenants(ids []string) {
	ids = slices.Clone(ids)
	g.tenants.Store(&ids)
}
