package redisstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// Batching of admissions (group commit). An admission that finds its
// Redis node idle goes at once, alone, in one round trip. While a pipeline
// is in flight to that node, further admissions queue; when it returns,
// the queue goes as ONE pipeline (at most Options.AdmitBatch admissions),
// and so on until the queue is empty. Within a pipeline the admissions of
// one tenant with the same limits are ONE call of admit.lua, which decides
// them in order as if each had been admitted alone (see admit.lua).
//
// Hand-written rather than go-redis's AutoPipeline: that merges the round
// trips of commands already built, one EVALSHA per admission; most of the
// saving here is one script call deciding many messages (the tenant's
// state read and written once), which needs the admissions grouped before
// the call is built.
const (
	// defaultAdmitBatch is Options.AdmitBatch's default.
	defaultAdmitBatch = 64
	// maxScriptRecipients bounds the recipients of one admit.lua call (a
	// message with more still goes, alone): Redis runs nothing else while
	// a script runs.
	maxScriptRecipients = 512
)

// admitCall is one admission waiting for, or riding in, a pipeline.
type admitCall struct {
	ctx   context.Context
	req   store.AdmitRequest
	lower []string
	done  chan admitResult // buffered: the sender never waits
}

type admitResult struct {
	d   store.Decision
	err error
}

// batchers holds one batcher per Redis node: a stalled node holds only
// the admissions of its own slots.
type batchers struct {
	s   *Store
	max int // admissions per pipeline; 1: no batching

	mu    sync.Mutex
	nodes map[string]*batcher // by the node's address; "" off a Cluster
}

// batcher queues the admissions of one node while its pipeline is in
// flight.
type batcher struct {
	s   *Store
	max int

	mu    sync.Mutex
	busy  bool // a pipeline is in flight or about to be
	queue []*admitCall
}

func newBatchers(s *Store, max int) *batchers {
	if max <= 0 {
		max = defaultAdmitBatch
	}
	return &batchers{s: s, max: max, nodes: map[string]*batcher{}}
}

// runAdmit decides one admission through its node's batcher.
func (s *Store) runAdmit(ctx context.Context, req store.AdmitRequest, lower []string) (store.Decision, error) {
	if s.batch.max == 1 {
		return s.admitOne(ctx, req, lower)
	}
	return s.batch.node(ctx, req.Tenant).admit(ctx, req, lower)
}

// admitOne runs one admission alone: one script call, sent as a plain
// command (EVALSHA, then EVAL on NOSCRIPT), which on a Cluster also loads
// go-redis's command table that single commands route by (a pipeline does
// not).
func (s *Store) admitOne(ctx context.Context, req store.AdmitRequest, lower []string) (store.Decision, error) {
	keys, argv := s.admitArgs(req, lower)
	res, err := s.admit.Run(ctx, s.c, keys, argv...).Slice()
	if err != nil {
		return store.Decision{}, fmt.Errorf("redisstore: admit: %w", err)
	}
	if len(res) != 1 {
		return store.Decision{}, fmt.Errorf("redisstore: admit script returned %d answers for 1 message", len(res))
	}
	row, ok := res[0].([]any)
	if !ok {
		return store.Decision{}, fmt.Errorf("redisstore: admit script returned a bad answer")
	}
	return parseAdmit(req.Tenant, lower, row)
}

// node returns the batcher of the node that holds tenant's slot.
func (bs *batchers) node(ctx context.Context, tenant string) *batcher {
	addr := ""
	if cc, ok := bs.s.c.(*redis.ClusterClient); ok {
		// The slot map is in memory once loaded; on an error the
		// default batcher takes the call and the pipeline reports it.
		if n, err := cc.MasterForKey(ctx, tenantPrefix(tenant)+keyState); err == nil {
			addr = n.Options().Addr
		}
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.nodes[addr]
	if b == nil {
		b = &batcher{s: bs.s, max: bs.max}
		bs.nodes[addr] = b
	}
	return b
}

// admit sends c at once when no pipeline is in flight, else queues it for
// the next one. A caller whose ctx ends while queued gets ctx.Err() and its
// slot is skipped.
func (b *batcher) admit(ctx context.Context, req store.AdmitRequest, lower []string) (store.Decision, error) {
	if err := ctx.Err(); err != nil {
		return store.Decision{}, err
	}
	b.mu.Lock()
	if b.busy {
		c := &admitCall{ctx: ctx, req: req, lower: lower, done: make(chan admitResult, 1)}
		b.queue = append(b.queue, c)
		b.mu.Unlock()
		select {
		case r := <-c.done:
			return r.d, r.err
		case <-ctx.Done():
			return store.Decision{}, ctx.Err()
		}
	}
	b.busy = true
	b.mu.Unlock()
	d, err := b.s.admitOne(ctx, req, lower)
	// What queued meanwhile goes on in its own goroutine: this caller
	// returns now.
	if b.more() {
		go b.drain()
	}
	return d, err
}

// more reports whether calls are queued, and clears busy when none are.
func (b *batcher) more() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.busy = false
		return false
	}
	return true
}

// drain sends the queue, at most max calls per pipeline, until it is empty.
func (b *batcher) drain() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		calls := slices.Clone(b.queue[:n])
		clear(b.queue[:n])
		b.queue = b.queue[n:]
		b.mu.Unlock()

		live := calls[:0]
		for _, c := range calls {
			if err := c.ctx.Err(); err != nil {
				c.done <- admitResult{err: err} // its caller is gone already
				continue
			}
			live = append(live, c)
		}
		if len(live) > 0 {
			ctx, cancel := batchContext(live)
			b.s.admitCalls(ctx, live)
			cancel()
		}
	}
}

// batchContext is the context of a pipeline of several callers: none of
// them can cancel it, and it ends at the latest of their deadlines (none
// when one caller has none: the client's read timeout bounds it then).
// Each caller still returns at its own deadline.
func batchContext(calls []*admitCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range calls {
		d, ok := c.ctx.Deadline()
		if !ok {
			return context.WithoutCancel(calls[0].ctx), func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(calls[0].ctx), latest)
}

// admitGroup is one admit.lua call: admissions of one tenant with the same
// limits, in arrival order.
type admitGroup struct {
	calls []*admitCall
	rcpts int
}

// groups cuts calls into admit.lua calls, in order of first arrival.
func groups(calls []*admitCall) []*admitGroup {
	var out []*admitGroup
	for _, c := range calls {
		var g *admitGroup
		for _, o := range out {
			h := o.calls[0]
			if h.req.Tenant == c.req.Tenant && sameLimits(h.req.Limits, c.req.Limits) &&
				o.rcpts+len(c.lower) <= maxScriptRecipients {
				g = o
				break
			}
		}
		if g == nil {
			g = &admitGroup{}
			out = append(out, g)
		}
		g.calls = append(g.calls, c)
		g.rcpts += len(c.lower)
	}
	return out
}

// sameLimits reports whether two admissions can share one admit.lua call:
// whether every limit the script is given is the same.
func sameLimits(a, b gateway.Limits) bool { return scriptLimits(a) == scriptLimits(b) }

// scriptLimitSet is what batchArgs gives admit.lua of a tenant's limits.
type scriptLimitSet struct {
	rate, domRate                    float64
	burst, domBurst                  int
	perRcpt                          bool
	hour, day, fcHour, fcDay, shadow int64
	wInit, wMin, wMax, wThresh       int64
	wTimeout                         time.Duration
}

func scriptLimits(l gateway.Limits) scriptLimitSet {
	w := l.FirstContactWindow
	return scriptLimitSet{
		rate: l.Rate, domRate: l.PerDomainRate, burst: l.EffectiveBurst(), domBurst: l.EffectivePerDomainBurst(),
		perRcpt: l.RatePerRecipient, hour: l.PerHour, day: l.PerDay, fcHour: l.FirstContactPerHour, fcDay: l.FirstContactPerDay,
		shadow: shadowMask(l.Shadow), wInit: w.Initial, wMin: w.Min, wMax: w.Max, wThresh: w.Threshold, wTimeout: w.OutstandingTimeout,
	}
}

// admitCalls runs calls in ONE round trip (a pipeline when there are
// several script calls; per node on a Cluster: go-redis splits it) and
// answers each on its done channel. A group that finds the
// script missing (NOSCRIPT: a restarted or new primary that the connect
// hook did not reach) is sent again with EVAL, which loads it.
func (s *Store) admitCalls(ctx context.Context, calls []*admitCall) {
	gs := groups(calls)
	keys := make([][]string, len(gs))
	argv := make([][]any, len(gs))
	for i, g := range gs {
		msgs := make([][]string, len(g.calls))
		for j, c := range g.calls {
			msgs[j] = c.lower
		}
		h := g.calls[0].req
		keys[i], argv[i] = s.batchArgs(h.Tenant, h.Limits, msgs)
	}
	cmds := make([]*redis.Cmd, len(gs))
	if len(gs) == 1 {
		// One script call: a plain command, as admitOne sends it.
		cmds[0] = s.admit.Run(ctx, s.c, keys[0], argv[0]...)
		s.answer(gs, cmds)
		return
	}
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range gs {
			cmds[i] = s.admit.EvalSha(ctx, p, keys[i], argv[i]...)
		}
		return nil
	})
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range again {
				cmds[i] = s.admit.Eval(ctx, p, keys[i], argv[i]...)
			}
			return nil
		})
	}
	s.answer(gs, cmds)
}

// answer gives each call of gs its decision from its group's reply, or the
// group's error.
func (s *Store) answer(gs []*admitGroup, cmds []*redis.Cmd) {
	for i, g := range gs {
		res, err := cmds[i].Slice()
		if err == nil && len(res) != len(g.calls) {
			err = fmt.Errorf("redisstore: admit script returned %d answers for %d messages", len(res), len(g.calls))
		}
		for j, c := range g.calls {
			if err != nil {
				c.done <- admitResult{err: fmt.Errorf("redisstore: admit: %w", err)}
				continue
			}
			row, ok := res[j].([]any)
			if !ok {
				c.done <- admitResult{err: fmt.Errorf("redisstore: admit script returned a bad answer")}
				continue
			}
			d, perr := parseAdmit(c.req.Tenant, c.lower, row)
			c.done <- admitResult{d: d, err: perr}
		}
	}
}
