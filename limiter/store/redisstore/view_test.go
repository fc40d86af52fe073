package redisstore

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
)

// cmdCounter is a go-redis hook counting the commands a client sends, by
// name, and its round trips (a pipeline is one).
type cmdCounter struct {
	mu    sync.Mutex
	names map[string]int
	trips int
}

func (h *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd)
		return next(ctx, cmd)
	}
}

func (h *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record(cmds...)
		return next(ctx, cmds)
	}
}

func (h *cmdCounter) record(cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names == nil {
		h.names = map[string]int{}
	}
	h.trips++
	for _, c := range cmds {
		h.names[c.Name()]++
	}
}

// take returns the counts since the last take and resets them.
func (h *cmdCounter) take() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, t := h.names, h.trips
	h.names, h.trips = map[string]int{}, 0
	return n, t
}

func total(names map[string]int) int {
	var n int
	for _, c := range names {
		n += c
	}
	return n
}

// viewStore returns a Store on conn with the view as vo says, and the
// counter of its client's commands.
func viewStore(t *testing.T, conn ConnOptions, vo ViewOptions) (*Store, *cmdCounter) {
	t.Helper()
	c, err := NewClient(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey, View: vo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := &cmdCounter{}
	c.AddHook(h)
	return s, h
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ready(s *Store) func() bool {
	return func() bool { st := s.ViewStats(); return st.Ready && st.FreezeFresh }
}

func suppress(t *testing.T, s *Store, tenant, addr string) {
	t.Helper()
	if err := s.AddSuppression(context.Background(), store.Suppression{Tenant: tenant, Address: addr, Reason: store.Manual, Added: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func suppressed(t *testing.T, s *Store, tenant, addr string) bool {
	t.Helper()
	sp, err := s.CheckSuppressed(context.Background(), tenant, []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	return len(sp) > 0
}

func admitOne(t *testing.T, s *Store, tenant, addr string) store.Decision {
	t.Helper()
	d, err := s.Admit(context.Background(), store.AdmitRequest{Tenant: tenant, Recipients: []string{addr}, Limits: gateway.Limits{PerHour: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deployments are the Redis shapes the view is tested on; kill ends every
// pub/sub connection (CLIENT KILL TYPE pubsub on each node).
type deployment struct {
	name  string
	start func(t *testing.T) (conn ConnOptions, kill func())
}

var viewDeployments = []deployment{
	{"standalone", func(t *testing.T) (ConnOptions, func()) {
		srv := redistest.Start(t)
		return ConnOptions{URL: "redis://" + srv.Addr}, func() { killPubSub(t, srv) }
	}},
	{"cluster", func(t *testing.T) (ConnOptions, func()) {
		cl := redistest.StartCluster(t)
		return ConnOptions{Addrs: cl.Addrs()}, func() {
			for _, n := range cl.Nodes {
				killPubSub(t, n)
			}
		}
	}},
}

func killPubSub(t *testing.T, srv *redistest.Server) {
	t.Helper()
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
}

// TestViewAnswersFromMemory: the lists present at start are loaded (every
// primary of a Cluster scanned); a suppression added through another
// replica is answered here once published, by the push (no rebuild); then
// N RCPT checks of unsuppressed addresses send no command and N admissions
// send N EVALSHA and nothing else.
func TestViewAnswersFromMemory(t *testing.T) {
	for _, dep := range viewDeployments {
		t.Run(dep.name, func(t *testing.T) {
			conn, kill := dep.start(t)
			seed, _ := viewStore(t, conn, ViewOptions{Off: true})
			const tenants = 12 // spread over the Cluster's slots
			for i := range tenants {
				suppress(t, seed, fmt.Sprintf("pre%d", i), "Old@X.example")
			}
			suppress(t, seed, "", "gold@x.example")

			a, calls := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour})
			other, _ := viewStore(t, conn, ViewOptions{})
			waitFor(t, "the view ready", ready(a))
			calls.take()
			for i := range tenants {
				if !a.view.contains(fmt.Sprintf("pre%d", i), "old@x.example") {
					t.Fatalf("tenant pre%d's list not loaded", i)
				}
			}
			if !a.view.contains("", "gold@x.example") {
				t.Fatal("global list not loaded")
			}
			if names, _ := calls.take(); total(names) != 0 {
				t.Fatalf("filter lookups sent %v", names)
			}
			rebuilds := a.ViewStats().Rebuilds

			suppress(t, other, "acme", "New@X.example")
			suppress(t, other, "", "gnew@x.example")
			waitFor(t, "the tenant suppression pushed", func() bool { return suppressed(t, a, "acme", "new@x.example") })
			waitFor(t, "the global suppression pushed", func() bool { return suppressed(t, a, "zeta", "gnew@x.example") })
			if got := a.ViewStats().Rebuilds; got != rebuilds {
				t.Fatalf("answered after %d rebuilds, not by the push", got-rebuilds)
			}
			if d := admitOne(t, a, "beta", "gnew@x.example"); d.Reason != store.ReasonSuppressed {
				t.Fatalf("global suppression at admission: %+v", d)
			}

			const n = 500
			calls.take()
			for i := range n {
				if suppressed(t, a, "acme", fmt.Sprintf("u%d@rcpt.example", i)) {
					t.Fatalf("u%d suppressed", i)
				}
			}
			if names, trips := calls.take(); trips != 0 {
				t.Fatalf("%d RCPT checks sent %d round trips: %v; want 0", n, trips, names)
			}
			for i := range n {
				if d := admitOne(t, a, "acme", fmt.Sprintf("u%d@rcpt.example", i)); !d.Admitted {
					t.Fatalf("u%d: %+v", i, d)
				}
			}
			if names, trips := calls.take(); trips != n || names["evalsha"] != n || total(names) != n {
				t.Fatalf("%d admissions: %d round trips, %v; want %d EVALSHA alone", n, trips, names, n)
			}

			// The subscription killed: rebuilt on resubscription.
			st := a.ViewStats()
			kill()
			waitFor(t, "the view rebuilt after the kill", func() bool {
				now := a.ViewStats()
				return now.Ready && now.Drops > st.Drops && now.Rebuilds > st.Rebuilds
			})
			if !suppressed(t, a, "acme", "new@x.example") || suppressed(t, a, "acme", "u1@rcpt.example") {
				t.Fatal("wrong answers after the rebuild")
			}
		})
	}
}

// contains reports whether the filter may hold the entry (tests).
func (v *view) contains(tenant, addr string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.filter != nil && v.filter.TestString(filterKey(tenant, addr))
}

// TestViewFreezePushed: a global freeze set through another replica
// refuses admissions here by the push (the poll is an hour away), with no
// call; the unfreeze likewise.
func TestViewFreezePushed(t *testing.T) {
	for _, dep := range viewDeployments {
		t.Run(dep.name, func(t *testing.T) {
			conn, kill := dep.start(t)
			a, calls := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour})
			other, _ := viewStore(t, conn, ViewOptions{Off: true})
			waitFor(t, "the view ready", ready(a))
			if err := other.SetFrozen(context.Background(), "", true); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the freeze pushed", func() bool { return admitOne(t, a, "acme", "r@x.example").Reason == store.ReasonFrozen })
			calls.take()
			if d := admitOne(t, a, "acme", "r@x.example"); d.Reason != store.ReasonFrozen {
				t.Fatalf("frozen: %+v", d)
			}
			if names, _ := calls.take(); total(names) != 0 {
				t.Fatalf("a frozen refusal sent %v; want nothing", names)
			}
			if err := other.SetFrozen(context.Background(), "", false); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the unfreeze pushed", func() bool { return admitOne(t, a, "acme", "r@x.example").Admitted })

			// Pushes lost with the subscription: the resubscription reads
			// the flag (the poll is an hour away).
			kill()
			if err := other.SetFrozen(context.Background(), "", true); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the freeze after the subscription was killed", func() bool {
				return admitOne(t, a, "acme", "r@x.example").Reason == store.ReasonFrozen
			})
		})
	}
}

// TestViewFreezePollBackstop: with the pub/sub connection killed, a freeze
// written with no message at all (what a lost message looks like) still
// refuses admissions here within the poll; so does one set through another
// replica right after the kill.
func TestViewFreezePollBackstop(t *testing.T) {
	srv := redistest.Start(t)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	a, _ := viewStore(t, conn, ViewOptions{FreezePoll: 100 * time.Millisecond})
	other, _ := viewStore(t, conn, ViewOptions{Off: true})
	waitFor(t, "the view ready", ready(a))
	killPubSub(t, srv)
	if _, err := srv.Do("SET", keyGlobalFrozen, "1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unpublished freeze polled", func() bool { return admitOne(t, a, "acme", "r@x.example").Reason == store.ReasonFrozen })
	killPubSub(t, srv)
	if err := other.SetFrozen(context.Background(), "", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unfreeze", func() bool { return admitOne(t, a, "acme", "r@x.example").Admitted })

	// The flag's version lost (FLUSHALL; a restart without persistence):
	// its next writes carry lower versions than this replica holds, and
	// the poll still gets them through.
	if err := other.SetFrozen(context.Background(), "", false); err != nil {
		t.Fatal(err)
	}
	ver, err := srv.Do("GET", keyGlobalFrozenVer)
	if err != nil || ver != "2" {
		t.Fatalf("flag version %q, %v; want 2", ver, err)
	}
	waitFor(t, "version 2 here", func() bool {
		a.view.fmu.Lock()
		defer a.view.fmu.Unlock()
		return a.view.frozenVer == 2
	})
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if err := other.SetFrozen(context.Background(), "", true); err != nil {
		t.Fatal(err)
	}
	// Answered from the local flag, fresh (not by the per-message read a
	// stale flag falls back to).
	waitFor(t, "the freeze after the reset", func() bool { st := a.ViewStats(); return st.FreezeFresh && st.Frozen })
}

// TestViewStaleFreezeReadsPerMessage: once neither poll nor push has
// confirmed the flag for 3 polls, Admit reads it with every message.
func TestViewStaleFreezeReadsPerMessage(t *testing.T) {
	srv := redistest.Start(t)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a, calls := viewStore(t, ConnOptions{URL: "redis://" + srv.Addr}, ViewOptions{FreezePoll: time.Hour, Clock: clock})
	waitFor(t, "the view ready", ready(a))
	if _, err := srv.Do("SET", keyGlobalFrozen, "1"); err != nil { // no message
		t.Fatal(err)
	}
	calls.take()
	if d := admitOne(t, a, "acme", "r@x.example"); !d.Admitted {
		t.Fatalf("within the window the local flag answers: %+v", d)
	}
	if names, _ := calls.take(); names["exists"] != 0 {
		t.Fatalf("fresh flag read from Redis: %v", names)
	}
	now.Add(int64(freezeStalePolls*time.Hour + time.Second))
	if a.ViewStats().FreezeFresh {
		t.Fatal("flag still fresh after 3 polls")
	}
	if d := admitOne(t, a, "acme", "r@x.example"); d.Reason != store.ReasonFrozen {
		t.Fatalf("stale flag: %+v; want the read's frozen", d)
	}
	if names, _ := calls.take(); names["exists"] != 1 {
		t.Fatalf("stale flag not read: %v", names)
	}
}

// cutProxy forwards TCP to a Redis server; while refusing it closes new
// connections at once, so a dropped subscription cannot come back while
// the pooled connections keep working (fault injection).
type cutProxy struct {
	ln      net.Listener
	refuse  atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	backend string
}

func startProxy(t *testing.T, backend string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refuse.Load() {
			c.Close()
			continue
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(b, c)
		go pipe(c, b)
	}
}

// TestViewSubscriptionLost: the subscription dropped (and kept from coming
// back), the view stops answering and every check reads Redis, which
// answers a suppression whose message was lost; once it is back the view
// is rebuilt (the lost entry in it) and answers alone again.
func TestViewSubscriptionLost(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, srv.Addr)
	a, calls := viewStore(t, ConnOptions{URL: "redis://" + p.ln.Addr().String()}, ViewOptions{FreezePoll: 100 * time.Millisecond})
	other, _ := viewStore(t, ConnOptions{URL: "redis://" + srv.Addr}, ViewOptions{Off: true})
	waitFor(t, "the view ready", ready(a))
	before := a.ViewStats()

	p.refuse.Store(true)
	killPubSub(t, srv)
	waitFor(t, "the drop noticed", func() bool { st := a.ViewStats(); return !st.Ready && st.Drops > before.Drops })
	suppress(t, other, "acme", "lost@x.example") // its message reaches no one
	calls.take()
	if !suppressed(t, a, "acme", "lost@x.example") {
		t.Fatal("the fallback read missed the suppression")
	}
	if suppressed(t, a, "acme", "free@x.example") {
		t.Fatal("free@ suppressed")
	}
	if names, _ := calls.take(); names["hmget"] != 4 {
		t.Fatalf("fallback: %v; want 2 HMGET (tenant and global) per check", names)
	}

	p.refuse.Store(false)
	waitFor(t, "the view rebuilt", ready(a))
	if got := a.ViewStats().Rebuilds; got <= before.Rebuilds {
		t.Fatalf("ready again after %d rebuilds; want more than %d", got, before.Rebuilds)
	}
	if !a.view.contains("acme", "lost@x.example") {
		t.Fatal("the rebuild missed the entry whose message was lost")
	}
	calls.take()
	if suppressed(t, a, "acme", "free@x.example") {
		t.Fatal("free@ suppressed")
	}
	if names, _ := calls.take(); total(names) != 0 {
		t.Fatalf("rebuilt view still reads: %v", names)
	}
}

// TestViewFalsePositiveConfirmed: an address the filter holds by chance is
// confirmed negative by one read, at RCPT and at admission (the message
// goes).
func TestViewFalsePositiveConfirmed(t *testing.T) {
	srv := redistest.Start(t)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	seed, _ := viewStore(t, conn, ViewOptions{Off: true})
	for i := range 20 {
		suppress(t, seed, "", fmt.Sprintf("g%d@x.example", i))
	}
	// A filter sized for 30 entries: false positives are easy to find.
	a, calls := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour, MinCapacity: 1})
	waitFor(t, "the view ready", ready(a))
	fp := ""
	for i := 0; fp == "" && i < 100_000; i++ {
		if addr := fmt.Sprintf("fp%d@rcpt.example", i); a.view.contains("", addr) {
			fp = addr
		}
	}
	if fp == "" {
		t.Fatal("no false positive in 100,000 tries")
	}
	calls.take()
	if suppressed(t, a, "acme", fp) {
		t.Fatalf("%s reported suppressed", fp)
	}
	if names, trips := calls.take(); trips != 1 || names["hmget"] != 1 {
		t.Fatalf("false positive at RCPT: %d round trips, %v; want one HMGET", trips, names)
	}
	if d := admitOne(t, a, "acme", fp); !d.Admitted || len(d.Suppressed) != 0 {
		t.Fatalf("false positive at admission: %+v", d)
	}
	if names, _ := calls.take(); names["evalsha"] != 1 || names["hmget"] != 1 || total(names) != 2 {
		t.Fatalf("false positive at admission sent %v; want EVALSHA and one HMGET", names)
	}
}

// TestViewGrowsWithCount: past its capacity the filter is rebuilt larger,
// sized from the lists' lengths.
func TestViewGrowsWithCount(t *testing.T) {
	srv := redistest.Start(t)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	a, _ := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour, MinCapacity: 8})
	other, _ := viewStore(t, conn, ViewOptions{Off: true})
	waitFor(t, "the view ready", ready(a))
	small := a.ViewStats()
	if small.Capacity != 8 {
		t.Fatalf("capacity %d; want the minimum 8", small.Capacity)
	}
	const n = 200
	for i := range n {
		suppress(t, other, "grow", fmt.Sprintf("a%d@x.example", i))
	}
	// Count may pass n early (an entry scanned and pushed during a build
	// counts twice): wait for every entry too.
	waitFor(t, "a larger filter holding every entry", func() bool {
		st := a.ViewStats()
		if !st.Ready || st.Capacity < n || st.Count > st.Capacity {
			return false
		}
		for i := range n {
			if !a.view.contains("grow", fmt.Sprintf("a%d@x.example", i)) {
				return false
			}
		}
		return true
	})
	if st := a.ViewStats(); st.Rebuilds <= small.Rebuilds || st.Bytes <= small.Bytes {
		t.Fatalf("grown %+v from %+v", st, small)
	}
}

// TestViewMemory pins the figures the package doc states: 1% false
// positives cost about 1.2 bytes per entry of capacity (10M: ~12 MB).
func TestViewMemory(t *testing.T) {
	m, _ := bloom.EstimateParameters(10_000_000, DefaultFalsePositive)
	if mb := float64(m) / 8 / 1e6; mb < 11.5 || mb > 12.5 {
		t.Fatalf("10M entries at 1%%: %.1f MB; the doc says ~12 MB", mb)
	}
	if err := (&ViewOptions{FalsePositive: 1.5}).defaults(); err == nil || err.Error() != "redisstore: view false-positive rate 1.5: want 0 < rate < 1" {
		t.Fatalf("bad rate: %v", err)
	}
}

// TestViewListCreatedDuringBuild: a list created after a build's SCAN
// passed (its first entry pushed while the build sizes its filter) is in
// the built filter.
func TestViewListCreatedDuringBuild(t *testing.T) {
	srv := redistest.Start(t)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	other, _ := viewStore(t, conn, ViewOptions{Off: true})
	var once sync.Once
	hook := make(chan *Store, 1)
	a, _ := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour, afterList: func() {
		once.Do(func() { // on the build's goroutine: no t.Fatal
			s := <-hook
			err := other.AddSuppression(context.Background(), store.Suppression{Tenant: "late", Address: "x@late.example", Reason: store.Manual, Added: time.Now()})
			if err != nil {
				t.Error(err)
				return
			}
			for deadline := time.Now().Add(15 * time.Second); s.ViewStats().Messages == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Error("the push never came")
					return
				}
			}
		})
	}})
	hook <- a
	waitFor(t, "the view ready", ready(a))
	if !a.view.contains("late", "x@late.example") {
		t.Fatal("the entry pushed during the build is missing")
	}
}

// TestViewRebuildForgetsRemovals: a removed address stays a filter hit
// (confirmed negative by a read) until the periodic rebuild drops it.
func TestViewRebuildForgetsRemovals(t *testing.T) {
	srv := redistest.Start(t)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	a, calls := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour, Rebuild: time.Hour})
	waitFor(t, "the view ready", ready(a))
	suppress(t, a, "acme", "gone@x.example")
	if found, err := a.RemoveSuppression(context.Background(), "acme", "gone@x.example"); err != nil || !found {
		t.Fatalf("remove: %v %v", found, err)
	}
	calls.take()
	if suppressed(t, a, "acme", "gone@x.example") {
		t.Fatal("removed address answered suppressed")
	}
	if names, _ := calls.take(); names["hmget"] != 1 {
		t.Fatalf("removed address before a rebuild: %v; want one confirming HMGET", names)
	}
	// A second store rebuilding every 200ms (give or take 10%).
	b, bcalls := viewStore(t, conn, ViewOptions{FreezePoll: time.Hour, Rebuild: 200 * time.Millisecond})
	suppress(t, b, "acme", "gone2@x.example")
	if _, err := b.RemoveSuppression(context.Background(), "acme", "gone2@x.example"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the periodic rebuilds", func() bool { st := b.ViewStats(); return st.Ready && st.Rebuilds >= 3 })
	bcalls.take()
	if suppressed(t, b, "acme", "gone2@x.example") {
		t.Fatal("removed address answered suppressed")
	}
	if names, _ := bcalls.take(); names["hmget"] != 0 { // the builds' own scans go on
		t.Fatalf("removed address after a rebuild: %v; want no read", names)
	}
}
