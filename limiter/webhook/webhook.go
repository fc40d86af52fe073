package webhook

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/store"
)

// Queue is the durable webhook queue of the shared store (both stores
// implement it; store.WebhookItem has the semantics).
type Queue = store.WebhookQueue

// Endpoint is one webhook of a tenant, as the policy gives it.
type Endpoint struct {
	URL            string
	Events         []string // the types wanted (EventTypes)
	Keys           [][]byte // signing keys (ParseSecrets); each signs every delivery
	IncludeSubject bool
	AllowHTTP      bool
	Allow          []netip.Prefix // networks reachable despite the blocked list
}

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 4
	DefaultRetryFor    = 24 * time.Hour
	DefaultBackoff     = 5 * time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultPoll        = time.Second
	DefaultMaxBacklog  = 100_000
	DefaultMaxDead     = 10_000
	DefaultMaxInFlight = 64
	// MaxResponseBytes of a receiver's answer are read (then the
	// connection is reused or dropped); the rest is never read.
	MaxResponseBytes = 4 << 10
	enqueueTimeout   = time.Second
	statsEvery       = 5 * time.Second
	maxErrorText     = 300
)

// Options configure New. Store is required.
type Options struct {
	Store Queue
	// Allow are networks every webhook may reach (the process flag), on
	// top of each endpoint's own.
	Allow       []netip.Prefix
	Timeout     time.Duration // one delivery; default DefaultTimeout
	Concurrency int           // deliveries in flight per endpoint and replica; default DefaultConcurrency
	RetryFor    time.Duration // then dead-lettered; default DefaultRetryFor
	Backoff     time.Duration // the first retry's delay, doubled each time (with jitter); default DefaultBackoff
	MaxBackoff  time.Duration // default DefaultMaxBackoff
	Poll        time.Duration // how often the queue is looked at; default DefaultPoll
	MaxBacklog  int           // items queued per tenant; default DefaultMaxBacklog
	MaxDead     int           // dead letters kept; default DefaultMaxDead
	Lookup      LookupFunc    // name resolution (tests); default the system's
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	Now         func() time.Time
}

// endpoint is an Endpoint ready to deliver.
type endpoint struct {
	Endpoint
	tenant string
	hash   string // of the URL, in chain names
	wants  map[string]bool
	client *http.Client
	sem    chan struct{}
}

// Dispatcher enqueues app webhooks from events (never blocking the event
// intake: one store call, errors counted and logged) and delivers the
// queue (Run): any replica delivers any item, one delivery at a time per
// item (the store's lease), the items of one message in order.
type Dispatcher struct {
	o         Options
	log       *slog.Logger
	now       func() time.Time
	endpoints atomic.Pointer[map[string][]*endpoint] // tenant -> webhooks
	sems      sync.Map                               // tenant|url -> chan struct{} (kept across reloads)
	slots     chan struct{}
	kick      chan struct{}
	inflight  sync.WaitGroup
	m         *metrics
	refusedMu sync.Mutex
	refused   map[string]time.Time // tenant -> last refused_by_breaker enqueued
}

// New returns a Dispatcher; SetEndpoints gives it the webhooks, Run
// delivers.
func New(o Options) (*Dispatcher, error) {
	if o.Store == nil {
		return nil, errors.New("webhook: Options.Store is required")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Timeout, DefaultTimeout)
	def(&o.RetryFor, DefaultRetryFor)
	def(&o.Backoff, DefaultBackoff)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	def(&o.Poll, DefaultPoll)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxBacklog <= 0 {
		o.MaxBacklog = DefaultMaxBacklog
	}
	if o.MaxDead <= 0 {
		o.MaxDead = DefaultMaxDead
	}
	d := &Dispatcher{o: o, log: o.Logger, now: o.Now, slots: make(chan struct{}, DefaultMaxInFlight),
		kick: make(chan struct{}, 1), refused: map[string]time.Time{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	d.m = m
	d.endpoints.Store(&map[string][]*endpoint{})
	return d, nil
}

// SetEndpoints replaces the tenants' webhooks (a policy reload). Items
// already queued for a webhook that is gone are dead-lettered when due.
func (d *Dispatcher) SetEndpoints(byTenant map[string][]Endpoint) {
	m := make(map[string][]*endpoint, len(byTenant))
	for tenant, eps := range byTenant {
		for _, e := range eps {
			h := sha256.Sum256([]byte(e.URL))
			sem, _ := d.sems.LoadOrStore(tenant+"|"+e.URL, make(chan struct{}, d.o.Concurrency))
			ep := &endpoint{Endpoint: e, tenant: tenant, hash: hex.EncodeToString(h[:8]), wants: map[string]bool{},
				sem:    sem.(chan struct{}),
				client: NewClient(ClientOptions{Allow: append(slices.Clone(d.o.Allow), e.Allow...), Timeout: d.o.Timeout, Lookup: d.o.Lookup})}
			for _, t := range e.Events {
				ep.wants[t] = true
			}
			m[tenant] = append(m[tenant], ep)
		}
	}
	d.endpoints.Store(&m)
}

func (d *Dispatcher) tenantEndpoints(tenant string) []*endpoint { return (*d.endpoints.Load())[tenant] }

// newID returns a webhook-id: evt_ and 26 base32 characters (128 bits).
func newID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return "evt_" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// enqueue queues p for every webhook of tenant that wants it, on the
// chain of message (one per webhook).
func (d *Dispatcher) enqueue(ctx context.Context, tenant, message string, build func(ep *endpoint) (Payload, bool)) {
	for _, ep := range d.tenantEndpoints(tenant) {
		p, ok := build(ep)
		if !ok || !ep.wants[p.Type] {
			continue
		}
		body, err := json.Marshal(p)
		if err != nil || len(body) > store.MaxWebhookBody {
			d.m.enqueueFailed.WithLabelValues("too_large").Inc()
			d.log.Error("webhook payload not queued", "tenant", tenant, "type", p.Type, "bytes", len(body))
			continue
		}
		now := d.now()
		it := store.WebhookItem{ID: newID(), Tenant: tenant, Endpoint: ep.URL, Chain: ep.hash + "|" + tenant + "|" + message,
			Type: p.Type, Enqueued: now.UTC(), Body: body}
		cctx, cancel := context.WithTimeout(ctx, enqueueTimeout)
		queued, err := d.o.Store.EnqueueWebhook(cctx, it, now, d.o.MaxBacklog)
		cancel()
		switch {
		case err != nil:
			d.m.enqueueFailed.WithLabelValues("store_error").Inc()
			d.log.Error("webhook not queued: store failed", "tenant", tenant, "type", p.Type, "ses_message_id", message, "err", err.Error())
		case !queued:
			d.m.enqueueFailed.WithLabelValues("backlog_full").Inc()
			d.log.Error("webhook not queued: backlog full", "tenant", tenant, "type", p.Type, "max_backlog", d.o.MaxBacklog)
		default:
			select {
			case d.kick <- struct{}{}:
			default:
			}
		}
	}
}

// chainOf names the message an event belongs to.
func chainOf(ev *feedback.Event) string {
	if ev.GatewayID != "" {
		return "m:" + ev.GatewayID
	}
	return "s:" + ev.SESMessageID
}

// Event queues an attributed SES event for the tenant's webhooks.
func (d *Dispatcher) Event(ctx context.Context, ev *feedback.Event) {
	d.enqueue(ctx, ev.Tenant, chainOf(ev), func(ep *endpoint) (Payload, bool) { return fromEvent(ev, ep.IncludeSubject) })
}

// Suppressed queues a suppressed event: sesgate put addrs on a
// suppression list because of ev.
func (d *Dispatcher) Suppressed(ctx context.Context, ev *feedback.Event, addrs []string, reason, scope string) {
	d.enqueue(ctx, ev.Tenant, chainOf(ev), func(*endpoint) (Payload, bool) {
		data := Data{Tenant: ev.Tenant, MessageID: ev.GatewayID, SESMessageID: ev.SESMessageID, Reason: reason + " (" + scope + ")", Tags: ev.Tags}
		for _, a := range addrs {
			data.Recipients = append(data.Recipients, Recipient{Address: a})
		}
		return Payload{Type: EventSuppressed, Timestamp: d.now().UTC(), Data: data}, true
	})
}

// BreakerChanged queues breaker_opened (open, forced open) or
// breaker_closed; other moves (half open, warnings) are not sent.
func (d *Dispatcher) BreakerChanged(ctx context.Context, tenant string, state store.BreakerState, reason string, openUntil, at time.Time) {
	typ := ""
	switch state {
	case store.Open, store.ForcedOpen:
		typ = EventBreakerOpened
	case store.Closed:
		typ = EventBreakerClosed
	default:
		return
	}
	d.enqueue(ctx, tenant, "breaker", func(*endpoint) (Payload, bool) {
		b := &Breaker{State: string(state)}
		if !openUntil.IsZero() {
			u := openUntil.UTC()
			b.OpenUntil = &u
		}
		return Payload{Type: typ, Timestamp: at.UTC(), Data: Data{Tenant: tenant, Reason: reason, Breaker: b}}, true
	})
}

// RefusedEvery bounds refused_by_breaker: at most one per tenant in it.
const RefusedEvery = time.Minute

// RefusedByBreaker queues refused_by_breaker for a message the tenant's
// open breaker refused, at most once per RefusedEvery per tenant and
// replica, in the background (it is called on the send path).
func (d *Dispatcher) RefusedByBreaker(tenant string) {
	if len(d.tenantEndpoints(tenant)) == 0 {
		return
	}
	now := d.now()
	d.refusedMu.Lock()
	last, seen := d.refused[tenant]
	if seen && now.Sub(last) < RefusedEvery {
		d.refusedMu.Unlock()
		return
	}
	d.refused[tenant] = now
	d.refusedMu.Unlock()
	go d.enqueue(context.Background(), tenant, "breaker", func(*endpoint) (Payload, bool) {
		return Payload{Type: EventRefusedByBreaker, Timestamp: now.UTC(),
			Data: Data{Tenant: tenant, Reason: "messages are refused while the breaker is open (at most one event per minute)"}}, true
	})
}

// Run delivers the queue until ctx ends, then waits for the deliveries in
// flight (each bounded by Timeout).
func (d *Dispatcher) Run(ctx context.Context) {
	poll := time.NewTicker(d.o.Poll)
	defer poll.Stop()
	stats := time.NewTicker(statsEvery)
	defer stats.Stop()
	d.updateStats(ctx)
	for {
		d.claim(ctx)
		select {
		case <-ctx.Done():
			d.inflight.Wait()
			return
		case <-poll.C:
		case <-d.kick:
		case <-stats.C:
			d.updateStats(ctx)
		}
	}
}

// lease is how long a claimed item is ours: the delivery's timeout and
// the store calls around it.
func (d *Dispatcher) lease() time.Duration { return d.o.Timeout + 30*time.Second }

func (d *Dispatcher) claim(ctx context.Context) {
	free := cap(d.slots) - len(d.slots)
	if free <= 0 || ctx.Err() != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	claims, err := d.o.Store.ClaimWebhooks(cctx, d.now(), d.lease(), free)
	cancel()
	if err != nil {
		d.log.Warn("webhook queue not read", "err", err.Error())
	}
	for _, c := range claims {
		d.start(ctx, c)
	}
}

// start delivers one claimed item in the background, or gives it back
// when its endpoint is at its concurrency cap.
func (d *Dispatcher) start(ctx context.Context, c store.WebhookClaim) {
	bg := context.WithoutCancel(ctx)
	var ep *endpoint
	for _, e := range d.tenantEndpoints(c.Item.Tenant) {
		if e.URL == c.Item.Endpoint {
			ep = e
		}
	}
	if ep == nil {
		it := c.Item
		it.LastError = "the webhook is no longer in the policy"
		d.dead(bg, c, it)
		return
	}
	select {
	case ep.sem <- struct{}{}:
	default:
		// At the cap: back in the queue without an attempt, due at the
		// next poll.
		if _, err := d.o.Store.RetryWebhook(bg, c, c.Item, d.now().Add(d.o.Poll)); err != nil {
			d.log.Warn("webhook lease not returned; it lapses", "err", err.Error())
		}
		return
	}
	d.slots <- struct{}{}
	d.inflight.Add(1)
	go func() {
		defer func() {
			<-ep.sem
			<-d.slots
			d.inflight.Done()
		}()
		d.deliver(bg, c, ep)
	}()
}

// post makes one delivery attempt.
func (d *Dispatcher) post(ctx context.Context, ep *endpoint, it store.WebhookItem) error {
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(it.Body))
	if err != nil {
		return err
	}
	ts := d.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sesgate-webhooks")
	req.Header.Set(HeaderID, it.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(ep.Keys, it.ID, ts, it.Body))
	resp, err := ep.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

func (d *Dispatcher) deliver(ctx context.Context, c store.WebhookClaim, ep *endpoint) {
	err := d.post(ctx, ep, c.Item)
	now := d.now()
	if err == nil {
		if _, err := d.o.Store.AckWebhook(ctx, c, now); err != nil {
			d.log.Warn("webhook delivered but not acknowledged in the store; it may be delivered again", "tenant", c.Item.Tenant, "id", c.Item.ID, "err", err.Error())
		}
		d.m.deliveries.WithLabelValues(c.Item.Tenant, "delivered").Inc()
		return
	}
	it := c.Item
	it.Attempts++
	it.LastError = err.Error()
	it.LastAttempt = now
	if len(it.LastError) > maxErrorText {
		it.LastError = it.LastError[:maxErrorText]
	}
	wait := d.backoff(it.Attempts)
	if now.Add(wait).Sub(it.Enqueued) > d.o.RetryFor {
		d.dead(ctx, c, it)
		return
	}
	d.m.deliveries.WithLabelValues(it.Tenant, "failed").Inc()
	level := slog.LevelInfo
	if errors.Is(err, ErrForbiddenAddress) {
		level = slog.LevelWarn
	}
	d.log.Log(ctx, level, "webhook delivery failed; retrying", "tenant", it.Tenant, "id", it.ID, "type", it.Type, "attempts", it.Attempts, "retry_in", wait, "err", it.LastError)
	if _, err := d.o.Store.RetryWebhook(ctx, c, it, now.Add(wait)); err != nil {
		d.log.Warn("webhook retry not recorded; the lease lapses", "tenant", it.Tenant, "id", it.ID, "err", err.Error())
	}
}

func (d *Dispatcher) dead(ctx context.Context, c store.WebhookClaim, it store.WebhookItem) {
	d.m.deliveries.WithLabelValues(it.Tenant, "dead").Inc()
	d.log.Warn("webhook dead-lettered", "tenant", it.Tenant, "id", it.ID, "type", it.Type, "attempts", it.Attempts, "err", it.LastError)
	if _, err := d.o.Store.DeadWebhook(ctx, c, it, d.now(), d.o.MaxDead); err != nil {
		d.log.Warn("webhook dead letter not recorded; the lease lapses", "tenant", it.Tenant, "id", it.ID, "err", err.Error())
	}
}

// backoff is the wait before retry n (1-based): Backoff doubled n-1 times,
// at most MaxBackoff, with jitter (between half and all of it).
func (d *Dispatcher) backoff(n int) time.Duration {
	w := d.o.Backoff
	for i := 1; i < n && w < d.o.MaxBackoff; i++ {
		w *= 2
	}
	w = min(w, d.o.MaxBackoff)
	return w/2 + rand.N(w/2+1)
}

func (d *Dispatcher) updateStats(ctx context.Context) {
	tenants := slices.Collect(maps.Keys(*d.endpoints.Load()))
	if len(tenants) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	st, err := d.o.Store.WebhookStats(cctx, tenants)
	cancel()
	if err != nil {
		d.log.Warn("webhook backlog not read", "err", err.Error())
		return
	}
	now := d.now()
	for t, s := range st {
		d.m.backlog.WithLabelValues(t).Set(float64(s.Backlog))
		age := 0.0
		if !s.Oldest.IsZero() {
			age = max(now.Sub(s.Oldest).Seconds(), 0)
		}
		d.m.oldest.WithLabelValues(t).Set(age)
	}
}

type metrics struct {
	backlog, oldest *prometheus.GaugeVec
	deliveries      *prometheus.CounterVec
	enqueueFailed   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_webhook_backlog",
			Help: "App webhook deliveries queued (not dead), per tenant."}, []string{"tenant"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_webhook_oldest_age_seconds",
			Help: "Age of the oldest queued app webhook delivery, per tenant."}, []string{"tenant"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesgate_webhook_deliveries_total",
			Help: "App webhook delivery attempts by outcome: delivered, failed (will retry), dead (dead-lettered)."}, []string{"tenant", "outcome"}),
		enqueueFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesgate_webhook_enqueue_failures_total",
			Help: "App webhook events not queued: store_error, backlog_full, too_large."}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.backlog, m.oldest, m.deliveries, m.enqueueFailed} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
