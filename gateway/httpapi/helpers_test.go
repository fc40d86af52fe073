package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// testToken is the token of testTenant in every test server.
const testToken = "sg_test_secret"

// fakeAuth maps tokens to tenants.
type fakeAuth map[string]*gateway.Tenant

func (a fakeAuth) Authenticate(_ context.Context, _, token string, _ netip.Addr) (*gateway.Tenant, error) {
	if t, ok := a[token]; ok {
		return t, nil
	}
	return nil, gateway.Errorf(gateway.CodeBadCredentials, "invalid token")
}

// recordingSink records envelopes; it can be told to fail or to block until
// the request's context ends (fault injection).
type recordingSink struct {
	mu      sync.Mutex
	envs    []gateway.Envelope
	fail    *gateway.Error
	block   bool
	discard bool // answer without recording (benchmarks)
	// digest records the SHA-256 of each message instead of a copy
	// (allocation counts).
	digest  bool
	digests [][32]byte
}

func (s *recordingSink) Send(ctx context.Context, env *gateway.Envelope) (string, error) {
	s.mu.Lock()
	fail, block, discard := s.fail, s.block, s.discard
	s.mu.Unlock()
	if discard {
		return "ses-" + env.ID, nil
	}
	if block {
		<-ctx.Done()
		return "", gateway.Wrap(gateway.CodeUpstreamUnavailable, ctx.Err(), "upstream timed out")
	}
	if fail != nil {
		return "", fail
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.digest {
		s.digests = append(s.digests, sha256.Sum256(env.Data))
		return "ses-" + env.ID, nil
	}
	e := *env
	e.Recipients = append([]string(nil), env.Recipients...)
	e.Data = append([]byte(nil), env.Data...)
	s.envs = append(s.envs, e)
	return "ses-" + env.ID, nil
}

func (s *recordingSink) setFail(e *gateway.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = e
}

func (s *recordingSink) sent() []gateway.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gateway.Envelope(nil), s.envs...)
}

// last returns the one envelope the sink received, failing otherwise.
func (s *recordingSink) only(t *testing.T) gateway.Envelope {
	t.Helper()
	envs := s.sent()
	if len(envs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(envs))
	}
	return envs[0]
}

// testServer is a Handler on a real socket with a recording sink.
type testServer struct {
	url   string
	sink  *recordingSink
	ready *bool
	mu    *sync.Mutex
}

type serverConfig struct {
	tenant        *gateway.Tenant
	maxBody       int64
	submitTimeout time.Duration
}

func testTenant() *gateway.Tenant {
	return &gateway.Tenant{ID: "t1", Identities: []string{"@example.com"}}
}

func newTestServer(t testing.TB, cfg serverConfig) *testServer {
	t.Helper()
	if cfg.tenant == nil {
		cfg.tenant = testTenant()
	}
	sink := &recordingSink{}
	log := slog.New(slog.DiscardHandler)
	p := gateway.NewPipeline(gateway.Options{
		Auth:   fakeAuth{testToken: cfg.tenant},
		Sink:   sink,
		Logger: log,
	})
	ready, mu := true, &sync.Mutex{}
	h := New(Options{
		Pipeline:      p,
		Logger:        log,
		MaxBodyBytes:  cfg.maxBody,
		SubmitTimeout: cfg.submitTimeout,
		Ready: func() bool {
			mu.Lock()
			defer mu.Unlock()
			return ready
		},
		Now: func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) },
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{url: srv.URL, sink: sink, ready: &ready, mu: mu}
}

func (s *testServer) setReady(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.ready = v
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// errCode returns error.code of an error answer.
func (a answer) errCode() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (a answer) errField(name string) string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

// do sends one request and decodes the JSON answer.
func do(t testing.TB, method, url, token, contentType string, body []byte, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON; body %q", ct, raw)
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, raw)
	}
	return a
}

// postJSON posts v (a string is sent verbatim) to /v1/messages.
func (s *testServer) postJSON(t testing.TB, v any) answer {
	t.Helper()
	body, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	return do(t, http.MethodPost, s.url+"/v1/messages", testToken, "application/json", []byte(body), nil)
}
