// Package logthrottle bounds the log lines a flood of refusals can write.
//
// A Throttle keys each line by its message, who it concerns (a tenant id,
// or the client's address before authentication) and its reason (an error
// code). Each key may write Burst lines at once and then Rate lines per
// second (golang.org/x/time/rate per key); the lines over that are dropped
// and counted, and the next line written for the key carries the count in
// the attribute "suppressed". Flush, run every second by Run, writes the
// last dropped line of each key that has one (with its own time and the
// others' count), so a flood that stops is still told in full: over any
// run, a key's written lines plus their "suppressed" counts equal the
// lines it was given.
//
// Invariants:
//   - A key writes at most Burst + Rate·T lines over T seconds, plus one
//     at the final flush; all keys together at most TotalBurst +
//     TotalRate·T (plus one per key at the final flush), however many
//     sources an attacker uses. A line over either budget is counted in
//     its key's "suppressed".
//   - Sources are keyed by address, IPv6 by /64 (Source of
//     gateway.SourceKey), since one host usually holds a whole /64.
//   - The key table is bounded (MaxKeys). When it is full and a sweep of
//     idle keys (nothing dropped, budget full; at most one sweep a second)
//     frees nothing, a new key shares the overflow key of its message and
//     reason (who "*"), and past MaxKeys+MaxOverflow all share one.
//   - The clock is injected (Options.Now); there is no package state.
//   - A nil *Throttle writes every line: the unthrottled logger.
package logthrottle

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for zero Options fields.
const (
	DefaultRate       = 1 // lines per second per key
	DefaultBurst      = 3
	DefaultMaxKeys    = 10000
	DefaultTotalRate  = 50 // lines per second, all keys together
	DefaultTotalBurst = 100
	DefaultFlushEvery = time.Second
	// MaxOverflow bounds the overflow keys (one per message and reason).
	MaxOverflow = 256
	// Overflow is the "who" of the keys that did not fit in the table.
	Overflow = "*"
	// sweepEvery bounds how often a full table is swept.
	sweepEvery = time.Second
)

// Options configure a Throttle; zero values take the defaults.
type Options struct {
	Rate       rate.Limit // lines per second per key
	Burst      int        // lines at once per key
	TotalRate  rate.Limit // lines per second, all keys together
	TotalBurst int
	MaxKeys    int
	Now        func() time.Time
}

// Throttle bounds log lines per (message, who, reason). It is safe for
// concurrent use.
type Throttle struct {
	rate      rate.Limit
	burst     int
	maxKeys   int
	now       func() time.Time
	mu        sync.Mutex
	total     *rate.Limiter
	keys      map[key]*entry
	lastSweep time.Time
}

type key struct{ msg, who, reason string }

// entry is one key's budget and what it holds back.
type entry struct {
	lim     *rate.Limiter
	dropped int64
	// The last dropped line, for Flush.
	handler slog.Handler
	level   slog.Level
	msg     string
	at      time.Time
	attrs   []slog.Attr
}

// New builds a Throttle.
func New(o Options) *Throttle {
	t := &Throttle{rate: o.Rate, burst: o.Burst, maxKeys: o.MaxKeys, now: o.Now, keys: map[key]*entry{}}
	if t.rate <= 0 {
		t.rate = DefaultRate
	}
	if t.burst <= 0 {
		t.burst = DefaultBurst
	}
	if t.maxKeys <= 0 {
		t.maxKeys = DefaultMaxKeys
	}
	if t.now == nil {
		t.now = time.Now
	}
	if o.TotalRate <= 0 {
		o.TotalRate = DefaultTotalRate
	}
	if o.TotalBurst <= 0 {
		o.TotalBurst = DefaultTotalBurst
	}
	t.total = rate.NewLimiter(o.TotalRate, o.TotalBurst)
	return t
}

// Source is the "who" of a client before authentication: "src:" and its
// source, as gateway.SourceKey gives it (an IPv6 address as its /64).
func Source(p netip.Prefix) string {
	return "src:" + p.String()
}

// allowLocked spends one line of e's budget, then of the total: a key over
// its own budget never takes from the others'.
func (t *Throttle) allowLocked(e *entry, now time.Time) bool {
	return e.lim.AllowN(now, 1) && t.total.AllowN(now, 1)
}

// Log writes msg at level with attrs to log, unless the key (msg, who,
// reason) has used its budget: then the line is dropped and counted, and
// the next line written for the key carries "suppressed": the number
// dropped since the key's previous line. A dropped line's attrs are kept
// until it is counted or flushed: the caller must not change them.
func (t *Throttle) Log(ctx context.Context, log *slog.Logger, level slog.Level, who, reason, msg string, attrs ...slog.Attr) {
	if !log.Enabled(ctx, level) {
		return
	}
	if t == nil {
		log.LogAttrs(ctx, level, msg, attrs...)
		return
	}
	now := t.now()
	t.mu.Lock()
	e := t.entryLocked(key{msg, who, reason}, now)
	if !t.allowLocked(e, now) {
		e.dropped++
		e.handler, e.level, e.msg, e.at, e.attrs = log.Handler(), level, msg, now, attrs
		t.mu.Unlock()
		return
	}
	n := e.dropped
	e.dropped, e.handler, e.attrs = 0, nil, nil
	t.mu.Unlock()
	if n > 0 {
		attrs = append(slices.Clip(attrs), slog.Int64("suppressed", n))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

// entryLocked returns the entry of k, making room or using an overflow key
// when the table is full.
func (t *Throttle) entryLocked(k key, now time.Time) *entry {
	if e, ok := t.keys[k]; ok {
		return e
	}
	if len(t.keys) >= t.maxKeys {
		if now.Sub(t.lastSweep) >= sweepEvery {
			t.lastSweep = now
			t.sweepLocked(now)
		}
		if len(t.keys) >= t.maxKeys {
			k.who = Overflow
			if len(t.keys) >= t.maxKeys+MaxOverflow {
				k = key{who: Overflow}
			}
			if e, ok := t.keys[k]; ok {
				return e
			}
		}
	}
	e := &entry{lim: rate.NewLimiter(t.rate, t.burst)}
	t.keys[k] = e
	return e
}

// sweepLocked drops the idle keys: nothing dropped, budget full.
func (t *Throttle) sweepLocked(now time.Time) {
	for k, e := range t.keys {
		if e.dropped == 0 && e.lim.TokensAt(now) >= float64(t.burst) {
			delete(t.keys, k)
		}
	}
}

// pending is a dropped line Flush writes.
type pending struct {
	h slog.Handler
	r slog.Record
}

// Flush writes, for each key with dropped lines and budget for one more,
// the last dropped line (at its own time) with "suppressed" counting the
// others, and forgets idle keys.
func (t *Throttle) Flush(ctx context.Context) { t.flush(ctx, false) }

// FlushAll is Flush whatever the budgets: at shutdown.
func (t *Throttle) FlushAll(ctx context.Context) { t.flush(ctx, true) }

func (t *Throttle) flush(ctx context.Context, all bool) {
	if t == nil {
		return
	}
	now := t.now()
	var out []pending
	t.mu.Lock()
	for k, e := range t.keys {
		if e.dropped == 0 {
			if e.lim.TokensAt(now) >= float64(t.burst) {
				delete(t.keys, k)
			}
			continue
		}
		if !all && !t.allowLocked(e, now) {
			continue
		}
		r := slog.NewRecord(e.at, e.level, e.msg, 0)
		r.AddAttrs(e.attrs...)
		if e.dropped > 1 {
			r.AddAttrs(slog.Int64("suppressed", e.dropped-1))
		}
		out = append(out, pending{e.handler, r})
		e.dropped, e.handler, e.attrs = 0, nil, nil
	}
	t.mu.Unlock()
	for _, p := range out {
		_ = p.h.Handle(ctx, p.r)
	}
}

// Run flushes every every (DefaultFlushEvery when <= 0) until ctx ends,
// then writes everything still held back.
func (t *Throttle) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultFlushEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.FlushAll(context.WithoutCancel(ctx))
			return
		case <-tick.C:
			t.Flush(ctx)
		}
	}
}
