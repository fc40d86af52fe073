package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
)

// hookEvent is a delivery as the receiving app decodes it (its own type,
// not sesgate's).
type hookEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		Tenant       string `json:"tenant"`
		MessageID    string `json:"message_id"`
		SESMessageID string `json:"ses_message_id"`
		Recipients   []struct {
			Address        string `json:"address"`
			DiagnosticCode string `json:"diagnostic_code"`
		} `json:"recipients"`
		Bounce *struct {
			Type    string `json:"type"`
			SubType string `json:"subtype"`
		} `json:"bounce"`
	} `json:"data"`
}

// hookReceiver is the app's endpoint: it verifies every delivery with the
// Standard Webhooks reference library (not sesgate's signer) and answers
// 503 while down.
type hookReceiver struct {
	t     *testing.T
	wh    *standardwebhooks.Webhook
	srv   *httptest.Server
	mu    sync.Mutex
	down  bool
	seen  map[string]bool // webhook-id
	got   []hookEvent     // first delivery of each id, in arrival order
	dups  int             // deliveries of an id already seen (at least once allows them)
	fails int             // answered 503
	bad   int             // signature did not verify
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{t: t, wh: wh, seen: map[string]bool{}, down: true}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		r.fails++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	if r.seen[id] {
		r.dups++
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.t.Errorf("payload %s: %v", body, err)
	}
	r.seen[id] = true
	r.got = append(r.got, ev)
}

func (r *hookReceiver) setDown(v bool) { r.mu.Lock(); r.down = v; r.mu.Unlock() }

func (r *hookReceiver) snapshot() (got []hookEvent, fails, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got), r.fails, r.bad
}

// hookSecret writes a whsec_ secret file and returns the secret.
func hookSecret(t *testing.T, dir string) (string, string) {
	sec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a-test-signing-key-of-32-bytes!!"))
	path := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(path, []byte(sec+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return sec, path
}

// hookStack is sestest and the parts of a policy the webhook tests share.
type hookStack struct {
	ses      *sestest.Server
	sesURL   string
	token    string // tenant app's
	evil     string // tenant evil's
	admin    string
	policy   string // the YAML
	receiver *hookReceiver
}

func newHookStack(t *testing.T, dir, extraPolicy string, evilHooks string) *hookStack {
	t.Helper()
	ses, sesURL, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	pem, err := ses.SNSCertificatePEM()
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "sns.pem")
	if err := os.WriteFile(certPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SESGATE_SNS_TRUST_CERT", certPath)
	t.Setenv("AWS_ACCESS_KEY_ID", sestest.DefaultAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sestest.DefaultSecretAccessKey)
	t.Setenv("AWS_REGION", sestest.DefaultRegion)
	sec, secPath := hookSecret(t, dir)
	hs := &hookStack{ses: ses, sesURL: sesURL, receiver: newHookReceiver(t, sec)}
	app, evil, adm := auth.NewToken("app"), auth.NewToken("evil"), auth.NewToken("")
	hs.token, hs.evil, hs.admin = app.Token, evil.Token, adm.Token
	hs.policy = fmt.Sprintf(`ses: {endpoint: %q, region: us-east-1, max_send_rate: 1000}
events:
  sns: {topic_arns: [%s]}
  suppression_scope: tenant
admin_tokens:
  - {name: ops, key_id: %s, sha256: %s}
%s
tenants:
  - id: app
    tokens: [%s]
    identities: ["@app.example"]
    webhooks:
      - url: %s/hook
        events: [bounce, suppressed, delivery]
        secret_file: %s
        allow_http: true
        allow_networks: [127.0.0.0/8]
  - id: evil
    tokens: [%s]
    identities: ["@evil.example"]
    webhooks:
%s`, sesURL, sestest.DefaultTopicArn, adm.Record.KeyID, adm.Record.Hash, extraPolicy, app.Record.PolicyLine(),
		hs.receiver.srv.URL, secPath, evil.Record.PolicyLine(), strings.ReplaceAll(evilHooks, "SECRET", secPath))
	return hs
}

// startHookGateway writes the policy into dir and starts a gateway on it
// with the SES sink (startGateway).
func startHookGateway(t *testing.T, dir, policy string, flags ...string) (*Server, *Settings) {
	t.Helper()
	path := filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return startGateway(t, dir, path, append([]string{"--sink", "ses"}, flags...)...)
}

// restartGateway starts a gateway again on s (same addresses and data).
func restartGateway(t *testing.T, s *Settings) *Server {
	t.Helper()
	srv, err := Start(t.Context(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func stopGateway(t *testing.T, srv *Server) {
	t.Helper()
	if err := srv.shutdown(); err != nil {
		t.Fatal(err)
	}
	srv.close()
}

// sendMail sends one message over HTTP and returns sesgate's id and SES's.
func sendMail(t *testing.T, httpAddr, token, from string, to ...string) (string, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"from": from, "to": to, "subject": "receipt", "text": "hello"})
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/messages", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID        string `json:"id"`
		MessageID string `json:"message_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("send: %s %s", resp.Status, raw)
	}
	return out.ID, out.MessageID
}

func waitFor(t *testing.T, what string, limit time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDeliveries: every message's three events arrived, in order (bounce,
// suppressed, delivery), each naming its message and recipients.
func checkDeliveries(t *testing.T, r *hookReceiver, sent map[string]string) {
	t.Helper()
	got, fails, bad := r.snapshot()
	if bad != 0 {
		t.Fatalf("%d deliveries failed verification", bad)
	}
	order := map[string][]string{}
	for _, ev := range got {
		if ev.Data.Tenant != "app" || sent[ev.Data.MessageID] != ev.Data.SESMessageID {
			t.Fatalf("event %+v: unknown message or tenant", ev)
		}
		order[ev.Data.MessageID] = append(order[ev.Data.MessageID], ev.Type)
		switch ev.Type {
		case "bounce":
			if ev.Data.Bounce == nil || ev.Data.Bounce.Type != "Permanent" || len(ev.Data.Recipients) != 1 ||
				!strings.HasPrefix(ev.Data.Recipients[0].Address, "bounce") || ev.Data.Recipients[0].DiagnosticCode == "" {
				t.Fatalf("bounce %+v", ev.Data)
			}
		case "delivery":
			if len(ev.Data.Recipients) != 1 || !strings.HasPrefix(ev.Data.Recipients[0].Address, "ok") {
				t.Fatalf("delivery %+v", ev.Data)
			}
		}
	}
	for id := range sent {
		if want := []string{"bounce", "suppressed", "delivery"}; !slices.Equal(order[id], want) {
			t.Errorf("message %s: %v, want %v", id, order[id], want)
		}
	}
	if fails == 0 {
		t.Error("the receiver never refused a delivery: the test did not exercise retries")
	}
	t.Logf("%d events delivered after %d refused attempts", len(got), fails)
}

// TestWebhooksEmbeddedAcrossRestart: SES events from sestest reach the
// real SNS endpoint; the app's webhook receiver is down, so the events
// wait in the embedded store's queue; the gateway is restarted, the
// receiver comes up, and every event arrives once verified, each
// message's in order.
func TestWebhooksEmbeddedAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	hs := newHookStack(t, dir, "", "      - {url: \"https://hooks.evil.example/x\", events: [delivery], secret_file: SECRET}\n")
	flags := []string{"--webhook-backoff", "100ms", "--webhook-retry-for", "10m"}
	srv, s := startHookGateway(t, dir, hs.policy, flags...)
	if err := hs.ses.SetEvents(&sestest.EventOptions{URL: "http://" + s.HTTPAddr + DefaultSNSPath, Deliveries: true}); err != nil {
		t.Fatal(err)
	}
	const n = 5
	sent := map[string]string{}
	for i := range n {
		id, sesID := sendMail(t, s.HTTPAddr, hs.token, "shop@app.example", fmt.Sprintf("bounce%d@example.net", i), fmt.Sprintf("ok%d@example.net", i))
		sent[id] = sesID
	}
	waitFor(t, "the SNS notifications", 30*time.Second, func() bool { return hs.ses.EventStats().Published == 2*n })
	waitFor(t, "failed attempts", 30*time.Second, func() bool { _, fails, _ := hs.receiver.snapshot(); return fails >= 3*n })
	stopGateway(t, srv)

	hs.receiver.setDown(false)
	srv = restartGateway(t, s)
	defer srv.close()
	waitFor(t, "every event", 60*time.Second, func() bool { got, _, _ := hs.receiver.snapshot(); return len(got) >= 3*n })
	checkDeliveries(t, hs.receiver, sent)
}

// TestWebhooksRedisTwoReplicas: two replicas on one Redis take SNS
// notifications in turn; the receiver is down, then one replica stops and
// the receiver comes up: the other replica delivers every event, each
// message's in order.
func TestWebhooksRedisTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	t.Setenv("SESGATE_RECIPIENT_KEY", "0123456789abcdef0123456789abcdef")
	dirA, dirB := t.TempDir(), t.TempDir()
	hs := newHookStack(t, dirA, fmt.Sprintf("store: {redis: {url: \"redis://%s\"}}", rs.Addr),
		"      - {url: \"https://hooks.evil.example/x\", events: [delivery], secret_file: SECRET}\n")
	flags := []string{"--webhook-backoff", "100ms", "--webhook-retry-for", "10m"}
	a, sa := startHookGateway(t, dirA, hs.policy, flags...)
	b, sb := startHookGateway(t, dirB, hs.policy, flags...)
	defer b.close()
	var next atomic.Int64
	targets := []string{sa.HTTPAddr, sb.HTTPAddr}
	rr := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: "http", Host: targets[next.Add(1)%2]})
	}})
	defer rr.Close()
	if err := hs.ses.SetEvents(&sestest.EventOptions{URL: rr.URL + DefaultSNSPath, Deliveries: true}); err != nil {
		t.Fatal(err)
	}
	const n = 6
	sent := map[string]string{}
	for i := range n {
		addr := targets[i%2]
		id, sesID := sendMail(t, addr, hs.token, "shop@app.example", fmt.Sprintf("bounce%d@example.net", i), fmt.Sprintf("ok%d@example.net", i))
		sent[id] = sesID
	}
	waitFor(t, "the SNS notifications", 30*time.Second, func() bool { return hs.ses.EventStats().Published == 2*n })
	waitFor(t, "failed attempts", 30*time.Second, func() bool { _, fails, _ := hs.receiver.snapshot(); return fails >= 3*n })
	stopGateway(t, a)
	hs.receiver.setDown(false)
	waitFor(t, "every event", 60*time.Second, func() bool { got, _, _ := hs.receiver.snapshot(); return len(got) >= 3*n })
	checkDeliveries(t, hs.receiver, sent)
}

// TestWebhookTargetsRefused: webhooks whose URL is on loopback, the
// metadata address or a name resolving to loopback are never connected
// to (no policy allows those networks for them): their events go to the
// dead-letter list with the reason, which the admin API lists and
// replays. The app's receiver on 127.0.0.1 is reached only because its
// webhook allows 127.0.0.0/8.
func TestWebhookTargetsRefused(t *testing.T) {
	dir := t.TempDir()
	var probes atomic.Int64
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { probes.Add(1) }))
	defer trap.Close()
	_, port, _ := net.SplitHostPort(trap.Listener.Addr().String())
	hooks := fmt.Sprintf(`      - {url: "http://127.0.0.1:%[1]s/loopback", events: [delivery], secret_file: SECRET, allow_http: true}
      - {url: "http://169.254.169.254/latest/meta-data/", events: [delivery], secret_file: SECRET, allow_http: true}
      - {url: "http://localhost:%[1]s/by-name", events: [delivery], secret_file: SECRET, allow_http: true}
`, port)
	hs := newHookStack(t, dir, "", hooks)
	hs.receiver.setDown(false)
	srv, s := startHookGateway(t, dir, hs.policy, "--webhook-backoff", "100ms", "--webhook-retry-for", "1s")
	defer srv.close()
	if err := hs.ses.SetEvents(&sestest.EventOptions{URL: "http://" + s.HTTPAddr + DefaultSNSPath, Deliveries: true}); err != nil {
		t.Fatal(err)
	}
	sendMail(t, s.HTTPAddr, hs.evil, "x@evil.example", "ok@example.net")
	sendMail(t, s.HTTPAddr, hs.token, "shop@app.example", "ok@example.net")

	type dead struct {
		ID        string `json:"id"`
		URL       string `json:"url"`
		LastError string `json:"last_error"`
		Attempts  int    `json:"attempts"`
	}
	list := func() []dead {
		req, _ := http.NewRequest("GET", "http://"+s.AdminAddr+"/v1/webhooks/dead?tenant=evil", nil)
		req.Header.Set("Authorization", "Bearer "+hs.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Dead []dead }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("dead list: %s %v", resp.Status, err)
		}
		return out.Dead
	}
	waitFor(t, "three dead letters", 30*time.Second, func() bool { return len(list()) == 3 })
	for _, d := range list() {
		if !strings.Contains(d.LastError, "webhook target address not allowed") || d.Attempts < 1 {
			t.Errorf("%s: %q after %d attempts, want the address refused", d.URL, d.LastError, d.Attempts)
		}
	}
	waitFor(t, "the app's delivery", 30*time.Second, func() bool { got, _, _ := hs.receiver.snapshot(); return len(got) == 1 })

	// Replay: back in the queue, refused again, dead again.
	id := list()[0].ID
	req, _ := http.NewRequest("POST", "http://"+s.AdminAddr+"/v1/webhooks/dead/"+id+"/replay", nil)
	req.Header.Set("Authorization", "Bearer "+hs.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("replay: %s", resp.Status)
	}
	if l := list(); len(l) != 2 {
		t.Fatalf("after the replay %d dead letters, want 2", len(l))
	}
	waitFor(t, "the replayed event dead again", 30*time.Second, func() bool { return len(list()) == 3 })
	if n := probes.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests", n)
	}
}

func TestWebhookSettings(t *testing.T) {
	s, err := ParseSettings([]string{"--webhook-allow-networks", "10.1.0.0/16, 192.168.7.0/24", "--webhook-retry-for", "2h"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Webhook.AllowNetworks) != 2 || s.Webhook.AllowNetworks[1].String() != "192.168.7.0/24" || s.Webhook.RetryFor != 2*time.Hour ||
		s.Webhook.Timeout != 10*time.Second || s.Webhook.Concurrency != 4 {
		t.Fatalf("settings %+v", s.Webhook)
	}
	for args, want := range map[string]string{
		"--webhook-allow-networks=localhost": `invalid value "localhost" for flag -webhook-allow-networks: "localhost" is not a CIDR`,
		"--webhook-timeout=0s":               "--webhook-timeout must be above 0 and at most 5m",
		"--webhook-retry-for=200h":           "--webhook-retry-for must be above 0 and at most 168h",
		"--webhook-concurrency=0":            "--webhook-concurrency must be 1 to 64",
		"--webhook-max-backlog=0":            "--webhook-max-backlog must be 1 to 10000000",
		"--webhook-backoff=2h":               "--webhook-backoff must be above 0 and at most 1h",
	} {
		if _, err := ParseSettings([]string{args}, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
	t.Setenv("SESGATE_WEBHOOK_ALLOW_NETWORKS", "nope")
	if _, err := ParseSettings(nil, io.Discard); err == nil || !strings.Contains(err.Error(), `SESGATE_WEBHOOK_ALLOW_NETWORKS: "nope" is not a CIDR`) {
		t.Errorf("bad env: %v", err)
	}
}

// TestWebhooksOfAPITenant: a tenant created through the admin API, with a
// webhook in its entry, gets its events like a tenant of the file.
func TestWebhooksOfAPITenant(t *testing.T) {
	dir := t.TempDir()
	hs := newHookStack(t, dir, "", "      - {url: \"https://hooks.evil.example/x\", events: [delivery], secret_file: SECRET}\n")
	secPath := filepath.Join(dir, "hook.secret") // newHookStack's: the receiver verifies with it
	srv, s := startHookGateway(t, dir, hs.policy, "--webhook-backoff", "100ms")
	defer srv.close()
	hs.receiver.setDown(false)
	if err := hs.ses.SetEvents(&sestest.EventOptions{URL: "http://" + s.HTTPAddr + DefaultSNSPath, Deliveries: true}); err != nil {
		t.Fatal(err)
	}
	entry := fmt.Sprintf(`{"id": "signup", "identities": ["@signup.example"],
	  "webhooks": [{"url": %q, "events": ["delivery", "bounce"], "secret_file": %q, "allow_http": true, "allow_networks": ["127.0.0.0/8"]}]}`,
		hs.receiver.srv.URL+"/hook", secPath)
	created, err := adminClient(t, s, hs.admin).CreateTenant(t.Context(), []byte(entry), false, true)
	if err != nil {
		t.Fatal(err)
	}
	var id, sesID string
	waitFor(t, "the API tenant's token", 10*time.Second, func() bool {
		body, _ := json.Marshal(map[string]any{"from": "hi@signup.example", "to": []string{"bounce1@example.net", "ok1@example.net"}, "subject": "s", "text": "t"})
		req, _ := http.NewRequest("POST", "http://"+s.HTTPAddr+"/v1/messages", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+created.Token.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var out struct {
			ID        string `json:"id"`
			MessageID string `json:"message_id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		id, sesID = out.ID, out.MessageID
		return resp.StatusCode == http.StatusOK
	})
	waitFor(t, "the API tenant's webhook events", 30*time.Second, func() bool {
		got, _, _ := hs.receiver.snapshot()
		types := map[string]bool{}
		for _, ev := range got {
			if ev.Data.Tenant == "signup" && ev.Data.MessageID == id && ev.Data.SESMessageID == sesID {
				types[ev.Type] = true
			}
		}
		return types["bounce"] && types["delivery"]
	})
	if _, _, bad := hs.receiver.snapshot(); bad != 0 {
		t.Fatalf("%d deliveries failed verification", bad)
	}
}
