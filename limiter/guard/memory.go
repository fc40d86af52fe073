package guard

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/store"
)

// MessageStore keeps SES MessageId -> tenant records.
type MessageStore interface {
	RememberMessages(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error
	LookupMessage(ctx context.Context, sesMessageID string) (tenant, gatewayID string, found bool, err error)
}

// Defaults of RememberOptions.
const (
	DefaultRememberQueue = 10_000
	DefaultRememberBatch = 256
	DefaultRememberEvery = 200 * time.Millisecond
)

// RememberOptions configure NewRemember. Store is required.
type RememberOptions struct {
	Store  MessageStore
	TTL    time.Duration // default store.DefaultMessageTTL
	Queue  int           // pending records; beyond it they are dropped (counted)
	Batch  int           // records per write
	Every  time.Duration // flush interval
	Logger *slog.Logger
	// g, when set, counts the writes in its metrics.
	Guard *Guard
	// Status, when set, also records each message as accepted (its status
	// for the app), in the same batches, for TTL.
	Status StatusStore
}

// Remember is the attribution memory: a gateway.Sink wrapper that queues
// SES MessageId -> tenant after each send and writes them in batches from
// one goroutine, so the send path only does a non-blocking channel send.
// An event that arrives before its record is written (within Every, plus
// the store write) and carries no tenant tag is refused as unattributable
// with a 4xx by the SNS handler and not retried by SNS: the sink tags every
// message, so only identity notifications (no tags) depend on this record.
// It implements feedback.MessageLookup.
type Remember struct {
	st     MessageStore
	ttl    time.Duration
	batch  int
	every  time.Duration
	log    *slog.Logger
	g      *Guard
	status StatusStore
	// merged: Store is also Status and writes both in one
	// RememberAccepted call.
	merged RememberAcceptedStore
	queue  chan store.MessageRef
	done   chan struct{}
	stop   chan struct{}
	once   sync.Once
}

var _ feedback.MessageLookup = (*Remember)(nil)

// NewRemember starts a Remember; Close flushes and stops it.
func NewRemember(opts RememberOptions) (*Remember, error) {
	if opts.Store == nil {
		return nil, errors.New("guard: RememberOptions.Store is required")
	}
	r := &Remember{st: opts.Store, ttl: opts.TTL, batch: opts.Batch, every: opts.Every, log: opts.Logger, g: opts.Guard, status: opts.Status,
		done: make(chan struct{}), stop: make(chan struct{})}
	if r.ttl <= 0 {
		r.ttl = store.DefaultMessageTTL
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultRememberQueue
	}
	if r.batch <= 0 {
		r.batch = DefaultRememberBatch
	}
	if r.every <= 0 {
		r.every = DefaultRememberEvery
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if ra, ok := opts.Store.(RememberAcceptedStore); ok && opts.Status != nil && sameStore(opts.Store, opts.Status) {
		r.merged = ra
	}
	r.queue = make(chan store.MessageRef, opts.Queue)
	go r.run()
	return r, nil
}

// Add queues one record; it never blocks.
func (r *Remember) Add(ref store.MessageRef) {
	select {
	case r.queue <- ref:
	default:
		r.count("dropped", 1)
	}
}

func (r *Remember) count(outcome string, n int) {
	if r.g != nil {
		r.g.m.remembered.WithLabelValues(outcome).Add(float64(n))
	}
}

// Sink wraps s: after a successful send the SES MessageId is remembered.
func (r *Remember) Sink(s gateway.Sink) gateway.Sink { return rememberSink{s: s, r: r} }

type rememberSink struct {
	s gateway.Sink
	r *Remember
}

func (rs rememberSink) Send(ctx context.Context, env *gateway.Envelope) (string, error) {
	id, err := rs.s.Send(ctx, env)
	if err == nil && id != "" && env.Tenant != nil {
		// The recipients are copied: a front end may reuse the slice.
		rs.r.Add(store.MessageRef{SESMessageID: id, Tenant: env.Tenant.ID, GatewayID: env.ID, At: time.Now().UTC(),
			Recipients: slices.Clone(env.Recipients)})
	}
	return id, err
}

// AcceptedStore records the "accepted" status events with the recipient
// index of the dashboard's search (store.DashboardStore) in one write.
type AcceptedStore interface {
	RecordAccepted(ctx context.Context, msgs []store.AcceptedMessage, ttl time.Duration) error
}

// RememberAcceptedStore writes a batch's attribution records, their
// "accepted" status events and the recipient index in one write
// (boltstore: one transaction, one fsynced commit per batch instead of
// two). Remember uses it when RememberOptions.Store and Status are the same
// store and it implements this.
type RememberAcceptedStore interface {
	RememberAccepted(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error
}

// sameStore reports whether a and b are the same comparable value (a
// store behind a pointer); values of an incomparable type are never the
// same.
func sameStore(a, b any) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// accepted records the batch's messages as accepted (Options.Status) and,
// when the status store is an AcceptedStore, indexes them by recipient in
// the same write: no extra round trip per batch, none on the send path.
func (r *Remember) accepted(refs []store.MessageRef) {
	if r.status == nil || len(refs) == 0 {
		return
	}
	msgs := store.Accepted(refs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	if as, indexed := r.status.(AcceptedStore); indexed {
		err = as.RecordAccepted(ctx, msgs, r.ttl)
	} else {
		evs := make([]store.MessageEvent, len(msgs))
		for i, m := range msgs {
			evs[i] = m.Event
		}
		err = r.status.RecordMessageEvents(ctx, evs, r.ttl)
	}
	if err != nil {
		r.log.Warn("message status records not written", "n", len(msgs), "err", err.Error())
	}
}

// LookupMessage implements feedback.MessageLookup.
func (r *Remember) LookupMessage(ctx context.Context, id string) (string, string, bool, error) {
	return r.st.LookupMessage(ctx, id)
}

// Close writes what is queued and stops.
func (r *Remember) Close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

func (r *Remember) run() {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	var buf []store.MessageRef
	flush := func() {
		if len(buf) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		if r.merged != nil {
			err = r.merged.RememberAccepted(ctx, buf, r.ttl)
		} else {
			err = r.st.RememberMessages(ctx, buf, r.ttl)
		}
		cancel()
		if err != nil {
			r.count("failed", len(buf))
			r.log.Warn("attribution records not written", "n", len(buf), "err", err.Error())
		} else {
			r.count("written", len(buf))
		}
		if r.merged == nil {
			r.accepted(buf)
		}
		clear(buf) // drop the references to the recipients
		buf = buf[:0]
	}
	add := func(ref store.MessageRef) {
		buf = append(buf, ref)
		if len(buf) >= r.batch {
			flush()
		}
	}
	for {
		select {
		case ref := <-r.queue:
			add(ref)
		case <-t.C:
			flush()
		case <-r.stop:
			for {
				select {
				case ref := <-r.queue:
					add(ref)
				default:
					flush()
					return
				}
			}
		}
	}
}

// KeyStore is the shared claim-once key space (SET NX with TTL).
type KeyStore interface {
	ClaimKey(ctx context.Context, key string, ttl time.Duration) (bool, error)
	ReleaseKey(ctx context.Context, key string) error
}

// Deduper is a feedback.Deduper on the shared store, so a notification
// delivered to two replicas (SNS retries, SQS redelivery) is processed
// once across the fleet.
type Deduper struct {
	Store KeyStore
	TTL   time.Duration // default feedback.DefaultDedupeTTL
}

var _ feedback.Deduper = Deduper{}

// Claim implements feedback.Deduper.
func (d Deduper) Claim(ctx context.Context, key string) (bool, error) {
	ttl := d.TTL
	if ttl <= 0 {
		ttl = feedback.DefaultDedupeTTL
	}
	return d.Store.ClaimKey(ctx, key, ttl)
}

// Release implements feedback.Deduper.
func (d Deduper) Release(ctx context.Context, key string) error { return d.Store.ReleaseKey(ctx, key) }
