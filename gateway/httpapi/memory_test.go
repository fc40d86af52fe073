package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// gatedSink holds every message until its gate closes, keeping the body
// referenced (as a real sink does while SES answers), and counts arrivals.
type gatedSink struct {
	gate    chan struct{}
	once    sync.Once
	entered atomic.Int64
	mu      sync.Mutex
	held    [][]byte
}

func newGatedSink() *gatedSink { return &gatedSink{gate: make(chan struct{})} }

// release lets every message held, and every later one, through.
func (s *gatedSink) release() { s.once.Do(func() { close(s.gate) }) }

func (s *gatedSink) Send(ctx context.Context, env *gateway.Envelope) (string, error) {
	s.mu.Lock()
	s.held = append(s.held, env.Data)
	s.mu.Unlock()
	s.entered.Add(1)
	select {
	case <-s.gate:
	case <-ctx.Done():
		return "", gateway.Wrap(gateway.CodeUpstreamUnavailable, ctx.Err(), "upstream timed out")
	}
	s.mu.Lock()
	s.held = nil
	s.mu.Unlock()
	return "ses-" + env.ID, nil
}

// countingListener counts the bytes the server reads on each connection,
// by the client's address.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	reads map[string]*atomic.Int64
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := &atomic.Int64{}
	l.mu.Lock()
	l.reads[c.RemoteAddr().String()] = n
	l.mu.Unlock()
	return countingConn{c, n}, nil
}

// read returns the bytes the server read from the client at addr.
func (l *countingListener) read(addr string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.reads[addr]; n != nil {
		return n.Load()
	}
	return -1
}

// liveServer is a Handler behind the real http.Server of NewServer on a
// loopback listener that counts what it reads.
type liveServer struct {
	addr string
	cl   *countingListener
	sink *gatedSink
}

func startLive(t *testing.T, tenants fakeAuth, opts Options) *liveServer {
	t.Helper()
	sink := newGatedSink()
	log := slog.New(slog.DiscardHandler)
	opts.Pipeline = gateway.NewPipeline(gateway.Options{Auth: tenants, Sink: sink, Logger: log})
	opts.Logger = log
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l, reads: map[string]*atomic.Int64{}}
	srv := NewServer(ServerOptions{Handler: New(opts)})
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() {
		sink.release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &liveServer{addr: l.Addr().String(), cl: cl, sink: sink}
}

// rawPost is one POST /v1/messages on its own connection: the headers go
// out at once, the body (if any) from a goroutine, and the answer is read
// concurrently, so an answer given before the body was read arrives.
type rawPost struct {
	local string // the client's address, the key of countingListener
	done  chan struct{}
	resp  *http.Response
	body  []byte
	err   error
	at    time.Time // when the answer arrived
}

// post sends headers declaring length (-1: chunked) and then body;
// send false sends no body at all (the client waits for the answer).
func post(t *testing.T, addr, token, contentType string, length int64, body []byte, send bool) *rawPost {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	p := &rawPost{local: c.LocalAddr().String(), done: make(chan struct{})}
	hdr := "POST /v1/messages HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token + "\r\nContent-Type: " + contentType + "\r\n"
	if length >= 0 {
		hdr += "Content-Length: " + strconv.FormatInt(length, 10) + "\r\n"
	} else {
		hdr += "Transfer-Encoding: chunked\r\n"
	}
	if _, err := io.WriteString(c, hdr+"\r\n"); err != nil {
		t.Fatal(err)
	}
	if send {
		go func() {
			if length < 0 {
				fmt.Fprintf(c, "%x\r\n", len(body))
				_, _ = c.Write(body)
				_, _ = io.WriteString(c, "\r\n0\r\n\r\n")
				return
			}
			_, _ = c.Write(body) // fails once a refusing server closes
		}()
	}
	go func() {
		defer close(p.done)
		p.resp, p.err = http.ReadResponse(bufio.NewReader(c), nil)
		p.at = time.Now()
		if p.err == nil {
			p.body, _ = io.ReadAll(io.LimitReader(p.resp.Body, 1<<16))
		}
	}()
	return p
}

// answered reports whether the answer arrived within d.
func (p *rawPost) answered(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// code is the answer's status and JSON error code.
func (p *rawPost) code() (int, string) {
	if p.err != nil || p.resp == nil {
		return 0, fmt.Sprint(p.err)
	}
	var b errorBody
	_ = json.Unmarshal(p.body, &b)
	return p.resp.StatusCode, b.Error.Code
}

// heapSampler records the peak HeapInuse above the level at its start.
type heapSampler struct {
	base, peak uint64
	stop       chan struct{}
	done       chan struct{}
}

func sampleHeap() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapSampler{base: ms.HeapInuse, peak: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			h.peak = max(h.peak, ms.HeapInuse)
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// growth stops sampling and returns the peak growth in bytes.
func (h *heapSampler) growth() int64 {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
	return int64(h.peak - h.base)
}

// rawBody is a message/rfc822 of about size bytes.
func rawBody(size int) []byte {
	head := "From: a@example.com\r\nTo: b@dest.example\r\nSubject: big\r\n\r\n"
	line := strings.Repeat("x", 76) + "\r\n"
	var b strings.Builder
	b.Grow(size)
	b.WriteString(head)
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// TestMemoryBudgetRefusesBeforeBody is the flood of large raw posts with
// one valid token: n parallel posts of size bytes against a budget with
// room for two. Two are read and held at the sink; every other one is
// answered 503 server_busy with Retry-After before its body is read (the
// server reads almost nothing of it), and the heap grows by about what the
// budget allows, not by n bodies.
func TestMemoryBudgetRefusesBeforeBody(t *testing.T) {
	const (
		size = 4 << 20
		n    = 16
	)
	budget, err := gateway.NewMemBudget(2*size + size/2)
	if err != nil {
		t.Fatal(err)
	}
	s := startLive(t, fakeAuth{testToken: testTenant()}, Options{Budget: budget, MaxRequestsPerTenant: 2 * n})
	body := rawBody(size)
	heap := sampleHeap()
	posts := make([]*rawPost, n)
	for i := range posts {
		posts[i] = post(t, s.addr, testToken, "message/rfc822", int64(len(body)), body, true)
	}
	// Two are held at the sink; the others must be answered meanwhile.
	deadline := time.Now().Add(30 * time.Second)
	var answered []*rawPost
	for time.Now().Before(deadline) {
		answered = answered[:0]
		for _, p := range posts {
			select {
			case <-p.done:
				answered = append(answered, p)
			default:
			}
		}
		if len(answered) == n-2 || s.sink.entered.Load() > 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.sink.entered.Load(); got > 2 || len(answered) != n-2 {
		time.Sleep(time.Second) // let the rest arrive, for the figures
		t.Fatalf("%d of %d posts reached the sink and %d were answered while two were held (want 2 and %d); heap grew %s against a budget of %s",
			s.sink.entered.Load(), n, len(answered), n-2, mib(heap.growth()), mib(budget.Limit()))
	}
	for _, p := range answered {
		status, code := p.code()
		if status != http.StatusServiceUnavailable || code != "server_busy" || p.resp.Header.Get("Retry-After") == "" {
			t.Errorf("refused post: %d %q Retry-After %q; want 503 server_busy with Retry-After", status, code, p.resp.Header.Get("Retry-After"))
		}
		// Headers, at most one read buffer and net/http's post-handler
		// drain of 256 KiB: far from the 4 MiB body.
		if r := s.cl.read(p.local); r > 1<<20 {
			t.Errorf("server read %d bytes of a refused post of %d", r, size)
		}
	}
	grew := heap.growth()
	s.sink.release()
	for _, p := range posts {
		if p.answered(20 * time.Second) {
			continue
		}
		t.Fatal("a held post was never answered")
	}
	ok := 0
	for _, p := range posts {
		if status, _ := p.code(); status == http.StatusOK {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("%d posts sent, want the 2 held", ok)
	}
	// Each admitted message is held twice (as received, and prepared by
	// the pipeline): twice the budget, plus room for what the collector
	// has not taken back yet (received copies dropped once prepared).
	if limit := 2*budget.Limit() + 16<<20; grew > limit {
		t.Errorf("heap grew %s, want at most %s", mib(grew), mib(limit))
	}
	t.Logf("%d posts of %s, budget %s: heap grew %s", n, mib(size), mib(budget.Limit()), mib(grew))
	if used := budget.InUse(); used != 0 {
		t.Errorf("%d bytes of the budget still taken", used)
	}
}

// TestMemoryBudgetChunked: a chunked post (no Content-Length) takes the
// tenant's maximum message size, and is refused before its body when that
// does not fit; JSON takes room for its decoded and composed copies too.
func TestMemoryBudgetChunked(t *testing.T) {
	const max = 1 << 20
	ten := testTenant()
	ten.Limits.MaxMessageBytes = max
	budget, err := gateway.NewMemBudget(max + max/2)
	if err != nil {
		t.Fatal(err)
	}
	s := startLive(t, fakeAuth{testToken: ten}, Options{Budget: budget})
	small := rawBody(4 << 10)
	holder := post(t, s.addr, testToken, "message/rfc822", -1, small, true) // takes max until answered
	waitFor(t, "the first post at the sink", func() bool { return s.sink.entered.Load() == 1 })
	for _, tc := range []struct {
		name, ct string
		length   int64
	}{
		{"chunked raw", "message/rfc822", -1},
		{"raw over the rest", "message/rfc822", max/2 + 1},
		{"json", "application/json", max / 4},
	} {
		p := post(t, s.addr, testToken, tc.ct, tc.length, nil, false)
		if !p.answered(10 * time.Second) {
			t.Fatalf("%s: no answer before the body was sent", tc.name)
		}
		if status, code := p.code(); status != http.StatusServiceUnavailable || code != "server_busy" {
			t.Errorf("%s: %d %q, want 503 server_busy", tc.name, status, code)
		}
	}
	// What fits still goes through beside the holder.
	fits := post(t, s.addr, testToken, "message/rfc822", int64(len(small)), small, true)
	waitFor(t, "the fitting post at the sink", func() bool { return s.sink.entered.Load() == 2 })
	s.sink.release()
	for _, p := range []*rawPost{holder, fits} {
		if !p.answered(10 * time.Second) {
			t.Fatal("no answer")
		}
		if status, code := p.code(); status != http.StatusOK {
			t.Errorf("%d %q, want 200", status, code)
		}
	}
	waitFor(t, "the budget given back", func() bool { return budget.InUse() == 0 })
}

// TestTenantConcurrencyCap: a tenant with MaxRequestsPerTenant requests in
// flight gets 429 + Retry-After for one more, before its body is read;
// another tenant is not affected.
func TestTenantConcurrencyCap(t *testing.T) {
	other := &gateway.Tenant{ID: "t2", Identities: []string{"@example.com"}}
	s := startLive(t, fakeAuth{testToken: testTenant(), "sg_other_secret": other}, Options{MaxRequestsPerTenant: 2})
	msg := rawBody(1 << 10)
	held := []*rawPost{
		post(t, s.addr, testToken, "message/rfc822", int64(len(msg)), msg, true),
		post(t, s.addr, testToken, "message/rfc822", int64(len(msg)), msg, true),
	}
	waitFor(t, "two posts at the sink", func() bool { return s.sink.entered.Load() == 2 })
	p := post(t, s.addr, testToken, "message/rfc822", 30<<20, nil, false)
	if !p.answered(10 * time.Second) {
		t.Fatal("third request of the tenant: no answer before its body was sent")
	}
	status, code := p.code()
	if status != http.StatusTooManyRequests || code != "too_many_requests" || p.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %q Retry-After %q; want 429 too_many_requests with Retry-After", status, code, p.resp.Header.Get("Retry-After"))
	}
	held = append(held, post(t, s.addr, "sg_other_secret", "message/rfc822", int64(len(msg)), msg, true))
	waitFor(t, "the other tenant's post at the sink", func() bool { return s.sink.entered.Load() == 3 })
	s.sink.release()
	for _, p := range held {
		if !p.answered(10*time.Second) || p.resp == nil || p.resp.StatusCode != http.StatusOK {
			t.Fatalf("held post: %v %v", p.resp, p.err)
		}
	}
	// The slots are given back.
	for range 3 {
		if p := post(t, s.addr, testToken, "message/rfc822", int64(len(msg)), msg, true); !p.answered(10*time.Second) || p.resp.StatusCode != http.StatusOK {
			t.Fatalf("after the others finished: %v %v", p.resp, p.err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
