package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

// pipelines counts the round trips that carry admissions (a pipeline, or
// a script call sent alone) and the script calls in them; hold, when set, blocks each such pipeline until it
// is closed or receives.
type pipelines struct {
	n, calls atomic.Int64
	held     atomic.Int64 // pipelines that reached hold
	hold     chan struct{}
	entered  chan struct{} // receives once per held pipeline
}

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts a script call sent alone as a pipeline of one.
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.sent([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.sent(cmds)
		return next(ctx, cmds)
	}
}

func (p *pipelines) sent(cmds []redis.Cmder) {
	scripts := 0
	for _, c := range cmds {
		if n := c.Name(); n == "evalsha" || n == "eval" {
			scripts++
		}
	}
	if scripts == 0 {
		return
	}
	p.n.Add(1)
	p.calls.Add(int64(scripts))
	if p.hold != nil {
		p.held.Add(1)
		select {
		case p.entered <- struct{}{}:
		default:
		}
		<-p.hold
	}
}

// newBatchStore returns a store on srv whose admission pipelines p counts,
// with the clock at storetest.Start unless now is set.
func newBatchStore(t *testing.T, addr string, p *pipelines, batch int) *Store {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	if p != nil {
		c.AddHook(p)
	}
	clock := storetest.NewClock(storetest.Start)
	s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey, KnownTTL: storetest.KnownTTL, Now: clock.Now, AdmitBatch: batch,
		// The view polls and pings on this client: off, so the hooks count
		// the batcher alone.
		View: ViewOptions{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestAdmitBatchSameDecisions: a batch decided by one script call gives
// every message the decision it gets admitted alone, in the same order:
// suppressed and duplicate recipients, first contacts that become known
// inside the batch, and the hour and day quotas, the rate (per message and
// per recipient), the domain rate (enforced and shadowed) and the
// first-contact budget running out in the middle of the batch, for three
// tenants interleaved.
func TestAdmitBatchSameDecisions(t *testing.T) {
	srv := redistest.Start(t)
	batched, alone := newBatchStore(t, srv.Addr, nil, 0), newBatchStore(t, srv.Addr, nil, 1)
	ctx := context.Background()
	limits := []gateway.Limits{
		{PerHour: 6, Rate: 0.01, Burst: 6, FirstContactPerHour: 5, PerDomainRate: 0.01, PerDomainBurst: 4},
		{PerDay: 7, Rate: 0.01, Burst: 9, RatePerRecipient: true, FirstContactPerDay: 20, PerDomainRate: 0.01, PerDomainBurst: 3,
			Shadow: []string{gateway.LimitPerDomainRate}},
		{Rate: 0.01, Burst: 7, PerDomainRate: 0.01, PerDomainBurst: 2},
	}
	msgs := [][]string{
		{"a@x.example"}, {"A@x.example", "b@y.example"}, {"sup@x.example"}, {"sup@x.example", "c@z.example"},
		{"d@x.example", "d@x.example"}, {"a@x.example"}, {"e@y.example"}, {"f@z.example", "g@z.example"},
		{"b@y.example"}, {"h@w.example"}, {"a@x.example"}, {"i@v.example"}, {"j@v.example"}, {"k@v.example"},
	}
	for _, s := range []*Store{batched, alone} {
		for i := range limits {
			for _, tenant := range []string{"b" + fmt.Sprint(i), "a" + fmt.Sprint(i)} {
				if err := s.AddSuppression(ctx, store.Suppression{Tenant: tenant, Address: "sup@x.example", Reason: store.HardBounce, Added: storetest.Start}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var calls []*admitCall
	var want []store.Decision
	for i, m := range msgs {
		for li, l := range limits {
			req := store.AdmitRequest{Tenant: fmt.Sprintf("b%d", li), Recipients: m, Limits: l}
			lower := make([]string, len(m))
			for j, r := range m {
				lower[j] = strings.ToLower(r)
			}
			calls = append(calls, &admitCall{ctx: ctx, req: req, lower: lower, done: make(chan admitResult, 1)})
			req.Tenant = fmt.Sprintf("a%d", li)
			d, err := alone.runAdmit(ctx, req, lower)
			if err != nil {
				t.Fatalf("alone %d: %v", i, err)
			}
			want = append(want, d)
		}
	}
	batched.admitCalls(ctx, calls)
	admitted, refused := 0, 0
	for i, c := range calls {
		r := <-c.done
		if r.err != nil {
			t.Fatalf("batched %d: %v", i, r.err)
		}
		for j := range r.d.Suppressed {
			// the tenants differ, and so may the entries' added times
			r.d.Suppressed[j].Tenant, r.d.Suppressed[j].Added = want[i].Suppressed[j].Tenant, want[i].Suppressed[j].Added
		}
		if !reflect.DeepEqual(r.d, want[i]) {
			t.Errorf("message %d (%v, limits %d):\n batched %+v\n alone   %+v", i/len(limits), msgs[i/len(limits)], i%len(limits), r.d, want[i])
		}
		if r.d.Admitted {
			admitted++
		} else {
			refused++
		}
	}
	if admitted < 5 || refused < 5 {
		t.Fatalf("%d admitted, %d refused: the scenario should mix both", admitted, refused)
	}
	for li := range limits {
		ub, _ := batched.Usage(ctx, fmt.Sprintf("b%d", li))
		ua, _ := alone.Usage(ctx, fmt.Sprintf("a%d", li))
		if ub != ua {
			t.Errorf("limits %d: usage batched %+v, alone %+v", li, ub, ua)
		}
	}
}

// TestAdmitBatchConcurrent: concurrent admitters share pipelines (fewer
// than admissions) and a burst B admits exactly B of N > B senders, on a
// standalone Redis and on a Cluster, where each node gets its own
// pipelines.
func TestAdmitBatchConcurrent(t *testing.T) {
	srv := redistest.Start(t)
	cl := redistest.StartCluster(t)
	for _, tc := range []struct {
		name string
		new  func(p *pipelines) *Store
	}{
		{"standalone", func(p *pipelines) *Store { return newBatchStore(t, srv.Addr, p, 0) }},
		{"cluster", func(p *pipelines) *Store {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
			c.OnNewNode(func(n *redis.Client) { n.AddHook(p) })
			s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipelines{}
			s := tc.new(p)
			const senders, burst = 64, 10
			tenants := []string{"t1", "t2", "t3", "t4"}
			// Hold the pipelines until every sender is in one or queued
			// behind one: the first of each node's goes alone.
			p.hold = make(chan struct{})
			var admitted [4]atomic.Int64
			var wg sync.WaitGroup
			l := gateway.Limits{Rate: 0.001, Burst: burst}
			admit := func(i int) {
				d, err := s.Admit(context.Background(), store.AdmitRequest{Tenant: tenants[i%4], Limits: l,
					Recipients: []string{fmt.Sprintf("r%d@x.example", i)}})
				if err != nil {
					t.Error(err)
					return
				}
				if d.Admitted {
					admitted[i%4].Add(1)
				} else if d.Reason != store.ReasonRate {
					t.Errorf("refused for %q", d.Reason)
				}
			}
			for i := range senders {
				wg.Go(func() { admit(i) })
			}
			waitQueued(t, s, func(q int) bool { return q+int(p.held.Load()) == senders })
			close(p.hold)
			wg.Wait()
			for i := range tenants {
				if n := admitted[i].Load(); n != burst {
					t.Errorf("tenant %s: %d admitted of %d; want exactly the burst, %d", tenants[i], n, senders/4, burst)
				}
			}
			// Per node: one pipeline for the first admission, then one
			// for its queue, with one script call per tenant.
			held := p.held.Load()
			if n := p.n.Load(); n > 2*held {
				t.Errorf("%d pipelines for %d admissions over %d nodes", n, senders, held)
			}
			if n := p.calls.Load(); n > held+int64(len(tenants)) {
				t.Errorf("%d script calls for %d admissions of %d tenants over %d nodes", n, senders, len(tenants), held)
			}
			t.Logf("%d admissions: %d pipelines, %d script calls", senders, p.n.Load(), p.calls.Load())
		})
	}
}

// waitQueued waits until done holds for the number of admissions queued in
// the batchers of s.
func waitQueued(t *testing.T, s *Store, done func(queued int) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		got := 0
		s.batch.mu.Lock()
		for _, b := range s.batch.nodes {
			b.mu.Lock()
			got += len(b.queue)
			b.mu.Unlock()
		}
		s.batch.mu.Unlock()
		if done(got) {
			return
		}
	}
	t.Fatal("the admissions never queued")
}

// TestAdmitIdleOneRoundTrip: an admission that finds no pipeline in flight
// is sent at once, alone: one round trip (one pipeline, one script call),
// each time. (There is no timer to wait on: the batcher queues only behind
// a pipeline in flight.)
func TestAdmitIdleOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	p := &pipelines{}
	rt := &roundTrips{}
	s := newBatchStore(t, srv.Addr, p, 0)
	s.c.AddHook(rt)
	// The first admission dials a connection (HELLO, CLIENT SETINFO):
	// count from the second.
	if _, err := s.runAdmit(context.Background(), store.AdmitRequest{Tenant: "idle"}, []string{"dial@x.example"}); err != nil {
		t.Fatal(err)
	}
	rt.n.Store(0)
	p.calls.Store(0)
	for i := range 20 {
		d, err := s.runAdmit(context.Background(), store.AdmitRequest{Tenant: "idle", Limits: fullLimits},
			[]string{fmt.Sprintf("r%d@x.example", i)})
		if err != nil || !d.Admitted {
			t.Fatalf("admit %d: %+v %v", i, d, err)
		}
		if n := rt.n.Load(); n != int64(i+1) || p.calls.Load() != int64(i+1) {
			t.Fatalf("after %d admissions: %d round trips, %d script calls", i+1, n, p.calls.Load())
		}
	}
}

// TestAdmitBatchCancelled: a caller whose ctx ends while queued gets its
// error at once; its slot is left out of the pipeline (not counted), and
// the other callers of that pipeline get their decisions.
func TestAdmitBatchCancelled(t *testing.T) {
	srv := redistest.Start(t)
	p := &pipelines{hold: make(chan struct{}), entered: make(chan struct{}, 4)}
	s := newBatchStore(t, srv.Addr, p, 0)
	admit := func(ctx context.Context, r string) (store.Decision, error) {
		return s.Admit(ctx, store.AdmitRequest{Tenant: "cancel", Recipients: []string{r}})
	}
	type res struct {
		d   store.Decision
		err error
	}
	first := make(chan res, 1)
	go func() { d, err := admit(context.Background(), "first@x.example"); first <- res{d, err} }()
	<-p.entered
	cctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { _, err := admit(cctx, "cancelled@x.example"); cancelled <- err }()
	waitQueued(t, s, func(q int) bool { return q == 1 })
	others := make(chan res, 2)
	for _, r := range []string{"b@x.example", "c@x.example"} {
		go func() { d, err := admit(context.Background(), r); others <- res{d, err} }()
	}
	waitQueued(t, s, func(q int) bool { return q == 3 })
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	p.hold <- struct{}{} // the first pipeline goes
	<-p.entered          // the queue's
	close(p.hold)
	for _, c := range []chan res{first, others, others} {
		if r := <-c; r.err != nil || !r.d.Admitted {
			t.Fatalf("admission: %+v %v", r.d, r.err)
		}
	}
	if n := p.calls.Load(); n != 2 {
		t.Errorf("%d script calls; want 2 (the first, then the queue in one)", n)
	}
	if u, err := s.Usage(context.Background(), "cancel"); err != nil || u.Hour != 3 {
		t.Fatalf("usage %+v, %v; want the 3 admitted recipients, not the cancelled one", u, err)
	}
}

// TestAdmitBatchRedisDown: Redis gone while a pipeline is in flight: that
// pipeline's caller and every queued caller get an error (the limiter's
// degraded mode takes it from there), none hangs.
func TestAdmitBatchRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	p := &pipelines{hold: make(chan struct{}), entered: make(chan struct{}, 4)}
	s := newBatchStore(t, srv.Addr, p, 0)
	errs := make(chan error, 5)
	admit := func(r string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := s.Admit(ctx, store.AdmitRequest{Tenant: "down", Recipients: []string{r}})
		errs <- err
	}
	go admit("first@x.example")
	<-p.entered
	for i := range 4 {
		go admit(fmt.Sprintf("r%d@x.example", i))
	}
	waitQueued(t, s, func(q int) bool { return q == 4 })
	srv.Kill()
	close(p.hold)
	for range 5 {
		if err := <-errs; err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("admission with Redis down: %v; want Redis's error", err)
		}
	}
}

// TestAdmitBatchNoScript: servers that lost the script (SCRIPT FLUSH)
// answer a pipeline's calls NOSCRIPT; they are sent again with EVAL, and
// every caller gets its decision: on a standalone server, and on a Cluster
// where the pipeline is split over the nodes.
func TestAdmitBatchNoScript(t *testing.T) {
	srv := redistest.Start(t)
	cl := redistest.StartCluster(t)
	for _, tc := range []struct {
		name  string
		nodes []*redistest.Server
		c     redis.UniversalClient
	}{
		{"standalone", []*redistest.Server{srv}, redis.NewClient(&redis.Options{Addr: srv.Addr})},
		{"cluster", cl.Nodes, redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(context.Background(), Options{Client: tc.c, RecipientKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			evals := func() []int64 {
				var n []int64
				for _, node := range tc.nodes {
					n = append(n, node.Calls("eval"))
				}
				return n
			}
			for _, node := range tc.nodes {
				if _, err := node.Do("SCRIPT", "FLUSH"); err != nil {
					t.Fatal(err)
				}
			}
			const tenants = 9
			var calls []*admitCall
			for i := range 2 * tenants {
				lower := []string{fmt.Sprintf("r%d@x.example", i)}
				calls = append(calls, &admitCall{ctx: ctx, lower: lower, done: make(chan admitResult, 1),
					req: store.AdmitRequest{Tenant: fmt.Sprintf("ns%d", i%tenants), Recipients: lower, Limits: gateway.Limits{Rate: 0.001, Burst: 1}}})
			}
			before := evals()
			s.admitCalls(ctx, calls)
			for i, c := range calls {
				r := <-c.done
				if r.err != nil || r.d.Admitted != (i < tenants) {
					t.Fatalf("call %d: %+v %v", i, r.d, r.err)
				}
			}
			var total int64
			nodes := 0
			for i, n := range evals() {
				total += n - before[i]
				if n > before[i] {
					nodes++
				}
			}
			if total != tenants || nodes != len(tc.nodes) {
				t.Fatalf("%d EVALs on %d nodes; want %d, one per tenant's call, on all %d", total, nodes, tenants, len(tc.nodes))
			}
		})
	}
}

// TestAdmitCommands counts the commands admit.lua runs for a tenant with
// every limit set, one recipient per message, once its keys exist: a known
// recipient needs no read of the previous period's known hash, and a first
// contact does not set the known hash's expiry again (it has it).
func TestAdmitCommands(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock(storetest.Start)
	s, err := New(context.Background(), Options{Client: redis.NewClient(&redis.Options{Addr: srv.Addr}),
		RecipientKey: testKey, KnownTTL: storetest.KnownTTL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	cmds := []string{"hmget", "mget", "hset", "set", "incrby", "pexpire", "evalsha"}
	count := func() map[string]int64 {
		m := map[string]int64{}
		for _, c := range cmds {
			m[c] = srv.Calls(c)
		}
		return m
	}
	admit := func(r string) map[string]int64 {
		clock.Add(time.Second)
		before := count()
		d, err := s.runAdmit(ctx, store.AdmitRequest{Tenant: "cost", Limits: fullLimits}, []string{r})
		if err != nil || !d.Admitted {
			t.Fatalf("admit %s: %+v %v", r, d, err)
		}
		after := count()
		for c := range after {
			after[c] -= before[c]
		}
		return after
	}
	admit("first@d1.example") // creates the keys
	for _, tc := range []struct {
		rcpt string
		want map[string]int64
	}{
		// brk, sup, st, the current known hash
		{"first@d1.example", map[string]int64{"hmget": 4, "mget": 1, "hset": 2, "set": 1, "incrby": 1, "pexpire": 0, "evalsha": 1}},
		// and the previous period's known hash
		{"new@d2.example", map[string]int64{"hmget": 5, "mget": 1, "hset": 2, "set": 1, "incrby": 1, "pexpire": 0, "evalsha": 1}},
	} {
		if got := admit(tc.rcpt); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("admit %s: commands %v; want %v", tc.rcpt, got, tc.want)
		}
	}
	// The known hash has its expiry, set by the first admission (at
	// Start+1s, relative to that): the end of the next period, and grace.
	now := storetest.Start.Add(time.Second).UnixMilli()
	ttl := storetest.KnownTTL.Milliseconds()
	period := now / ttl
	want := (period+2)*ttl + knownGrace.Milliseconds() - now
	got, err := s.c.PTTL(ctx, tenantPrefix("cost")+keyKnown+fmt.Sprint(period)).Result()
	if err != nil || got.Milliseconds() > want || got.Milliseconds() < want-10_000 {
		t.Fatalf("known hash PTTL %v, %v; want %v", got, err, time.Duration(want)*time.Millisecond)
	}
}
