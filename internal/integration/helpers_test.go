package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/gateway/smtpd"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

var testKey = []byte("integration-test-recipient-key-0123")

// countingSink counts messages and recipients; it keeps the recipients.
type countingSink struct {
	msgs, rcpts atomic.Int64
	mu          sync.Mutex
	got         map[string]int // recipient -> times sent
}

func (s *countingSink) Send(_ context.Context, env *gateway.Envelope) (string, error) {
	n := s.msgs.Add(1)
	s.rcpts.Add(int64(len(env.Recipients)))
	s.mu.Lock()
	if s.got == nil {
		s.got = map[string]int{}
	}
	for _, r := range env.Recipients {
		s.got[r]++
	}
	s.mu.Unlock()
	return fmt.Sprintf("ses-%d", n), nil
}

func (s *countingSink) sent(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[addr]
}

// tenantSpec is a tenant with its token.
type tenantSpec struct {
	tenant *gateway.Tenant
	token  string
}

func newTenant(id string, l gateway.Limits) tenantSpec {
	m := auth.NewToken(id)
	return tenantSpec{tenant: &gateway.Tenant{ID: id, Identities: []string{"@sender.example"}, Limits: l}, token: m.Token}
}

func entries(ts ...tenantSpec) []auth.Entry {
	var out []auth.Entry
	for _, t := range ts {
		h := auth.HashToken(t.token)
		kid, _ := auth.KeyID(t.token)
		out = append(out, auth.Entry{Record: auth.Record{KeyID: kid, Hash: h, Tenant: t.tenant.ID}, Tenant: t.tenant})
	}
	return out
}

// replica is one gateway process: its own Redis client, store, limiter,
// pipeline, HTTP and SMTP servers.
type replica struct {
	store    *redisstore.Store
	lim      *limiter.Shared
	httpURL  string
	smtpAddr string
	calls    *atomic.Int64 // Redis commands sent by this replica's client
}

type replicaOptions struct {
	conn     redisstore.ConnOptions
	window   time.Duration
	replicas int
	timeout  time.Duration
}

// healthy is a replica for tests of the healthy-Redis promise (exact
// limits): a slow call on a loaded test machine must not count as an outage,
// and an outage, if one happened, refuses instead of admitting degraded.
func healthy(conn redisstore.ConnOptions) replicaOptions {
	return replicaOptions{conn: conn, timeout: 10 * time.Second, window: -1}
}

// countHook counts every command the client sends but the store's
// once-a-second poll of the global freeze flag (keys gw:{g}:frozen*), which
// no message causes.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(messageCmds(cmd))
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.n.Add(messageCmds(c))
		}
		return next(ctx, cmds)
	}
}

func messageCmds(c redis.Cmder) int64 {
	if k, ok := c.Args()[min(1, len(c.Args())-1)].(string); ok && strings.HasPrefix(k, "gw:{g}:frozen") && (c.Name() == "get" || c.Name() == "exists") {
		return 0
	}
	return 1
}

func startReplica(t testing.TB, o replicaOptions, sink gateway.Sink, es []auth.Entry) *replica {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := redisstore.Dial(context.Background(), o.conn, redisstore.Options{RecipientKey: testKey, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	calls := &atomic.Int64{}
	st.Client().AddHook(countHook{calls})
	t.Cleanup(func() { st.Close() })
	lim, err := limiter.NewShared(limiter.SharedOptions{Store: st, Logger: log, DegradedWindow: o.window, Replicas: o.replicas, CallTimeout: o.timeout})
	if err != nil {
		t.Fatal(err)
	}
	pipe := gateway.NewPipeline(gateway.Options{Auth: auth.NewRegistry(auth.RegistryOptions{Entries: es, Logger: log}), Limiter: lim, Sink: sink, Logger: log})

	httpURL, smtpAddr := serveFrontEnds(t, pipe, httpapi.New(httpapi.Options{Pipeline: pipe, Logger: log, Idempotency: st}), log)
	return &replica{store: st, lim: lim, httpURL: httpURL, smtpAddr: smtpAddr, calls: calls}
}

// httpAnswer is a decoded HTTP answer.
type httpAnswer struct {
	status     int
	retryAfter string
	body       struct {
		ID       string `json:"id"`
		Rejected []struct {
			Recipient, Code string
		} `json:"rejected"`
		Error struct {
			Code     string `json:"code"`
			Rejected []struct {
				Recipient, Code string
			} `json:"rejected"`
		} `json:"error"`
	}
}

func (a httpAnswer) code() string {
	if a.status == 200 {
		return "ok"
	}
	return a.body.Error.Code
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func sendHTTP(t testing.TB, url, token string, to []string) httpAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"from": "app@sender.example", "to": to, "subject": "s", "text": "hello"})
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Errorf("POST: %v", err)
		return httpAnswer{}
	}
	defer resp.Body.Close()
	var a httpAnswer
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Errorf("answer %d %q: %v", resp.StatusCode, raw, err)
	}
	return a
}

// smtpClient speaks SMTP line by line so tests see exact reply codes.
type smtpClient struct {
	t  testing.TB
	tp *textproto.Conn
}

func dialSMTP(t testing.TB, addr, tenant, token string) *smtpClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	s := &smtpClient{t: t, tp: textproto.NewConn(c)}
	t.Cleanup(func() { s.tp.Close() })
	s.expect(220, "")
	s.cmd(250, "EHLO client.test")
	s.cmd(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+tenant+"\x00"+token)))
	return s
}

// do sends a command and returns the reply code and text.
func (s *smtpClient) do(format string, args ...any) (int, string) {
	s.t.Helper()
	id, err := s.tp.Cmd(format, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.tp.StartResponse(id)
	defer s.tp.EndResponse(id)
	code, msg, err := s.tp.ReadResponse(0)
	if err != nil && code == 0 {
		s.t.Fatal(err)
	}
	return code, msg
}

func (s *smtpClient) expect(code int, _ string) {
	s.t.Helper()
	got, msg, err := s.tp.ReadResponse(code)
	if err != nil {
		s.t.Fatalf("want %d, got %d %s: %v", code, got, msg, err)
	}
}

func (s *smtpClient) cmd(code int, line string) string {
	s.t.Helper()
	got, msg := s.do("%s", line)
	if got != code {
		s.t.Fatalf("%s: got %d %s; want %d", line, got, msg, code)
	}
	return msg
}

// data sends DATA and a small message; returns the final reply.
func (s *smtpClient) data(to []string) (int, string) {
	s.t.Helper()
	s.cmd(354, "DATA")
	w := s.tp.DotWriter()
	fmt.Fprintf(w, "From: app@sender.example\r\nTo: %s\r\nSubject: t\r\n\r\nhello\r\n", strings.Join(to, ", "))
	w.Close()
	code, msg, err := s.tp.ReadResponse(0)
	if err != nil && code == 0 {
		s.t.Fatal(err)
	}
	return code, msg
}

// serveFrontEnds serves h over HTTP and pipe over SMTP on loopback ports,
// stopped at the end of the test; it returns the HTTP base URL and the SMTP
// address.
func serveFrontEnds(t testing.TB, pipe *gateway.Pipeline, h http.Handler, log *slog.Logger) (httpURL, smtpAddr string) {
	t.Helper()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpapi.NewServer(httpapi.ServerOptions{Handler: h, Logger: log})
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := smtpd.New(smtpd.Options{Pipeline: pipe, Logger: log, Domain: "gw.test"})
	if err != nil {
		t.Fatal(err)
	}
	go ss.Serve(sl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ss.Shutdown(ctx)
	})
	return "http://" + hl.Addr().String(), sl.Addr().String()
}

// background runs send(c, m) on clients goroutines, m counting each
// client's messages, until the returned stop is called; stop waits for them.
func background(clients int, send func(c, m int)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := 0; ; m++ {
				select {
				case <-done:
					return
				default:
				}
				send(c, m)
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
