package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/auth"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// floodServer is a gateway started in the process with a policy file, the
// embedded store, the outbox, and its log in a buffer (JSON, info level,
// as in production).
type floodServer struct {
	srv     *Server
	s       *Settings
	logs    *syncBuffer
	admin   string            // admin token
	tokens  map[string]string // tenant -> token
	started time.Time
	stopped time.Time
}

// startFloodServer starts a gateway whose policy has the tenants named in
// tenants (id -> the YAML lines after "identities", indented 4).
func startFloodServer(t *testing.T, tenants map[string]string) *floodServer {
	t.Helper()
	f := &floodServer{logs: &syncBuffer{}, tokens: map[string]string{}}
	adm := auth.NewToken("")
	f.admin = adm.Token
	p := fmt.Sprintf("admin_tokens:\n  - {name: ops, key_id: %s, sha256: %s}\ntenants:\n", adm.Record.KeyID, adm.Record.Hash)
	for id, rest := range tenants {
		m := auth.NewToken(id)
		f.tokens[id] = m.Token
		p += fmt.Sprintf("  - id: %s\n    tokens:\n      - %s\n    identities: [\"@%s.example.com\"]\n%s", id, m.Record.PolicyLine(), id, rest)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(path, []byte(p), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ParseSettings([]string{"--data-dir", dir, "--sink", "outbox", "--config", path,
		"--smtp-addr", freeAddr(t), "--http-addr", freeAddr(t), "--admin-addr", freeAddr(t), "--reload-poll", "0"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f.started = time.Now()
	f.srv, err = Start(t.Context(), Options{Settings: s, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.srv.close() })
	return f
}

// metrics returns the /metrics text of the admin listener.
func (f *floodServer) metrics(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+f.s.AdminAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+f.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s %s", resp.Status, b)
	}
	return string(b)
}

// adminPost makes one admin API call.
func (f *floodServer) adminPost(t *testing.T, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+f.s.AdminAddr+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+f.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// refused returns sesgate_messages_refused_total{reason, tenant}, 0 when absent.
func refused(text, tenant, reason string) int {
	return int(seriesValue(text, fmt.Sprintf(`sesgate_messages_refused_total{reason=%q,tenant=%q}`, reason, tenant)))
}

func seriesValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// stop drains the gateway (the throttled log writes what it still holds)
// and returns its log lines.
func (f *floodServer) stop(t *testing.T) []map[string]any {
	t.Helper()
	if err := f.srv.shutdown(); err != nil {
		t.Fatal(err)
	}
	f.stopped = time.Now()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(f.logs.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line not JSON: %v: %s", err, sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

// logTally is what the log says about one kind of line (msg and code).
type logTally struct{ lines, suppressed int }

// tally groups the lines by msg and code ("outcome" for accepted audit
// lines), summing their "suppressed" counts.
func tally(lines []map[string]any) map[string]*logTally {
	out := map[string]*logTally{}
	for _, l := range lines {
		k := fmt.Sprint(l["msg"], "/", l["code"])
		if l["outcome"] == "sent" {
			k = fmt.Sprint(l["msg"], "/sent/", l["tenant"])
		}
		if out[k] == nil {
			out[k] = &logTally{}
		}
		out[k].lines++
		if n, ok := l["suppressed"].(float64); ok {
			out[k].suppressed += int(n)
		}
	}
	return out
}

// lineBound is the most lines one throttle key may write over d: the burst,
// one per second, and the tail written at shutdown.
func lineBound(d time.Duration) int { return 3 + int(d/time.Second) + 1 + 1 }

// sourceClient is an HTTP client whose connections come from the loopback
// address src (the failed-auth throttle is per source).
func sourceClient(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
}

// flood posts n JSON messages with token from src over workers
// connections, and counts the answers by error code ("ok" for 200).
func flood(t *testing.T, addr, src, token, from string, n, workers int) map[string]int {
	t.Helper()
	c := sourceClient(src)
	body := []byte(`{"from":"` + from + `","to":["a@example.org"],"subject":"x","text":"x"}`)
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/messages", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var out struct {
					Error struct{ Code string } `json:"error"`
				}
				json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				code := out.Error.Code
				if resp.StatusCode == 200 {
					code = "ok"
				}
				mu.Lock()
				counts[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts
}

// TestRefusalFloodHTTP floods the real HTTP front end with 20,000 requests
// with a bad token and 20,000 with a valid token over its rate: the log
// holds a bounded number of lines per kind of refusal, whose suppressed
// counts and lines add up to the refusals; the refused metric counts every
// refusal once, the accepted messages each have their audit line.
func TestRefusalFloodHTTP(t *testing.T) {
	const n = 20000
	f := startFloodServer(t, map[string]string{"flood": "    limits: {rate: 1, burst: 1}\n"})
	bad := "sg_aaaaaaaaaa_" + strings.Repeat("a", 39)
	valid := flood(t, f.s.HTTPAddr, "127.0.0.2", f.tokens["flood"], "app@flood.example.com", n, 8)
	badc := flood(t, f.s.HTTPAddr, "127.0.0.1", bad, "app@flood.example.com", n, 8)
	t.Logf("valid token over its limit: %v; bad token: %v", valid, badc)
	text := f.metrics(t)
	lines := f.stop(t)
	raw := f.logs.Bytes()
	took := f.stopped.Sub(f.started)
	t.Logf("log: %d lines, %d bytes for %d requests in %v", len(lines), len(raw), 2*n, took.Round(time.Millisecond))
	tl := tally(lines)
	for k, v := range tl {
		t.Logf("  %-40s %6d lines, %6d suppressed", k, v.lines, v.suppressed)
	}

	if valid["ok"]+valid["rate_limited"] != n || badc["bad_credentials"]+badc["auth_throttled"] != n {
		t.Fatalf("unexpected answers: valid %v, bad %v", valid, badc)
	}
	// The refused metric counts every refusal once, the accepted one every
	// message sent.
	for _, c := range []struct {
		tenant, reason string
		want           int
	}{
		{"flood", "rate_limited", valid["rate_limited"]},
		{"unauthenticated", "bad_credentials", badc["bad_credentials"]},
		{"unauthenticated", "auth_throttled", badc["auth_throttled"]},
	} {
		if got := refused(text, c.tenant, c.reason); got != c.want {
			t.Errorf("sesgate_messages_refused_total{tenant=%q,reason=%q} = %d, want %d (the refusals)", c.tenant, c.reason, got, c.want)
		}
	}
	if got := int(seriesValue(text, `sesgate_messages_accepted_total{tenant="flood"}`)); got != valid["ok"] {
		t.Errorf("accepted metric %d, want %d", got, valid["ok"])
	}
	// Every accepted message has its audit line.
	if s := tl["message/sent/flood"]; s == nil || s.lines != valid["ok"] || s.suppressed != 0 {
		t.Errorf("audit lines of accepted messages: %+v, want %d lines", s, valid["ok"])
	}
	// Each kind of refusal line: bounded, and lines + suppressed = refusals.
	bound := lineBound(took)
	for _, c := range []struct {
		key  string
		want int
	}{
		{"http error/rate_limited", valid["rate_limited"]},
		{"http error/bad_credentials", badc["bad_credentials"]},
		{"http error/auth_throttled", badc["auth_throttled"]},
	} {
		got := tl[c.key]
		if got == nil {
			t.Errorf("no %s line", c.key)
			continue
		}
		if got.lines > bound {
			t.Errorf("%s: %d lines, want at most %d (3 + 1/s over %v + the tail)", c.key, got.lines, bound, took)
		}
		if got.lines+got.suppressed != c.want {
			t.Errorf("%s: %d lines + %d suppressed, want %d refusals", c.key, got.lines, got.suppressed, c.want)
		}
	}
	// All lines: the accepted messages' audit lines, four refusal keys
	// (three "http error", one refused audit line), the registry's
	// "auth throttled" (once per 6 s) and a few start and stop lines.
	if max := valid["ok"] + 4*bound + int(took/(6*time.Second)) + 1 + 20; len(lines) > max {
		t.Errorf("%d log lines for %d requests, want at most %d", len(lines), 2*n, max)
	}
}

// smtpClient is one authenticated SMTP session from 127.0.0.3.
func smtpClient(t *testing.T, addr, user, token string) *smtp.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(nc)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", user, token)); err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	return c
}

// expectSMTP fails unless err is an SMTP reply with code.
func expectSMTP(t *testing.T, err error, code int, what string) {
	t.Helper()
	se, ok := err.(*smtp.SMTPError)
	if !ok || se.Code != code {
		t.Fatalf("%s: %v, want %d", what, err, code)
	}
}

// TestRefusalFloodSMTP refuses SMTP commands over and over at MAIL (frozen
// tenant), RCPT (recipient domain not allowed, suppressed recipient) and
// DATA (too large, From header not an identity), with accepted messages in
// between: every refusal is counted once in sesgate_messages_refused_total,
// the log lines per kind are bounded and add up with their suppressed
// counts, and every accepted message has its audit line.
func TestRefusalFloodSMTP(t *testing.T) {
	const rounds = 400
	f := startFloodServer(t, map[string]string{
		"frozen": "    frozen: true\n",
		"scoped": "    recipient_domains: [example.org]\n    limits: {max_message_size: 2KB}\n",
	})
	f.adminPost(t, "/v1/suppressions", map[string]string{"tenant": "scoped", "address": "gone@example.org", "reason": "manual"})

	frozen := smtpClient(t, f.s.SMTPAddr, "frozen", f.tokens["frozen"])
	for range rounds {
		expectSMTP(t, frozen.Mail("app@frozen.example.com", nil), 451, "MAIL of a frozen tenant")
	}
	c := smtpClient(t, f.s.SMTPAddr, "scoped", f.tokens["scoped"])
	const from = "app@scoped.example.com"
	big := "From: " + from + "\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 100)
	sent, tooLarge, badFrom := 0, 0, 0
	for i := range rounds {
		if err := c.Mail(from, nil); err != nil {
			t.Fatal(err)
		}
		expectSMTP(t, c.Rcpt("x@elsewhere.net", nil), 550, "RCPT to a domain not allowed")
		expectSMTP(t, c.Rcpt("gone@example.org", nil), 550, "RCPT to a suppressed address")
		if err := c.Rcpt("ok@example.org", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 0:
			io.WriteString(w, "From: "+from+"\r\n\r\nhello\r\n")
			if err := w.Close(); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			sent++
		case 1:
			io.WriteString(w, "From: ceo@elsewhere.net\r\n\r\nhello\r\n")
			expectSMTP(t, w.Close(), 550, "From header not an identity")
			badFrom++
		default:
			io.WriteString(w, big)
			expectSMTP(t, w.Close(), 552, "message over max_message_size")
			tooLarge++
		}
	}
	text := f.metrics(t)
	lines := f.stop(t)
	raw := f.logs.Bytes()
	took := f.stopped.Sub(f.started)
	t.Logf("log: %d lines, %d bytes for %d refusals and %d messages sent in %v", len(lines), len(raw), rounds*3+tooLarge+badFrom, sent, took.Round(time.Millisecond))
	tl := tally(lines)
	for k, v := range tl {
		t.Logf("  %-40s %6d lines, %6d suppressed", k, v.lines, v.suppressed)
	}

	for _, c := range []struct {
		tenant, reason string
		want           int
	}{
		{"frozen", "tenant_frozen", rounds},
		{"scoped", "recipient_not_allowed", rounds},
		{"scoped", "recipient_suppressed", rounds},
		{"scoped", "message_too_large", tooLarge},
		{"scoped", "sender_not_allowed", badFrom},
	} {
		if got := refused(text, c.tenant, c.reason); got != c.want {
			t.Errorf("sesgate_messages_refused_total{tenant=%q,reason=%q} = %d, want %d (the refusals)", c.tenant, c.reason, got, c.want)
		}
	}
	if got := int(seriesValue(text, `sesgate_messages_accepted_total{tenant="scoped"}`)); got != sent {
		t.Errorf("accepted metric %d, want %d", got, sent)
	}
	if s := tl["message/sent/scoped"]; s == nil || s.lines != sent || s.suppressed != 0 {
		t.Errorf("audit lines of accepted messages: %+v, want %d lines", s, sent)
	}
	bound := lineBound(took)
	for _, c := range []struct {
		key  string
		want int
	}{
		{"smtp refused/tenant_frozen", rounds},
		{"smtp refused/recipient_not_allowed", rounds},
		{"smtp refused/recipient_suppressed", rounds},
		{"smtp refused/message_too_large", tooLarge},
		{"smtp refused/sender_not_allowed", badFrom},
	} {
		got := tl[c.key]
		if got == nil {
			t.Errorf("no %s line", c.key)
			continue
		}
		if got.lines > bound {
			t.Errorf("%s: %d lines, want at most %d", c.key, got.lines, bound)
		}
		if got.lines+got.suppressed != c.want {
			t.Errorf("%s: %d lines + %d suppressed, want %d refusals", c.key, got.lines, got.suppressed, c.want)
		}
	}
}
