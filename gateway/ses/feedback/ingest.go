package feedback

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Processor receives the events that passed every check, attributed. An
// error means "retry later": the SNS answer is 5xx and the SQS message is
// kept.
type Processor interface {
	ProcessEvent(ctx context.Context, ev *Event) error
}

// MessageLookup finds the tenant and gateway id of an SES MessageId
// remembered at send time. found is false for an unknown id; err is for a
// store that could not answer.
type MessageLookup interface {
	LookupMessage(ctx context.Context, sesMessageID string) (tenant, gatewayID string, found bool, err error)
}

// TenantSet tells whether a tenant id is configured.
type TenantSet interface {
	KnownTenant(id string) bool
}

// Deduper remembers which message ids were processed. Claim reports true
// the first time it sees key (within its retention); Release forgets key
// after a failed processing so a retry is processed. A shared store can
// implement it with SET NX and a TTL.
type Deduper interface {
	Claim(ctx context.Context, key string) (first bool, err error)
	Release(ctx context.Context, key string) error
}

// Errors of Ingest besides ErrInvalidEvent.
var (
	// ErrUnattributed: the event names no known tenant and its MessageId
	// is unknown. A retry cannot help.
	ErrUnattributed = errors.New("event not attributable to a known tenant")
	// ErrTemporary wraps failures a retry may cure (a store or the
	// Processor failed).
	ErrTemporary = errors.New("temporary failure")
)

// IngesterOptions configure an Ingester. Processor and Tenants are required.
type IngesterOptions struct {
	Processor Processor
	Tenants   TenantSet
	// Lookup attributes events without tags; nil refuses them.
	Lookup MessageLookup
}

// Ingester parses an SES event, attributes it and hands it to the
// Processor. It is safe for concurrent use.
type Ingester struct {
	proc    Processor
	tenants TenantSet
	lookup  MessageLookup
}

// NewIngester returns an Ingester built from opts.
func NewIngester(opts IngesterOptions) (*Ingester, error) {
	if opts.Processor == nil || opts.Tenants == nil {
		return nil, errors.New("feedback: IngesterOptions.Processor and Tenants are required")
	}
	return &Ingester{proc: opts.Processor, tenants: opts.Tenants, lookup: opts.Lookup}, nil
}

// Ingest parses data (an SES event in either format), attributes it and
// processes it. Errors wrap ErrInvalidEvent, ErrUnattributed or
// ErrTemporary.
func (in *Ingester) Ingest(ctx context.Context, data []byte) (*Event, error) {
	ev, err := ParseEvent(data)
	if err != nil {
		return nil, err
	}
	if err := in.attribute(ctx, ev); err != nil {
		return ev, err
	}
	if err := in.proc.ProcessEvent(ctx, ev); err != nil {
		return ev, fmt.Errorf("%w: processing: %w", ErrTemporary, err)
	}
	return ev, nil
}

// attribute makes sure ev names a known tenant: its tag when the tenant is
// known, else the tenant remembered for its SES MessageId.
func (in *Ingester) attribute(ctx context.Context, ev *Event) error {
	if ev.Tenant != "" && in.tenants.KnownTenant(ev.Tenant) {
		return nil
	}
	if in.lookup == nil {
		return fmt.Errorf("%w: tenant tag %.64q", ErrUnattributed, ev.Tenant)
	}
	tenant, id, found, err := in.lookup.LookupMessage(ctx, ev.SESMessageID)
	if err != nil {
		return fmt.Errorf("%w: message lookup: %w", ErrTemporary, err)
	}
	if !found || !in.tenants.KnownTenant(tenant) {
		return fmt.Errorf("%w: SES message %.80q", ErrUnattributed, ev.SESMessageID)
	}
	ev.Tenant = tenant
	if ev.GatewayID == "" {
		ev.GatewayID = id
	}
	return nil
}

// Defaults of MemDeduper.
const (
	DefaultDedupeTTL = 2 * time.Hour
	DefaultDedupeMax = 100_000
)

// MemDeduperOptions configure a MemDeduper.
type MemDeduperOptions struct {
	TTL time.Duration // how long a key is remembered; default DefaultDedupeTTL
	Max int           // keys kept; the oldest go first; default DefaultDedupeMax
	Now func() time.Time
}

// MemDeduper is an in-process Deduper with a TTL and a bound on its size.
type MemDeduper struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	seen  map[string]time.Time // key -> expiry
	order []dedupeEntry        // insertion order, for eviction
}

type dedupeEntry struct {
	key string
	exp time.Time
}

// NewMemDeduper returns a MemDeduper built from opts.
func NewMemDeduper(opts MemDeduperOptions) *MemDeduper {
	d := &MemDeduper{ttl: opts.TTL, max: opts.Max, now: opts.Now, seen: map[string]time.Time{}}
	if d.ttl <= 0 {
		d.ttl = DefaultDedupeTTL
	}
	if d.max <= 0 {
		d.max = DefaultDedupeMax
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// Claim implements Deduper.
func (d *MemDeduper) Claim(_ context.Context, key string) (bool, error) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	// Expire from the front, and make room.
	for len(d.order) > 0 && (len(d.seen) >= d.max || !now.Before(d.order[0].exp) || d.stale(d.order[0])) {
		e := d.order[0]
		d.order[0] = dedupeEntry{}
		d.order = d.order[1:]
		if exp, ok := d.seen[e.key]; ok && exp.Equal(e.exp) {
			delete(d.seen, e.key)
		}
	}
	if exp, ok := d.seen[key]; ok && now.Before(exp) {
		return false, nil
	}
	exp := now.Add(d.ttl)
	d.seen[key] = exp
	d.order = append(d.order, dedupeEntry{key: key, exp: exp})
	return true, nil
}

// stale reports whether e no longer matches the live entry of its key.
func (d *MemDeduper) stale(e dedupeEntry) bool {
	exp, ok := d.seen[e.key]
	return !ok || !exp.Equal(e.exp)
}

// Release implements Deduper.
func (d *MemDeduper) Release(_ context.Context, key string) error {
	d.mu.Lock()
	delete(d.seen, key)
	d.mu.Unlock()
	return nil
}

// Len returns how many keys are remembered.
func (d *MemDeduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}
