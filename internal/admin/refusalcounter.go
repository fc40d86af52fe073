package admin

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// RefusalAdder is the write side of the shared refusal counters
// (store.DashboardStore).
type RefusalAdder interface {
	AddRefusals(ctx context.Context, counts []store.RefusalCount) error
}

// Defaults of RefusalCounterOptions.
const (
	DefaultRefusalEvery   = 5 * time.Second
	DefaultRefusalMaxKeys = 10_000
)

// RefusalCounterOptions configure NewRefusalCounter. Store is required.
type RefusalCounterOptions struct {
	Store RefusalAdder
	Every time.Duration // flush interval; default DefaultRefusalEvery
	// MaxKeys bounds the (tenant, reason, minute) counters held between
	// flushes (and while the store is unreachable); a refusal that would
	// need another is dropped (Dropped counts it).
	MaxKeys int
	Now     func() time.Time
	Logger  *slog.Logger
}

type refusalKey struct {
	tenant, reason string
	minute         int64
}

// RefusalCounter counts this replica's refusals per tenant, reason and
// minute in memory (Add: a map increment under a mutex, no I/O) and adds
// them to the shared store's counters every Every in one store call (one
// pipeline), so the dashboard shows every replica's refusals per minute.
// Counts a flush could not write are kept for the next one (bounded by
// MaxKeys).
type RefusalCounter struct {
	st      RefusalAdder
	every   time.Duration
	maxKeys int
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	counts  map[refusalKey]int64
	dropped int64

	fl *flusher
}

// NewRefusalCounter starts a RefusalCounter; Close flushes and stops it.
func NewRefusalCounter(o RefusalCounterOptions) (*RefusalCounter, error) {
	if o.Store == nil {
		return nil, errors.New("admin: RefusalCounterOptions.Store is required")
	}
	c := &RefusalCounter{st: o.Store, every: o.Every, maxKeys: o.MaxKeys, now: o.Now, log: o.Logger,
		counts: map[refusalKey]int64{}}
	if c.every <= 0 {
		c.every = DefaultRefusalEvery
	}
	if c.maxKeys <= 0 {
		c.maxKeys = DefaultRefusalMaxKeys
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.fl = startFlusher(c.every, c.flushLogged)
	return c, nil
}

// Add counts one refusal of tenant for reason, now. A refusal without a
// tenant (a failed authentication) is not counted.
func (c *RefusalCounter) Add(tenant, reason string) {
	if tenant == "" {
		return
	}
	k := refusalKey{tenant: tenant, reason: reason, minute: c.now().Unix() / 60}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.counts[k]; !ok && len(c.counts) >= c.maxKeys {
		c.dropped++
		return
	}
	c.counts[k]++
}

// Dropped returns the refusals not counted (MaxKeys reached).
func (c *RefusalCounter) Dropped() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Flush writes the counts now (Close and the ticker call it).
func (c *RefusalCounter) Flush(ctx context.Context) error {
	c.mu.Lock()
	if len(c.counts) == 0 {
		c.mu.Unlock()
		return nil
	}
	taken := c.counts
	c.counts = map[refusalKey]int64{}
	c.mu.Unlock()
	batch := make([]store.RefusalCount, 0, len(taken))
	for k, n := range taken {
		batch = append(batch, store.RefusalCount{Tenant: k.tenant, Reason: k.reason, Minute: k.minute, N: n})
	}
	err := c.st.AddRefusals(ctx, batch)
	if err != nil {
		// Keep them for the next flush, within the bound.
		c.mu.Lock()
		for k, n := range taken {
			if _, ok := c.counts[k]; ok || len(c.counts) < c.maxKeys {
				c.counts[k] += n
			} else {
				c.dropped += n
			}
		}
		c.mu.Unlock()
	}
	return err
}

// Close writes what is counted (within a second) and stops.
func (c *RefusalCounter) Close() { c.fl.close() }

// flushLogged is Flush within a second, its failure logged.
func (c *RefusalCounter) flushLogged() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		c.log.Warn("refusal counts not written to the store; kept for the next flush", "err", err.Error())
	}
}
