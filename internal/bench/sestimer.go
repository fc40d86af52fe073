package bench

import (
	"bytes"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxPending bounds the timings an SESTimer keeps unclaimed.
const DefaultMaxPending = 1 << 20

// SESTimer is an http middleware around an SES server that measures the
// server's own handling of each successful SendEmail: from the moment the
// handler is entered (headers read) to the moment it writes the answer
// holding the MessageId. The timing is stored under that MessageId before
// the answer leaves, so whoever receives the id (the SDK, or a client of the
// gateway that got it back) can Take it. Safe for concurrent use.
type SESTimer struct {
	next       http.Handler
	now        func() time.Time
	maxPending int

	mu      sync.Mutex
	pending map[string]time.Duration
	dropped int64
}

// SESTimerOptions configure an SESTimer.
type SESTimerOptions struct {
	Next       http.Handler     // the SES server
	Now        func() time.Time // default time.Now
	MaxPending int              // default DefaultMaxPending
}

// NewSESTimer wraps opts.Next.
func NewSESTimer(opts SESTimerOptions) *SESTimer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	return &SESTimer{next: opts.Next, now: opts.Now, maxPending: opts.MaxPending, pending: map[string]time.Duration{}}
}

// ServeHTTP implements http.Handler.
func (t *SESTimer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &timedWriter{ResponseWriter: w, t: t, start: t.now()}
	t.next.ServeHTTP(tw, r)
}

// Take returns and forgets the handling time of the message id.
func (t *SESTimer) Take(id string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.pending[id]
	if ok {
		delete(t.pending, id)
	}
	return d, ok
}

// Dropped returns how many timings were not kept because MaxPending were
// waiting unclaimed.
func (t *SESTimer) Dropped() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Reset forgets every unclaimed timing.
func (t *SESTimer) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.pending)
}

func (t *SESTimer) store(id string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) >= t.maxPending {
		t.dropped++
		return
	}
	t.pending[id] = d
}

// timedWriter notes the time of the first body write of a 200 answer.
type timedWriter struct {
	http.ResponseWriter
	t      *SESTimer
	start  time.Time
	status int
	done   bool
}

func (w *timedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

var messageIDKey = []byte(`"MessageId":"`)

func (w *timedWriter) Write(b []byte) (int, error) {
	if !w.done && (w.status == 0 || w.status == http.StatusOK) {
		w.done = true
		if i := bytes.Index(b, messageIDKey); i >= 0 {
			rest := b[i+len(messageIDKey):]
			if j := bytes.IndexByte(rest, '"'); j > 0 {
				w.t.store(string(rest[:j]), w.t.now().Sub(w.start))
			}
		}
	}
	return w.ResponseWriter.Write(b)
}
