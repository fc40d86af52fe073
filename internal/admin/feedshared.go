package admin

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
)

// sharedFeed returns the feed's events besides the audit log. With the
// shared store they are every replica's logged warnings and errors
// (breaker trips and forced opens, account guard actions, degraded store
// mode, SES errors and throttling, ...), one read of the newest limit;
// should that read fail, this replica's own ring, headed by an item that
// says so. Without it: the breaker trips (one read per tenant, cached for
// feedCacheTTL), the account guard's trips and this replica's ring.
func (h *Handler) sharedFeed(ctx context.Context, limit int) ([]FeedItem, error) {
	if h.dash != nil {
		evs, err := h.dash.Feed(ctx, limit)
		if err == nil {
			items := make([]FeedItem, 0, len(evs))
			for _, e := range evs {
				items = append(items, FeedItem{At: e.At, Kind: e.Kind, Tenant: e.Tenant, Level: e.Level, Text: e.Text, Replica: e.Replica})
			}
			return items, nil
		}
		h.log.Info("shared feed unreadable; serving this replica's events", "err", err.Error())
		items := []FeedItem{{At: h.now().UTC(), Kind: "log", Level: "error",
			Text: "the shared feed cannot be read from the store: these are this replica's events only"}}
		if h.events != nil {
			items = append(items, h.events.Items()...)
		}
		return items, nil
	}
	trips, err := h.cache.trips.get(h.now(), func() ([]FeedItem, error) { return h.breakerTrips(ctx) })
	if err != nil {
		return nil, err
	}
	items := append([]FeedItem{}, trips...)
	if h.events != nil {
		items = append(items, h.events.Items()...)
	}
	return items, nil
}

// breakerTrips reads the trips of every tenant's breaker (at most
// maxFeedTenants) and of the account guard.
func (h *Handler) breakerTrips(ctx context.Context) ([]FeedItem, error) {
	ids, err := h.tenantIDs(ctx)
	if err != nil {
		return nil, err
	}
	var items []FeedItem
	for i, id := range ids {
		if i == maxFeedTenants {
			break
		}
		st, err := h.breakers.Status(ctx, id)
		if errors.Is(err, guard.ErrUnknownTenant) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, tr := range st.Trips {
			items = append(items, FeedItem{At: tr.At, Kind: "breaker.trip", Tenant: id, Level: "error",
				Text: "breaker of " + id + " tripped: " + tr.Reason})
		}
	}
	if as, ok := h.breakers.(accountStatuser); ok {
		st, _, on, err := as.AccountStatus(ctx)
		if err != nil {
			return nil, err
		}
		for _, tr := range st.Trips {
			if on {
				items = append(items, FeedItem{At: tr.At, Kind: "account.trip", Level: "error",
					Text: "account guard tripped: " + tr.Reason})
			}
		}
	}
	return items, nil
}

// FeedAppender is the shared feed's write side (store.DashboardStore).
type FeedAppender interface {
	AppendFeed(ctx context.Context, evs []store.FeedEvent) error
}

// Defaults of FeedWriterOptions.
const (
	DefaultFeedEvery = 2 * time.Second
	DefaultFeedQueue = 1000
)

// FeedWriterOptions configure NewFeedWriter. Store is required.
type FeedWriterOptions struct {
	Store   FeedAppender
	Replica string        // names this replica on its events
	Every   time.Duration // flush interval; default DefaultFeedEvery
	// Queue bounds the events waiting for a flush (also while the store
	// is unreachable); beyond it the oldest are dropped.
	Queue  int
	Logger *slog.Logger
}

// FeedWriter writes this replica's feed events to the shared feed in
// batches: Add only appends to a bounded buffer under a mutex, and one
// goroutine writes the buffer every Every in one store call (one
// pipeline). Events that could not be written stay queued (bounded) and go
// with the next flush. Its own failures are logged at Info, below what the
// EventLog keeps, so they do not feed themselves.
type FeedWriter struct {
	st      FeedAppender
	replica string
	every   time.Duration
	max     int
	log     *slog.Logger

	mu      sync.Mutex
	buf     []store.FeedEvent
	dropped int64

	fl *flusher
}

// NewFeedWriter starts a FeedWriter; Close flushes and stops it.
func NewFeedWriter(o FeedWriterOptions) (*FeedWriter, error) {
	if o.Store == nil {
		return nil, errors.New("admin: FeedWriterOptions.Store is required")
	}
	w := &FeedWriter{st: o.Store, replica: o.Replica, every: o.Every, max: o.Queue, log: o.Logger}
	if w.every <= 0 {
		w.every = DefaultFeedEvery
	}
	if w.max <= 0 {
		w.max = DefaultFeedQueue
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.fl = startFlusher(w.every, w.flush)
	return w, nil
}

// Add queues one item; it never blocks on the store.
func (w *FeedWriter) Add(it FeedItem) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, store.FeedEvent{At: it.At, Replica: w.replica, Kind: it.Kind, Tenant: it.Tenant, Level: it.Level, Text: it.Text})
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
		w.dropped += int64(over)
	}
}

// Dropped returns how many events were dropped (queue full).
func (w *FeedWriter) Dropped() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Close writes what is queued (within a second) and stops.
func (w *FeedWriter) Close() { w.fl.close() }

// flush writes the queued events, at most store.MaxFeedEvents, in one
// store call; on failure they stay queued.
func (w *FeedWriter) flush() {
	w.mu.Lock()
	n := min(len(w.buf), store.MaxFeedEvents)
	batch := append([]store.FeedEvent(nil), w.buf[:n]...)
	w.mu.Unlock()
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := w.st.AppendFeed(ctx, batch)
	cancel()
	if err != nil {
		w.log.Info("feed events not written to the store; kept for the next flush", "n", n, "err", err.Error())
		return
	}
	w.mu.Lock()
	// Add may have dropped some of the batch meanwhile: drop what is left
	// of it (the oldest n, or fewer).
	w.buf = append(w.buf[:0], w.buf[min(n, len(w.buf)):]...)
	w.mu.Unlock()
}
