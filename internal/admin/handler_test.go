package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env serves the admin API over the real backend: storeadmin and the
// breakers' guard on the embedded store, on a test clock.
type env struct {
	srv     *httptest.Server
	st      *boltstore.Store
	be      *storeadmin.Backend
	guard   *guard.Guard
	tenants []*gateway.Tenant
	clock   *clock
	token   string // admin token
	kid     string // its key id
	log     *syncBuffer
}

func newEnv(t *testing.T, mod func(*admin.Options)) *env {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)}
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123"), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tenants := []*gateway.Tenant{
		{ID: "alpha", Limits: gateway.Limits{Rate: 10, PerHour: 1000, PerDay: 10000, FirstContactPerHour: 50}},
		{ID: "beta"},
		{ID: "gamma"},
	}
	g, err := guard.New(guard.Options{Store: st, Now: c.Now, Config: func(id string) (breaker.Config, bool) {
		return breaker.TenantDefaults(), slices.ContainsFunc(tenants, func(t *gateway.Tenant) bool { return t.ID == id })
	}})
	if err != nil {
		t.Fatal(err)
	}
	be, err := storeadmin.New(storeadmin.Options{Store: st, Breakers: g, Now: c.Now}, &storeadmin.Policy{Tenants: tenants})
	if err != nil {
		t.Fatal(err)
	}
	adm := auth.NewToken("ops")
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "sesgate_test_total", Help: "test"}))
	opts := admin.Options{
		Tokens: be.Tokens(), Tenants: be.Tenants(), Breakers: g, Suppressions: be.Suppressions(), Audit: be.Audit(),
		TenantEntries: be.TenantEntries(),
		AdminTokens:   []admin.AdminToken{{KeyID: adm.Record.KeyID, Hash: adm.Record.Hash, Name: "ops"}},
		Metrics:       reg,
		Logger:        slog.New(slog.NewJSONHandler(logs, nil)),
		Now:           c.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	h, err := admin.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{srv: srv, st: st, be: be, guard: g, tenants: tenants, clock: c, token: adm.Token, kid: adm.Record.KeyID, log: logs}
}

// authenticate returns the tenant of a sending token when the gateway
// would accept it now, and records its use, as the gateway does.
func (e *env) authenticate(t *testing.T, tok string) (string, bool) {
	t.Helper()
	ctx := context.Background()
	entries, err := e.be.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ten, err := auth.NewRegistry(auth.RegistryOptions{Entries: entries, Now: e.clock.Now}).Authenticate(ctx, "", tok, netip.Addr{})
	if err != nil {
		return "", false
	}
	kid, _ := auth.KeyID(tok)
	must(t, e.st.TouchTokens(ctx, map[string]time.Time{kid: e.clock.Now().UTC()}))
	return ten.ID, true
}

// frozen reports whether tenant id may not send: its switch or the global one.
func (e *env) frozen(t *testing.T, id string) bool {
	t.Helper()
	ctx := context.Background()
	all, err := e.st.Frozen(ctx, admin.GlobalTenant)
	must(t, err)
	one, err := e.st.Frozen(ctx, id)
	must(t, err)
	return all || one
}

// send admits mail to rcpts for tenant at the given time, with the tenant's
// quotas but not its rate (a minute's mail goes at one instant): messages
// of up to 50 recipients, a new one where a recipient repeats.
func (e *env) send(t *testing.T, tenant string, at time.Time, rcpts ...string) {
	t.Helper()
	now := e.clock.Now()
	e.clock.Set(at)
	defer e.clock.Set(now)
	var l gateway.Limits
	for _, ten := range e.tenants {
		if ten.ID == tenant {
			l = ten.Limits
		}
	}
	l.Rate = 0
	var msg []string
	admit := func() {
		d, err := e.st.Admit(context.Background(), store.AdmitRequest{Tenant: tenant, Recipients: msg, Limits: l})
		if err != nil || !d.Admitted {
			t.Fatalf("admit %v for %s: %+v %v", msg, tenant, d, err)
		}
		msg = nil
	}
	for _, r := range rcpts {
		if len(msg) == 50 || slices.Contains(msg, r) {
			admit()
		}
		msg = append(msg, r)
	}
	if len(msg) > 0 {
		admit()
	}
}

// feedback gives the guard, now, hard bounces and complaints of mail
// tenant sent at mailed.
func (e *env) feedback(t *testing.T, tenant string, mailed time.Time, bounces, complaints int) {
	t.Helper()
	ev := func(typ feedback.EventType, n int) *feedback.Event {
		x := &feedback.Event{Type: typ, Tenant: tenant, MailTime: mailed, EventTime: e.clock.Now(), BounceType: feedback.BouncePermanent}
		for i := range n {
			x.Recipients = append(x.Recipients, feedback.Recipient{Address: fmt.Sprintf("%s%d@feedback.example", typ, i)})
		}
		return x
	}
	for _, x := range []*feedback.Event{ev(feedback.TypeBounce, bounces), ev(feedback.TypeComplaint, complaints)} {
		if len(x.Recipients) > 0 {
			must(t, e.guard.ProcessEvent(context.Background(), x))
		}
	}
}

// addrs returns n addresses.
func addrs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@example.net", prefix, i)
	}
	return out
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decoding %s: %v", a.body, err)
	}
}

// errCode returns the API error code of the answer.
func (a answer) errCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	a.json(t, &e)
	return e.Error.Code
}

// do sends a request with token (none when ""); body is sent as is.
func (e *env) do(t *testing.T, method, path, token, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func (e *env) call(t *testing.T, method, path, body string) answer {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.do(t, method, path, e.token, ct, body)
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	// a real sending token of tenant alpha
	var m admin.Minted
	a := e.call(t, "POST", "/v1/tokens", `{"tenant":"alpha"}`)
	if a.status != 201 {
		t.Fatalf("mint: %d %s", a.status, a.body)
	}
	a.json(t, &m)
	if tenant, ok := e.authenticate(t, m.Token); !ok || tenant != "alpha" {
		t.Fatalf("minted token does not authenticate: %q %v", tenant, ok)
	}
	tests := []struct {
		name, method, path, auth string
		status                   int
		code                     string
	}{
		{"no token", "GET", "/v1/tenants", "", 401, "unauthorized"},
		{"wrong token", "GET", "/v1/tenants", "Bearer " + auth.NewToken("ops").Token, 401, "unauthorized"},
		{"sending token", "GET", "/v1/tenants", "Bearer " + m.Token, 401, "unauthorized"},
		{"basic scheme", "GET", "/v1/tenants", "Basic " + e.token, 401, "unauthorized"},
		{"garbage", "GET", "/v1/tenants", "Bearer x", 401, "unauthorized"},
		{"unknown route unauthenticated", "GET", "/v1/nothing", "", 401, "unauthorized"},
		{"wrong method unauthenticated", "PUT", "/v1/tenants", "", 401, "unauthorized"},
		{"action unauthenticated", "POST", "/v1/tenants/beta/freeze", "", 401, "unauthorized"},
		{"metrics unauthenticated", "GET", "/metrics", "", 401, "unauthorized"},
		{"ok", "GET", "/v1/tenants", "Bearer " + e.token, 200, ""},
		{"scheme case-insensitive", "GET", "/v1/tenants", "bearer " + e.token, 200, ""},
		{"unknown route", "GET", "/v1/nothing", "Bearer " + e.token, 404, "not_found"},
		{"wrong method", "PUT", "/v1/tenants", "Bearer " + e.token, 405, "method_not_allowed"},
		{"metrics", "GET", "/metrics", "Bearer " + e.token, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Add(time.Hour) // refill the failure budget
			req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			a := answer{resp.StatusCode, resp.Header, b}
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, b)
			}
			if tc.code != "" {
				if got := a.errCode(t); got != tc.code {
					t.Fatalf("code %q, want %q", got, tc.code)
				}
				if ct := a.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
			}
			if tc.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if got := e.frozen(t, "beta"); got {
		t.Fatal("an unauthenticated freeze changed the backend")
	}
	if a := e.call(t, "GET", "/metrics", ""); !strings.Contains(string(a.body), "sesgate_test_total 0") {
		t.Fatalf("metrics body: %s", a.body)
	}
}

func TestAuthThrottle(t *testing.T) {
	e := newEnv(t, func(o *admin.Options) { o.FailureBurst = 2 })
	bad := auth.NewToken("x").Token
	for i, want := range []int{401, 401, 429} {
		if a := e.do(t, "GET", "/v1/tenants", bad, "", ""); a.status != want {
			t.Fatalf("attempt %d: %d, want %d", i, a.status, want)
		}
	}
	a := e.do(t, "GET", "/v1/tenants", auth.NewToken("y").Token, "", "")
	if a.status != 429 || a.errCode(t) != "auth_throttled" || a.header.Get("Retry-After") != "10" {
		t.Fatalf("another unknown token while throttled: %d %s Retry-After %q", a.status, a.body, a.header.Get("Retry-After"))
	}
	// The source's budget never refuses a known key id (package auth): the
	// admin's correct token still works from the throttled source.
	if a := e.do(t, "GET", "/v1/tenants", e.token, "", ""); a.status != 200 {
		t.Fatalf("good token while the source is throttled: %d %s", a.status, a.body)
	}
	e.clock.Add(11 * time.Second)
	if a := e.do(t, "GET", "/v1/tenants", bad, "", ""); a.status != 401 {
		t.Fatalf("after refill: %d", a.status)
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	var m admin.Minted
	a := e.call(t, "POST", "/v1/tokens", `{"tenant":"beta"}`)
	if a.status != 201 {
		t.Fatalf("mint: %d %s", a.status, a.body)
	}
	a.json(t, &m)
	if kid, _ := auth.KeyID(m.Token); kid != m.KeyID || m.Tenant != "beta" || !m.Created.Equal(e.clock.Now()) {
		t.Fatalf("minted %+v", m)
	}
	e.authenticate(t, m.Token) // marks it used

	var list struct{ Tokens []admin.TokenInfo }
	e.call(t, "GET", "/v1/tokens?tenant=beta", "").json(t, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].KeyID != m.KeyID || list.Tokens[0].LastUsed.IsZero() {
		t.Fatalf("list: %+v", list)
	}
	if strings.Contains(e.log.String(), m.Token) {
		t.Fatal("the log holds a token")
	}

	refused := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"mint unknown tenant", "POST", "/v1/tokens", `{"tenant":"nobody"}`, 404, "not_found"},
		{"mint bad tenant id", "POST", "/v1/tokens", `{"tenant":"Bad Id"}`, 400, "invalid"},
		{"mint unknown field", "POST", "/v1/tokens", `{"tenant":"beta","admin":true}`, 400, "malformed"},
		{"mint no body", "POST", "/v1/tokens", ``, 400, "invalid"},
		{"mint two values", "POST", "/v1/tokens", `{"tenant":"beta"}{}`, 400, "malformed"},
		{"revoke unknown", "POST", "/v1/tokens/" + auth.NewToken("x").Record.KeyID + "/revoke", ``, 404, "not_found"},
		{"revoke malformed key id", "POST", "/v1/tokens/nope/revoke", ``, 400, "invalid"},
		{"rotate bad grace", "POST", "/v1/tokens/" + m.KeyID + "/rotate", `{"grace":"forever"}`, 400, "invalid"},
		{"rotate grace too long", "POST", "/v1/tokens/" + m.KeyID + "/rotate", `{"grace":"200h"}`, 400, "invalid"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			a := e.call(t, tc.method, tc.path, tc.body)
			if a.status != tc.status || a.errCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
		})
	}

	// rotate: the new token works at once, the old one until the deadline
	var r admin.Minted
	a = e.call(t, "POST", "/v1/tokens/"+m.KeyID+"/rotate", `{"grace":"30m"}`)
	if a.status != 201 {
		t.Fatalf("rotate: %d %s", a.status, a.body)
	}
	a.json(t, &r)
	if r.Old == nil || r.Old.KeyID != m.KeyID || !r.Old.ExpiresAt.Equal(e.clock.Now().Add(30*time.Minute)) {
		t.Fatalf("rotate answer %+v", r)
	}
	for _, tok := range []string{r.Token, m.Token} {
		if _, ok := e.authenticate(t, tok); !ok {
			t.Fatal("a token is refused within the grace period")
		}
	}
	e.clock.Add(31 * time.Minute)
	if _, ok := e.authenticate(t, m.Token); ok {
		t.Fatal("the old token works after its deadline")
	}
	if a := e.call(t, "POST", "/v1/tokens/"+m.KeyID+"/rotate", ``); a.status != 409 {
		t.Fatalf("rotating an expired token: %d", a.status)
	}

	// revoke
	if a := e.call(t, "POST", "/v1/tokens/"+r.KeyID+"/revoke", ``); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if _, ok := e.authenticate(t, r.Token); ok {
		t.Fatal("a revoked token works")
	}
	if a := e.call(t, "POST", "/v1/tokens/"+r.KeyID+"/revoke", ``); a.status != 409 || a.errCode(t) != "conflict" {
		t.Fatalf("second revoke: %d %s", a.status, a.body)
	}
}

func TestFreeze(t *testing.T) {
	e := newEnv(t, func(o *admin.Options) { o.MaxBodyBytes = 1024 })
	tests := []struct {
		name, method, path, ct, body string
		status                       int
		code                         string
		frozen                       map[string]bool // backend state afterwards
	}{
		{"unknown tenant", "POST", "/v1/tenants/nobody/freeze", "application/json", `{"reason":"x"}`, 404, "not_found", map[string]bool{"alpha": false, "beta": false}},
		{"bad tenant id", "POST", "/v1/tenants/BAD!/freeze", "", ``, 400, "invalid", map[string]bool{"alpha": false}},
		{"unknown field", "POST", "/v1/tenants/beta/freeze", "application/json", `{"reason":"x","why":1}`, 400, "malformed", map[string]bool{"beta": false}},
		{"malformed json", "POST", "/v1/tenants/beta/freeze", "application/json", `{"reason":`, 400, "malformed", map[string]bool{"beta": false}},
		{"too large", "POST", "/v1/tenants/beta/freeze", "application/json", `{"reason":"` + strings.Repeat("x", 2000) + `"}`, 413, "too_large", map[string]bool{"beta": false}},
		{"wrong content type", "POST", "/v1/tenants/beta/freeze", "text/plain", `{}`, 415, "unsupported_media_type", map[string]bool{"beta": false}},
		{"control chars in reason", "POST", "/v1/tenants/beta/freeze", "application/json", `{"reason":"a\nb"}`, 400, "invalid", map[string]bool{"beta": false}},
		{"freeze", "POST", "/v1/tenants/beta/freeze", "application/json", `{"reason":"token leaked"}`, 200, "", map[string]bool{"alpha": false, "beta": true}},
		{"freeze again is idempotent", "POST", "/v1/tenants/beta/freeze", "", ``, 200, "", map[string]bool{"beta": true}},
		{"unfreeze takes no reason", "POST", "/v1/tenants/beta/unfreeze", "application/json", `{"reason":"x"}`, 400, "invalid", map[string]bool{"beta": true}},
		{"unfreeze", "POST", "/v1/tenants/beta/unfreeze", "", ``, 200, "", map[string]bool{"beta": false}},
		{"freeze all", "POST", "/v1/freeze", "application/json", `{"reason":"incident"}`, 200, "", map[string]bool{"alpha": true, "beta": true, "gamma": true}},
		{"unfreeze all", "POST", "/v1/unfreeze", "", ``, 200, "", map[string]bool{"alpha": false, "gamma": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(t, tc.method, tc.path, e.token, tc.ct, tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.code != "" && a.errCode(t) != tc.code {
				t.Fatalf("code %q, want %q", a.errCode(t), tc.code)
			}
			for id, want := range tc.frozen {
				if got := e.frozen(t, id); got != want {
					t.Fatalf("%s frozen = %v, want %v", id, got, want)
				}
			}
		})
	}
	var st admin.TenantStatus
	e.call(t, "POST", "/v1/tenants/alpha/freeze", `{"reason":"r1"}`)
	e.call(t, "GET", "/v1/tenants/alpha", "").json(t, &st)
	if !st.Freeze.Frozen || st.Freeze.Reason != "r1" || st.Freeze.By != e.kid || st.Limits.PerHour != 1000 {
		t.Fatalf("status %+v", st)
	}
	if a := e.call(t, "GET", "/v1/tenants/nobody", ""); a.status != 404 {
		t.Fatalf("status of unknown tenant: %d", a.status)
	}
}

func TestStatusAndSeries(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clock.Now()
	known := addrs("known", 7)
	e.send(t, "alpha", now.Add(-50*time.Minute), known...) // 09:40: last hour, not this clock hour
	// 10:28: 100 recipients, 20 of them first contacts; 3 hard bounces and a complaint.
	e.send(t, "alpha", now.Add(-2*time.Minute), append(addrs("new", 20), slices.Repeat(known, 12)[:80]...)...)
	e.feedback(t, "alpha", now.Add(-2*time.Minute), 3, 1)
	// 10:30: 50 recipients, 5 first contacts.
	e.send(t, "alpha", now, append(addrs("newer", 5), slices.Repeat(known, 7)[:45]...)...)
	must(t, e.guard.Evaluate(context.Background(), "alpha")) // the guard's periodic feed of the sent counters

	var st admin.TenantStatus
	e.call(t, "GET", "/v1/tenants/alpha", "").json(t, &st)
	want := admin.Usage{Hour: 150, Day: 157, FirstContactLeftHour: 25, FirstContactLeftDay: -1}
	if st.Usage != want {
		t.Fatalf("usage %+v, want %+v", st.Usage, want)
	}
	if st.Rates.BounceRate != 3.0/157 || st.Breaker != store.Closed {
		t.Fatalf("status %+v", st)
	}

	var s struct {
		Tenant string
		Points []admin.Point
	}
	e.call(t, "GET", "/v1/tenants/alpha/series", "").json(t, &s)
	if len(s.Points) != 60 || !s.Points[59].At.Equal(now) || s.Points[59].Sent != 50 || s.Points[57].Bounces != 3 || s.Points[0].Sent != 0 {
		t.Fatalf("series: %d points, last %+v, [57] %+v", len(s.Points), s.Points[59], s.Points[57])
	}
	if a := e.call(t, "GET", "/v1/tenants/nobody/series", ""); a.status != 404 {
		t.Fatalf("series of unknown tenant: %d", a.status)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// trip trips tenant's breaker: 100 recipients sent a minute ago, 10 of
// them bounced now.
func (e *env) trip(t *testing.T, tenant string) {
	t.Helper()
	at := e.clock.Now().Add(-time.Minute)
	e.send(t, tenant, at, addrs("trip", 100)...)
	e.feedback(t, tenant, at, 10, 0)
	if st, err := e.guard.Status(context.Background(), tenant); err != nil || st.State != store.Open {
		t.Fatalf("%s did not trip: %+v %v", tenant, st, err)
	}
}

func TestBreakers(t *testing.T) {
	e := newEnv(t, nil)
	e.trip(t, "gamma")
	tests := []struct {
		name, method, path, body string
		status                   int
		state                    store.BreakerState // of gamma afterwards
		trips                    int
	}{
		{"status", "GET", "/v1/breakers/gamma", "", 200, "open", 1},
		{"reset", "POST", "/v1/breakers/gamma/reset", "", 200, "closed", 1},
		{"force open", "POST", "/v1/breakers/gamma/force-open", `{"reason":"drill"}`, 200, "forced_open", 2},
		{"force open unknown", "POST", "/v1/breakers/nobody/force-open", `{}`, 404, "forced_open", 2},
		{"reset unknown field", "POST", "/v1/breakers/gamma/reset", `{"x":1}`, 400, "forced_open", 2},
		{"reset again", "POST", "/v1/breakers/gamma/reset", "", 200, "closed", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := e.call(t, tc.method, tc.path, tc.body); a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			var b admin.BreakerStatus
			e.call(t, "GET", "/v1/breakers/gamma", "").json(t, &b)
			if b.State != tc.state || len(b.Trips) != tc.trips {
				t.Fatalf("breaker %+v; want %s with %d trips", b, tc.state, tc.trips)
			}
		})
	}
	var all struct{ Breakers []admin.BreakerStatus }
	e.call(t, "GET", "/v1/breakers", "").json(t, &all)
	if len(all.Breakers) != 3 || all.Breakers[2].Tenant != "gamma" || all.Breakers[2].Trips[0].Reason != "drill" {
		t.Fatalf("all breakers: %+v", all)
	}
}

func TestSuppressions(t *testing.T) {
	e := newEnv(t, nil)
	adds := []struct {
		name, body string
		status     int
	}{
		{"global", `{"address":"A@Example.COM"}`, 201},
		{"tenant", `{"address":"b@example.com","tenant":"alpha","reason":"complaint"}`, 201},
		{"tenant 2", `{"address":"c@example.com","tenant":"alpha","reason":"hard-bounce"}`, 201},
		{"other", `{"address":"bob@other.org","tenant":"beta"}`, 201},
		{"bad address", `{"address":"not-an-address"}`, 400},
		{"bad reason", `{"address":"x@example.com","reason":"spite"}`, 400},
		{"unknown tenant", `{"address":"x@example.com","tenant":"nobody"}`, 404},
		{"expires before added", `{"address":"x@example.com","expires":"2001-01-01T00:00:00Z"}`, 400},
		{"unknown field", `{"address":"x@example.com","note":"hi"}`, 400},
	}
	for _, tc := range adds {
		t.Run("add "+tc.name, func(t *testing.T) {
			if a := e.call(t, "POST", "/v1/suppressions", tc.body); a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
		})
	}
	type page struct {
		Suppressions []admin.Suppression
		NextCursor   string `json:"next_cursor"`
	}
	lists := []struct {
		name, query string
		want        []string // tenant/address
	}{
		{"all", "", []string{"/a@example.com", "alpha/b@example.com", "alpha/c@example.com", "beta/bob@other.org"}},
		{"global", "?tenant=", []string{"/a@example.com"}},
		{"alpha", "?tenant=alpha", []string{"alpha/b@example.com", "alpha/c@example.com"}},
		{"prefix", "?prefix=B", []string{"alpha/b@example.com", "beta/bob@other.org"}},
		{"prefix in tenant", "?tenant=beta&prefix=b", []string{"beta/bob@other.org"}},
	}
	for _, tc := range lists {
		t.Run("list "+tc.name, func(t *testing.T) {
			var p page
			e.call(t, "GET", "/v1/suppressions"+tc.query, "").json(t, &p)
			var got []string
			for _, s := range p.Suppressions {
				got = append(got, s.Tenant+"/"+s.Address)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") || p.NextCursor != "" {
				t.Fatalf("got %v (next %q), want %v", got, p.NextCursor, tc.want)
			}
		})
	}
	// paging
	var seen []string
	cursor := ""
	for i := 0; i < 5; i++ {
		var p page
		e.call(t, "GET", "/v1/suppressions?limit=3&cursor="+cursor, "").json(t, &p)
		for _, s := range p.Suppressions {
			seen = append(seen, s.Address)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 4 || seen[3] != "bob@other.org" {
		t.Fatalf("paged: %v", seen)
	}
	if a := e.call(t, "GET", "/v1/suppressions?limit=5000", ""); a.status != 400 {
		t.Fatalf("limit 5000: %d", a.status)
	}
	// remove
	if a := e.call(t, "DELETE", "/v1/suppressions?tenant=alpha&address=B@example.com", ""); a.status != 200 {
		t.Fatalf("remove: %d %s", a.status, a.body)
	}
	if a := e.call(t, "DELETE", "/v1/suppressions?tenant=alpha&address=b@example.com", ""); a.status != 404 {
		t.Fatalf("remove again: %d %s", a.status, a.body)
	}
	if a := e.call(t, "DELETE", "/v1/suppressions?address=bob@other.org", ""); a.status != 404 {
		t.Fatalf("remove from the wrong list: %d %s", a.status, a.body)
	}
}

func TestImportExport(t *testing.T) {
	csvBody := strings.Join([]string{
		"address,tenant,reason,added,expires", // 1 header
		"one@example.com",                     // 2 ok, global, manual
		"not-an-address,alpha",                // 3 broken
		"two@example.com,alpha,complaint",     // 4 ok
		`"broken@example.com,alpha`,           // 5 broken quote (runs to EOF)
	}, "\n") + "\n"
	tests := []struct {
		name, mode, body string
		status           int
		lines            []int
		imported         int
		stored           int // suppressions afterwards
	}{
		{"all with broken lines", "all", csvBody, 400, []int{3, 5}, 0, 0},
		{"default mode is all", "", csvBody, 400, []int{3, 5}, 0, 0},
		{"bad mode", "some", csvBody, 400, nil, 0, 0},
		{"unknown tenant", "valid", "x@example.com,nobody\n", 200, []int{1}, 0, 0},
		{"too many fields", "valid", "x@example.com,,manual,,,extra\n", 200, []int{1}, 0, 0},
		{"bad time", "valid", "x@example.com,,manual,yesterday\n", 200, []int{1}, 0, 0},
		{"valid lines only", "valid", csvBody, 200, []int{3, 5}, 2, 2},
		{"clean file", "all", "# a comment\nthree@example.com,beta,hard-bounce,2026-01-02T03:04:05Z,2027-01-01T00:00:00Z\n\n", 200, nil, 1, 3},
	}
	e := newEnv(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(t, "POST", "/v1/suppressions/import?mode="+tc.mode, e.token, "text/csv", tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			var lines []admin.LineError
			if a.status == 200 {
				var r admin.ImportResult
				a.json(t, &r)
				if r.Imported != tc.imported || r.Rejected != len(tc.lines) {
					t.Fatalf("result %+v", r)
				}
				lines = r.Lines
			} else {
				var er struct {
					Error struct {
						Code  string
						Lines []admin.LineError
					}
				}
				a.json(t, &er)
				lines = er.Error.Lines
			}
			var got []int
			for _, l := range lines {
				got = append(got, l.Line)
			}
			if !slices.Equal(got, tc.lines) {
				t.Fatalf("broken lines %v, want %v (%s)", got, tc.lines, a.body)
			}
			var p struct{ Suppressions []admin.Suppression }
			e.call(t, "GET", "/v1/suppressions", "").json(t, &p)
			if len(p.Suppressions) != tc.stored {
				t.Fatalf("%d stored, want %d", len(p.Suppressions), tc.stored)
			}
		})
	}

	a := e.call(t, "GET", "/v1/suppressions/export", "")
	want := "address,tenant,reason,added,expires\n" +
		"one@example.com,,manual,2026-11-29T10:30:00Z,\n" +
		"two@example.com,alpha,complaint,2026-11-29T10:30:00Z,\n" +
		"three@example.com,beta,hard-bounce,2026-01-02T03:04:05Z,2027-01-01T00:00:00Z\n"
	if a.status != 200 || string(a.body) != want || !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export %d %q\n%s\nwant\n%s", a.status, a.header.Get("Content-Type"), a.body, want)
	}
	// an export imports back unchanged
	e2 := newEnv(t, nil)
	if b := e2.do(t, "POST", "/v1/suppressions/import", e2.token, "text/csv", string(a.body)); b.status != 200 {
		t.Fatalf("re-import: %d %s", b.status, b.body)
	}
	if b := e2.call(t, "GET", "/v1/suppressions/export", ""); string(b.body) != want {
		t.Fatalf("round trip:\n%s", b.body)
	}
}

func TestImportBounds(t *testing.T) {
	e := newEnv(t, func(o *admin.Options) { o.MaxImportLines = 3; o.MaxImportBytes = 200 })
	tests := []struct {
		name, body string
		status     int
	}{
		{"too many lines", "a@example.com\nb@example.com\nc@example.com\nd@example.com\n", 413},
		{"too many bytes", strings.Repeat("#", 300) + "\n", 413},
		{"within bounds", "a@example.com\nb@example.com\n", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := e.do(t, "POST", "/v1/suppressions/import", e.token, "text/csv", tc.body); a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
		})
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t, nil)
	var m admin.Minted
	e.call(t, "POST", "/v1/tokens", `{"tenant":"alpha"}`).json(t, &m)
	e.call(t, "POST", "/v1/tenants/nobody/freeze", `{"reason":"typo"}`)
	e.call(t, "POST", "/v1/tenants/beta/freeze", `{"reason":"leak"}`)
	e.do(t, "POST", "/v1/suppressions/import", e.token, "text/csv", "bad\n")
	e.call(t, "GET", "/v1/tenants", "")         // reads are not audited
	e.do(t, "POST", "/v1/unfreeze", "", "", "") // unauthenticated: refused before any action

	var l struct{ Entries []admin.AuditEntry }
	e.call(t, "GET", "/v1/audit?limit=10", "").json(t, &l)
	want := []struct{ action, target, result string }{
		{"suppression.import", "mode=all", "error"},
		{"tenant.freeze", "beta", "ok"},
		{"tenant.freeze", "nobody", "error"},
		{"token.mint", "alpha", "ok"},
	}
	if len(l.Entries) != len(want) {
		t.Fatalf("%d entries: %+v", len(l.Entries), l.Entries)
	}
	for i, w := range want {
		g := l.Entries[i]
		if g.Action != w.action || g.Target != w.target || g.Result != w.result || g.Who != e.kid || g.RequestID == "" || g.Source != "127.0.0.1" {
			t.Fatalf("entry %d: %+v, want %+v", i, g, w)
		}
	}
	if d := l.Entries[2].Detail; !strings.HasPrefix(d, "not_found:") {
		t.Fatalf("detail of the refused freeze: %q", d)
	}
	logs := e.log.String()
	if strings.Count(logs, `"msg":"admin action"`) != 4 || strings.Contains(logs, m.Token) || strings.Contains(logs, e.token) {
		t.Fatalf("log lines:\n%s", logs)
	}
	if a := e.call(t, "GET", "/v1/audit?limit=0", ""); a.status != 400 {
		t.Fatalf("limit 0: %d", a.status)
	}
}

func TestDashboardHeaders(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, path string
		status     int
		ctype      string
		contains   string
	}{
		{"root redirects", "/", 302, "", ""},
		{"page", "/dashboard/", 200, "text/html; charset=utf-8", `<script src="app.js?v=`},
		{"script", "/dashboard/app.js", 200, "text/javascript; charset=utf-8", "sessionStorage"},
		{"style", "/dashboard/app.css", 200, "text/css; charset=utf-8", "svg.spark"},
		{"no listing", "/dashboard/assets/", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(t, "GET", tc.path, "", "", "")
			if a.status != tc.status {
				t.Fatalf("status %d, want %d", a.status, tc.status)
			}
			if tc.ctype != "" && a.header.Get("Content-Type") != tc.ctype {
				t.Fatalf("Content-Type %q", a.header.Get("Content-Type"))
			}
			if !strings.Contains(string(a.body), tc.contains) {
				t.Fatalf("body lacks %q", tc.contains)
			}
			csp := a.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
				strings.Contains(csp, "unsafe") || a.header.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("headers CSP %q XFO %q", csp, a.header.Get("X-Frame-Options"))
			}
		})
	}
}
