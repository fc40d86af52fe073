package admin

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sesgate/sesgate/limiter/guard"
)

// EventLog keeps the newest warnings and errors the server logged (the
// store going degraded, SES errors and throttling, the account guard
// shedding a tenant, ...) in a bounded ring for the dashboard's feed. It
// is a slog.Handler: tee the server's logger into it with
// slog.NewMultiHandler. Records below slog.LevelWarn are not kept. Logs
// never hold a secret (package doc), so neither does the ring; each text
// is clipped to maxEventText bytes.
type EventLog struct {
	r     *ring
	attrs []slog.Attr
	group string
}

type ring struct {
	mu    sync.Mutex
	items []FeedItem
	next  int
	full  bool
	fwd   func(FeedItem) // Forward's
}

// Forward also hands every kept record to f (a FeedWriter's Add: the
// shared feed); f must not block.
func (e *EventLog) Forward(f func(FeedItem)) {
	e.r.mu.Lock()
	e.r.fwd = f
	e.r.mu.Unlock()
}

const maxEventText = 400

// NewEventLog returns an EventLog keeping the newest size records
// (default 256).
func NewEventLog(size int) *EventLog {
	if size <= 0 {
		size = 256
	}
	return &EventLog{r: &ring{items: make([]FeedItem, size)}}
}

// Enabled reports whether a record at l is kept: warnings and errors.
func (e *EventLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

// Handle keeps the record: its time, level, message and attributes as
// text; a "tenant" attribute links it to the tenant.
func (e *EventLog) Handle(_ context.Context, rec slog.Record) error {
	it := FeedItem{At: rec.Time.UTC(), Kind: "log", Level: "warn"}
	if rec.Level >= slog.LevelError {
		it.Level = "error"
	}
	var b strings.Builder
	b.WriteString(rec.Message)
	add := func(a slog.Attr) bool {
		if a.Key == "tenant" {
			it.Tenant = a.Value.String()
		}
		b.WriteString(" ")
		if e.group != "" {
			b.WriteString(e.group + ".")
		}
		b.WriteString(a.Key + "=" + a.Value.String())
		return b.Len() < maxEventText
	}
	for _, a := range e.attrs {
		add(a)
	}
	rec.Attrs(add)
	it.Text = b.String()
	if len(it.Text) > maxEventText {
		it.Text = it.Text[:maxEventText] + "…"
	}
	if it.At.IsZero() {
		it.At = time.Now().UTC()
	}
	// The guard's breaker changes ("breaker trip", "breaker forced_open",
	// "breaker warning") get their own kind; the account guard's record
	// is not a tenant.
	if ev, ok := strings.CutPrefix(rec.Message, "breaker "); ok && !strings.Contains(ev, " ") {
		it.Kind = "breaker." + ev
		if it.Tenant == guard.AccountID {
			it.Kind, it.Tenant = "account."+ev, ""
		}
	}
	e.r.mu.Lock()
	e.r.items[e.r.next] = it
	e.r.next = (e.r.next + 1) % len(e.r.items)
	if e.r.next == 0 {
		e.r.full = true
	}
	fwd := e.r.fwd
	e.r.mu.Unlock()
	if fwd != nil {
		fwd(it)
	}
	return nil
}

// WithAttrs returns an EventLog on the same ring adding attrs to every record.
func (e *EventLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *e
	c.attrs = append(append([]slog.Attr{}, e.attrs...), attrs...)
	return &c
}

// WithGroup returns an EventLog on the same ring naming its attributes
// under name.
func (e *EventLog) WithGroup(name string) slog.Handler {
	c := *e
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// Items returns the kept records, oldest first.
func (e *EventLog) Items() []FeedItem {
	e.r.mu.Lock()
	defer e.r.mu.Unlock()
	if !e.r.full {
		return append([]FeedItem{}, e.r.items[:e.r.next]...)
	}
	return append(append([]FeedItem{}, e.r.items[e.r.next:]...), e.r.items[:e.r.next]...)
}
