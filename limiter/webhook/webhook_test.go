package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

func secret(b byte) string {
	return SecretPrefix + base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune('a'+b)), 32)))
}

// TestSignVerifiesWithStandardWebhooks: a signature made by Sign verifies
// with the Standard Webhooks reference library, with each secret of a
// rotation; a changed body or another secret does not.
func TestSignVerifiesWithStandardWebhooks(t *testing.T) {
	old, cur := secret(0), secret(1)
	keys, err := ParseSecrets(old + "\n" + cur + "\n")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"bounce"}`)
	now := time.Now()
	h := http.Header{}
	h.Set(HeaderID, "evt_1")
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, Sign(keys, "evt_1", now, body))
	if n := len(strings.Fields(h.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures, want one per secret", n)
	}
	for _, s := range []string{old, cur} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Fatalf("secret %s: %v", s[:10], err)
		}
		if err := wh.Verify([]byte(`{"type":"delivery"}`), h); err == nil {
			t.Fatal("a changed body verified")
		}
	}
	wh, _ := standardwebhooks.NewWebhook(secret(2))
	if err := wh.Verify(body, h); err == nil {
		t.Fatal("another secret verified")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestParseSecrets(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "no secret (want whsec_ followed by base64)"},
		{"abc", "secret 1 does not start with whsec_"},
		{"whsec_!!", "secret 1: not base64 after whsec_"},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), "secret 1 has 5 bytes, want 24 to 64"},
		{strings.Repeat(secret(0)+" ", 5), "5 secrets, want at most 4"},
	} {
		if _, err := ParseSecrets(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestClientRefusesForbiddenTargets: loopback, metadata and a name that
// resolves to them are refused at dial time; an allowed network is
// reached; a redirect is not followed.
func TestClientRefusesForbiddenTargets(t *testing.T) {
	var hits sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		io.WriteString(w, strings.Repeat("x", 1<<20))
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "rebind.example":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "metadata.example":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		case "v6meta.example":
			return []netip.Addr{netip.MustParseAddr("fd00:ec2::254")}, nil
		}
		return nil, errors.New("no such host")
	}
	closed := NewClient(ClientOptions{Timeout: 5 * time.Second, Lookup: lookup})
	for _, u := range []string{srv.URL + "/direct", "http://rebind.example" + port + "/rebind", "http://metadata.example/meta",
		"http://169.254.169.254/latest/meta-data/", "http://v6meta.example/", "http://[::1]" + port + "/v6", "http://[::ffff:127.0.0.1]" + port + "/mapped"} {
		resp, err := closed.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: reached (%s)", u, resp.Status)
		} else if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: %v, want ErrForbiddenAddress", u, err)
		}
	}
	hits.Range(func(k, _ any) bool { t.Errorf("the server saw %s", k); return true })

	open := NewClient(ClientOptions{Timeout: 5 * time.Second, Lookup: lookup, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	resp, err := open.Get("http://rebind.example" + port + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("redirect: %s, want the 302 itself", resp.Status)
	}
	if _, followed := hits.Load("/elsewhere"); followed {
		t.Fatal("redirect followed")
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url   string
		http  bool
		error string
	}{
		{"https://hooks.example/x", false, ""},
		{"http://hooks.example/x", false, "must be https (or allow_http: true)"},
		{"http://hooks.example/x", true, ""},
		{"ftp://hooks.example/x", true, "must be an https URL"},
		{"https://user:pw@hooks.example/x", false, "must not carry user info"},
		{"/relative", false, "not an absolute URL with a host"},
	} {
		_, err := CheckURL(tc.url, tc.http)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.error {
				t.Errorf("%s: %q, want %q", tc.url, got, tc.error)
			}
		} else if tc.error != "" {
			t.Errorf("%s: accepted, want %q", tc.url, tc.error)
		}
	}
}

// receiver records verified deliveries, failing while down.
type receiver struct {
	t    *testing.T
	wh   *standardwebhooks.Webhook
	mu   sync.Mutex
	down bool
	got  []Payload
	ids  map[string]int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("signature: %v", err)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Error(err)
	}
	r.ids[req.Header.Get(HeaderID)]++
	r.got = append(r.got, p)
}

func (r *receiver) setDown(v bool) { r.mu.Lock(); r.down = v; r.mu.Unlock() }

func (r *receiver) payloads() []Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Payload(nil), r.got...)
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDispatcherRetriesInOrderThenDeadLetters: on the embedded store, a
// receiver that is down gets every event once it is up, each message's
// events in order; a webhook that never answers dead-letters its events
// after RetryFor.
func TestDispatcherRetriesInOrderThenDeadLetters(t *testing.T) {
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sec := secret(3)
	keys, _ := ParseSecrets(sec)
	wh, _ := standardwebhooks.NewWebhook(sec)
	rcv := &receiver{t: t, wh: wh, ids: map[string]int{}, down: true}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	d, err := New(Options{Store: st, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Poll: 20 * time.Millisecond, RetryFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParsePrefix("127.0.0.0/8")
	d.SetEndpoints(map[string][]Endpoint{
		"acme": {{URL: srv.URL, Events: EventTypes(), Keys: keys, AllowHTTP: true, Allow: []netip.Prefix{loop}}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for m := range 3 {
		for i, typ := range []feedback.EventType{feedback.TypeSend, feedback.TypeBounce, feedback.TypeDelivery} {
			ev := &feedback.Event{Type: typ, Tenant: "acme", GatewayID: "g" + itoa(int64(m)), SESMessageID: "s" + itoa(int64(m)),
				EventTime: at.Add(time.Duration(i) * time.Second), Recipients: []feedback.Recipient{{Address: "a@example.com"}},
				BounceType: "Transient"}
			d.Event(context.Background(), ev)
		}
	}
	time.Sleep(200 * time.Millisecond) // several failed attempts
	if len(rcv.payloads()) != 0 {
		t.Fatal("delivered while down")
	}
	rcv.setDown(false)
	waitFor(t, "9 deliveries", func() bool { return len(rcv.payloads()) >= 9 })
	last := map[string]time.Time{}
	for _, p := range rcv.payloads() {
		if prev, ok := last[p.Data.MessageID]; ok && !p.Timestamp.After(prev) {
			t.Fatalf("message %s: %s at %v after %v", p.Data.MessageID, p.Type, p.Timestamp, prev)
		}
		last[p.Data.MessageID] = p.Timestamp
	}
	for id, n := range rcv.ids {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}

	// A webhook that never answers 2xx: dead-lettered after RetryFor.
	d.o.RetryFor = 150 * time.Millisecond
	rcv.setDown(true)
	d.Event(context.Background(), &feedback.Event{Type: feedback.TypeDelivery, Tenant: "acme", GatewayID: "gx", EventTime: at,
		Recipients: []feedback.Recipient{{Address: "a@example.com"}}})
	waitFor(t, "a dead letter", func() bool {
		l, _ := st.ListDeadWebhooks(context.Background(), "acme", 10)
		return len(l) == 1 && strings.Contains(l[0].LastError, "503")
	})
	if s, _ := st.WebhookStats(context.Background(), []string{"acme"}); s["acme"].Backlog != 0 {
		t.Fatalf("backlog %+v", s)
	}
}

// TestEnqueueNeverFailsTheIntake: with the store gone, queueing an event
// returns at once, and the loss is counted.
func TestEnqueueNeverFailsTheIntake(t *testing.T) {
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err := New(Options{Store: st, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := ParseSecrets(secret(4))
	d.SetEndpoints(map[string][]Endpoint{"acme": {{URL: "https://hooks.example/x", Events: []string{EventDelivery}, Keys: keys}}})
	st.Close()
	start := time.Now()
	d.Event(context.Background(), &feedback.Event{Type: feedback.TypeDelivery, Tenant: "acme", GatewayID: "g1", EventTime: start})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("enqueue took %v", took)
	}
	var m dto.Metric
	if err := d.m.enqueueFailed.WithLabelValues("store_error").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Fatalf("store_error counted %v, want 1", n)
	}
}

// TestRefusedByBreakerOncePerMinute: refusals by an open breaker reach the
// webhook as one refused_by_breaker per tenant per RefusedEvery.
func TestRefusedByBreakerOncePerMinute(t *testing.T) {
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sec := secret(5)
	keys, _ := ParseSecrets(sec)
	wh, _ := standardwebhooks.NewWebhook(sec)
	rcv := &receiver{t: t, wh: wh, ids: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	now := time.Now()
	var mu sync.Mutex
	d, err := New(Options{Store: st, Poll: 20 * time.Millisecond, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	d.SetEndpoints(map[string][]Endpoint{"acme": {{URL: srv.URL, Events: []string{EventRefusedByBreaker}, Keys: keys, AllowHTTP: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for range 100 {
		d.RefusedByBreaker("acme")
		d.RefusedByBreaker("unknown") // no webhooks: nothing
	}
	waitFor(t, "one refused_by_breaker", func() bool { return len(rcv.payloads()) == 1 })
	mu.Lock()
	now = now.Add(RefusedEvery)
	mu.Unlock()
	d.RefusedByBreaker("acme")
	waitFor(t, "a second one a minute later", func() bool { return len(rcv.payloads()) == 2 })
	time.Sleep(200 * time.Millisecond)
	if p := rcv.payloads(); len(p) != 2 || p[0].Type != EventRefusedByBreaker || p[0].Data.Tenant != "acme" {
		t.Fatalf("payloads %+v", p)
	}
}
