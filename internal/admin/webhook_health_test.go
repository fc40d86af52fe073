package admin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
	"github.com/sesgate/sesgate/limiter/webhook"
)

// hookStore is what the webhook health scenario needs of a store.
type hookStore interface {
	store.Store
	storeadmin.Store
	guard.Store
	webhook.Queue
	admin.Webhooks
	admin.WebhookHealthReader
}

// hookEnv is an admin API on st with app webhooks delivered by a real
// dispatcher: alpha's receiver answers 204, beta's 503.
type hookEnv struct {
	srv      *httptest.Server
	st       hookStore
	token    string
	hits     [2]atomic.Int64 // alpha's, beta's receiver
	good     string          // alpha's webhook URL
	bad      string          // beta's
	stopHook func()
}

func newHookEnv(t *testing.T, st hookStore) *hookEnv {
	t.Helper()
	e := &hookEnv{st: st}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.hits[0].Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.hits[1].Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(bad.Close)
	e.good, e.bad = good.URL+"/hooks", bad.URL+"/hooks"

	tenants := []*gateway.Tenant{{ID: "alpha"}, {ID: "beta"}, {ID: "gamma"}}
	g, err := guard.New(guard.Options{Store: st, Config: func(id string) (breaker.Config, bool) { return breaker.TenantDefaults(), true }})
	if err != nil {
		t.Fatal(err)
	}
	be, err := storeadmin.New(storeadmin.Options{Store: st, Breakers: g}, &storeadmin.Policy{Tenants: tenants})
	if err != nil {
		t.Fatal(err)
	}
	adm := auth.NewToken("ops")
	h, err := admin.New(admin.Options{
		Tokens: be.Tokens(), Tenants: be.Tenants(), Breakers: g, Suppressions: be.Suppressions(), Audit: be.Audit(),
		Webhooks:    st,
		AdminTokens: []admin.AdminToken{{KeyID: adm.Record.KeyID, Hash: adm.Record.Hash, Name: "ops"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.token = adm.Token

	keys, err := webhook.ParseSecrets(webhook.SecretPrefix + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	if err != nil {
		t.Fatal(err)
	}
	// Backoff of an hour: beta's event stays in the backlog after its
	// first failure.
	d, err := webhook.New(webhook.Options{Store: st, Poll: 20 * time.Millisecond, Backoff: time.Hour, MaxBackoff: time.Hour,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(url string) []webhook.Endpoint {
		return []webhook.Endpoint{{URL: url, Events: []string{webhook.EventBreakerOpened}, Keys: keys, AllowHTTP: true}}
	}
	d.SetEndpoints(map[string][]webhook.Endpoint{"alpha": ep(e.good), "beta": ep(e.bad)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	e.stopHook = func() { cancel(); <-done }
	t.Cleanup(e.stopHook)
	now := time.Now()
	d.BreakerChanged(ctx, "alpha", store.Open, "test", now.Add(time.Minute), now)
	d.BreakerChanged(ctx, "beta", store.Open, "test", now.Add(time.Minute), now)
	return e
}

// health reads GET /v1/webhooks/health (status 200 required).
func (e *hookEnv) health(t *testing.T, query string) map[string]admin.WebhookHealth {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/webhooks/health"+query, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep admin.WebhookHealthReport
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.WindowHours != 24 {
		t.Fatalf("window %d h", rep.WindowHours)
	}
	out := map[string]admin.WebhookHealth{}
	for _, h := range rep.Tenants {
		out[h.Tenant] = h
	}
	return out
}

// settle waits (generously) until alpha's event is delivered and beta's
// first attempt failed, as the API shows them.
func (e *hookEnv) settle(t *testing.T) map[string]admin.WebhookHealth {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h := e.health(t, "")
		if h["alpha"].Delivered == 1 && h["beta"].Failed == 1 {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkHookHealth(t *testing.T, e *hookEnv) {
	h := e.settle(t)
	a, b, g := h["alpha"], h["beta"], h["gamma"]
	if a.Health != admin.HealthOK || a.Backlog != 0 || a.Oldest != nil || a.Failed != 0 || a.DeadLetters != 0 ||
		len(a.Webhooks) != 1 || a.Webhooks[0].URL != e.good || a.Webhooks[0].Health != admin.HealthOK ||
		a.Webhooks[0].Delivered != 1 || a.Webhooks[0].LastDelivered == nil || a.Webhooks[0].LastError != "" {
		t.Errorf("alpha (working receiver): %+v", a)
	}
	if b.Health != admin.HealthFailing || b.Backlog != 1 || b.Oldest == nil || b.OldestAgeSeconds < 0 || b.OldestAgeSeconds > 60 ||
		b.Delivered != 0 || len(b.Webhooks) != 1 || b.Webhooks[0].URL != e.bad || b.Webhooks[0].Health != admin.HealthFailing ||
		b.Webhooks[0].Failed != 1 || b.Webhooks[0].LastError != "answered 503 Service Unavailable" || b.Webhooks[0].LastFailed == nil {
		t.Errorf("beta (failing receiver): %+v", b)
	}
	if g.Health != admin.HealthNone || g.Backlog != 0 || len(g.Webhooks) != 0 {
		t.Errorf("gamma (no webhooks): %+v", g)
	}
	if e.hits[0].Load() != 1 || e.hits[1].Load() != 1 {
		t.Errorf("receivers hit %d and %d times", e.hits[0].Load(), e.hits[1].Load())
	}
	one := e.health(t, "?tenant=beta")
	if len(one) != 1 || one["beta"].Backlog != 1 {
		t.Errorf("?tenant=beta: %+v", one)
	}
}

// TestWebhookHealthBolt: on the embedded store, a working receiver reads
// ok with one delivery; a failing one reads failing with its backlog, the
// oldest event's age and the receiver's answer as the last error; a
// tenant without webhooks reads none.
func TestWebhookHealthBolt(t *testing.T) {
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	checkHookHealth(t, newHookEnv(t, st))
}

// TestWebhookHealthRedis: the same on Redis.
func TestWebhookHealthRedis(t *testing.T) {
	srv := redistest.Start(t)
	c, err := redisstore.NewClient(redisstore.ConnOptions{URL: "redis://" + srv.Addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	checkHookHealth(t, newHookEnv(t, st))
}

// TestWebhookHealthUnknownTenant: an unknown or malformed tenant is refused.
func TestWebhookHealthUnknownTenant(t *testing.T) {
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newHookEnv(t, st)
	for q, want := range map[string]int{"?tenant=nobody": http.StatusNotFound, "?tenant=%7Bx%7D": http.StatusBadRequest} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/webhooks/health"+q, nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", q, resp.StatusCode, want)
		}
	}
}
