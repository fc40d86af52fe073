package load

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesgate/sesgate/internal/bench"
)

// CodeError is the code of a send that got no answer (connection refused or
// dropped, timeout).
const CodeError = "error"

// Outcome is the answer to one send.
type Outcome struct {
	Code  string // "200", "429", "250", "451", an SES error type, or CodeError
	SESID string // the SES MessageId the answer carried, if any
	Err   error  // the cause when Code is CodeError or unexpected
}

// Sender sends one message per call. A worker owns its Sender.
type Sender interface {
	Send(ctx context.Context, seq int64) Outcome
	Close() error
}

// Options configure a Run.
type Options struct {
	Workers   int
	NewSender func(worker int) (Sender, error)
	// Count and Duration bound the run; at least one must be set.
	Count    int64
	Duration time.Duration
	// Rate, when positive, paces sends open-loop at this many per second
	// over all workers.
	Rate float64
	// SendTimeout bounds one send; default 30s.
	SendTimeout time.Duration
	// SESTime, when set, returns the SES server's handling time of a
	// MessageId; Result.SES and Result.Added are filled from it.
	SESTime func(id string) (time.Duration, bool)
	// Done, when set, is incremented after every send (for a progress bar).
	Done *atomic.Int64
	// SeqBase is added to every sequence number: a warm-up and its phase
	// get disjoint ones (and so different first-contact recipients).
	SeqBase int64
}

// lateThreshold is how far behind its slot a paced send may start before it
// counts as late.
const lateThreshold = time.Millisecond

// Result is what a Run measured.
type Result struct {
	Sent    int64
	Elapsed time.Duration
	Codes   map[string]int64
	// Errors holds one example cause per code that had one.
	Errors map[string]string
	// Latency is end to end, from the start of the send to its answer.
	Latency bench.Histogram
	// SES is the SES server's handling time of the sends whose MessageId it
	// timed; Added is, per such send, Latency minus SES.
	SES, Added bench.Histogram
	Matched    int64
	// Late counts paced sends that started more than 1 ms behind schedule;
	// MaxLag is the largest delay.
	Late   int64
	MaxLag time.Duration
}

// Throughput returns answered sends per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

type worker struct {
	res Result
}

// Run sends messages until the count is reached, the duration is over or
// ctx ends. It fails only when a sender cannot be made.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		return nil, errors.New("load: Workers must be positive")
	}
	if opts.Count <= 0 && opts.Duration <= 0 {
		return nil, errors.New("load: a Count or a Duration is required")
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 30 * time.Second
	}
	senders := make([]Sender, 0, opts.Workers)
	defer func() {
		for _, s := range senders {
			_ = s.Close()
		}
	}()
	for i := range opts.Workers {
		s, err := opts.NewSender(i)
		if err != nil {
			return nil, err
		}
		senders = append(senders, s)
	}

	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	start := time.Now()
	slots := make(chan slot)
	var claimed atomic.Int64
	next := func() (slot, bool) { // closed loop
		if ctx.Err() != nil {
			return slot{}, false
		}
		i := claimed.Add(1) - 1
		if opts.Count > 0 && i >= opts.Count {
			return slot{}, false
		}
		return slot{seq: opts.SeqBase + i}, true
	}
	if opts.Rate > 0 {
		go pace(ctx, opts, start, slots)
		next = func() (slot, bool) {
			s, ok := <-slots
			return s, ok
		}
	}

	workers := make([]*worker, opts.Workers)
	var wg sync.WaitGroup
	for i, s := range senders {
		w := &worker{res: Result{Codes: map[string]int64{}, Errors: map[string]string{}}}
		workers[i] = w
		wg.Go(func() { w.loop(ctx, opts, s, next) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	total := &Result{Elapsed: elapsed, Codes: map[string]int64{}, Errors: map[string]string{}}
	for _, w := range workers {
		total.merge(&w.res)
	}
	return total, nil
}

type slot struct {
	seq int64
	due time.Time // zero in closed loop
}

// pace hands out slots on schedule until the count or ctx ends.
func pace(ctx context.Context, opts Options, start time.Time, slots chan<- slot) {
	defer close(slots)
	interval := time.Duration(float64(time.Second) / opts.Rate)
	t := time.NewTimer(0)
	defer t.Stop()
	for i := int64(0); opts.Count <= 0 || i < opts.Count; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case slots <- slot{seq: opts.SeqBase + i, due: due}:
		case <-ctx.Done():
			return
		}
	}
}

func (w *worker) loop(ctx context.Context, opts Options, s Sender, next func() (slot, bool)) {
	for {
		sl, ok := next()
		if !ok {
			return
		}
		begin := time.Now()
		if !sl.due.IsZero() {
			if lag := begin.Sub(sl.due); lag > lateThreshold {
				w.res.Late++
				w.res.MaxLag = max(w.res.MaxLag, lag)
			}
		}
		// The send outlives the run's own deadline: a message in flight is
		// answered, never abandoned (its answer would be lost from the count).
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.SendTimeout)
		out := s.Send(sctx, sl.seq)
		cancel()
		lat := time.Since(begin)
		w.record(opts, out, lat)
		if opts.Done != nil {
			opts.Done.Add(1)
		}
	}
}

func (w *worker) record(opts Options, out Outcome, lat time.Duration) {
	r := &w.res
	r.Sent++
	r.Codes[out.Code]++
	if out.Err != nil {
		if _, seen := r.Errors[out.Code]; !seen {
			r.Errors[out.Code] = out.Err.Error()
		}
	}
	r.Latency.Record(lat)
	if out.SESID != "" && opts.SESTime != nil {
		if d, ok := opts.SESTime(out.SESID); ok {
			r.Matched++
			r.SES.Record(d)
			r.Added.Record(lat - d)
		}
	}
}

func (r *Result) merge(o *Result) {
	r.Sent += o.Sent
	for k, v := range o.Codes {
		r.Codes[k] += v
	}
	for k, v := range o.Errors {
		if _, seen := r.Errors[k]; !seen {
			r.Errors[k] = v
		}
	}
	r.Latency.Merge(&o.Latency)
	r.SES.Merge(&o.SES)
	r.Added.Merge(&o.Added)
	r.Matched += o.Matched
	r.Late += o.Late
	r.MaxLag = max(r.MaxLag, o.MaxLag)
}
