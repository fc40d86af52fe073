package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/redistest"
)

// mintPolicyTokens returns a tenant token and its policy line, and an admin
// token and its policy line, minted by `sesgate token new`.
func mintPolicyTokens(t *testing.T) (tok, tokLine, adminTok, adminLine string) {
	t.Helper()
	tokRE := regexp.MustCompile(`(sg_\S+)`)
	out := runCLI(t, nil, "token", "new", "--tenant", "billing")
	m, l := tokRE.FindStringSubmatch(out), regexp.MustCompile(`- (\{key_id: .*\})`).FindStringSubmatch(out)
	if m == nil || l == nil {
		t.Fatalf("token new: %s", out)
	}
	aout := runCLI(t, nil, "token", "new", "--admin", "--name", "oncall")
	am, al := tokRE.FindStringSubmatch(aout), regexp.MustCompile(`- (\{name: oncall, key_id: .*\})`).FindStringSubmatch(aout)
	if am == nil || al == nil {
		t.Fatalf("token new --admin: %s", aout)
	}
	return m[1], l[1], am[1], al[1]
}

func writePolicy(t *testing.T, path, tokLine, adminLine, limits string) {
	t.Helper()
	p := "admin_tokens:\n  - " + adminLine + "\n" +
		"tenants:\n  - id: billing\n    tokens:\n      - " + tokLine + "\n" +
		"    identities: [\"@billing.example.com\"]\n    limits: " + limits + "\n" +
		"  - id: other\n    identities: [\"@other.example.com\"]\n"
	if err := os.WriteFile(path, []byte(p), 0o600); err != nil {
		t.Fatal(err)
	}
}

// adminCall makes one admin API call and decodes the JSON answer.
func adminCall(t *testing.T, addr, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	} else {
		out = map[string]any{"text": string(raw)}
	}
	return resp.StatusCode, out
}

// within polls f every 20 ms until it is true or d passed, and returns how
// long it took (or fails).
func within(t *testing.T, d time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if f() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue returns the value of one exposition line (name with labels)
// or -1 when absent.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestOperateTwoReplicas runs two gateways on one real Redis: a token minted
// with `sesgate admin` works on the other replica, a revocation is refused
// there within a second; a freeze through the admin API refuses on both
// within a second (HTTP 503, SMTP 451 4.7.1), an unfreeze lets mail flow
// again within a second; admin calls without, with a wrong, or with a
// sending token are 401; /metrics counts accepted and refused messages.
func TestOperateTwoReplicas(t *testing.T) {
	srv := redistest.Start(t)
	tok, tokLine, adminTok, adminLine := mintPolicyTokens(t)
	path := filepath.Join(t.TempDir(), "policy.yml")
	writePolicy(t, path, tokLine, adminLine, "{rate: 1000, burst: 1000}")
	env := append(baseEnv(t), "SESGATE_REDIS_URL=redis://"+srv.Addr, "SESGATE_RECIPIENT_KEY=0123456789abcdef0123456789abcdef")
	g1 := startGateway(t, env, "--config", path, "--sink", "outbox", "--log-level", "debug")
	g2 := startGateway(t, env, "--config", path, "--sink", "outbox")
	if g1.adminAddr == "" || g2.adminAddr == "" {
		t.Fatalf("no admin listener in the banner:\n%s", g1.logs())
	}
	const from = "app@billing.example.com"
	msg := map[string]any{"from": from, "to": []string{"a@example.org"}, "subject": "x", "text": "x"}
	send := func(g *gatewayProc, token string) sendResult { return postJSON(t, g.httpAddr, token, msg) }

	// Admin authentication.
	sendingTok := tok
	for _, tc := range []struct{ name, token string }{
		{"no token", ""}, {"wrong token", "sg_aaaaaaaaaa_" + strings.Repeat("a", 39)}, {"sending token", sendingTok},
	} {
		// Three failures per replica: under the admin failure throttle (5).
		for _, c := range []struct {
			g    *gatewayProc
			path string
		}{{g1, "/v1/tenants"}, {g2, "/metrics"}} {
			if st, _ := adminCall(t, c.g.adminAddr, tc.token, "GET", c.path, nil); st != 401 {
				t.Fatalf("%s on %s: status %d, want 401", tc.name, c.path, st)
			}
		}
	}
	// The admin API is not on the sending listener.
	if st, _ := adminCall(t, g1.httpAddr, adminTok, "GET", "/v1/tenants", nil); st == 200 {
		t.Fatal("admin API answered on the sending listener")
	}

	// Mint with the CLI on replica 1, send on replica 2.
	cliEnv := []string{"SESGATE_ADMIN_ADDR=" + g1.adminAddr, "SESGATE_ADMIN_TOKEN=" + adminTok}
	mintOut := runCLI(t, cliEnv, "admin", "tokens", "mint", "--tenant", "billing")
	kid := regexp.MustCompile(`(?m)^(sg_([a-z2-7]{10})_[a-z2-7]+)$`).FindStringSubmatch(mintOut)
	if kid == nil {
		t.Fatalf("tokens mint printed %q", mintOut)
	}
	minted := kid[1]
	kid = kid[1:]
	within(t, time.Second, "minted token accepted on replica 2", func() bool { return send(g2, minted).status == 200 })
	if r := send(g1, minted); r.status != 200 {
		t.Fatalf("minted token on replica 1: %d %v", r.status, r.body)
	}
	if out := runCLI(t, cliEnv, "admin", "tokens", "revoke", kid[1]); !strings.Contains(out, "revoked "+kid[1]) {
		t.Fatalf("revoke: %s", out)
	}
	took := within(t, time.Second, "revoked token refused on replica 2", func() bool {
		r := send(g2, minted)
		return r.status == 401 && errCode(r) == "bad_credentials"
	})
	t.Logf("revocation seen on replica 2 after %v", took)
	if r := send(g1, minted); r.status != 401 {
		t.Fatalf("revoked token on replica 1: %d", r.status)
	}
	if r := send(g2, tok); r.status != 200 {
		t.Fatalf("policy token after the revocation of another: %d %v", r.status, r.body)
	}

	// Rotate a minted token with a 1 s grace: the successor works on
	// replica 2 at once, the old token until the deadline, then not.
	tokRE := regexp.MustCompile(`(?m)^(sg_([a-z2-7]{10})_[a-z2-7]+)$`)
	old := tokRE.FindStringSubmatch(runCLI(t, cliEnv, "admin", "tokens", "mint", "--tenant", "billing"))
	within(t, time.Second, "second minted token on replica 2", func() bool { return send(g2, old[1]).status == 200 })
	rotated := tokRE.FindStringSubmatch(runCLI(t, cliEnv, "admin", "tokens", "rotate", old[2], "--grace", "1s"))
	if rotated == nil {
		t.Fatal("tokens rotate printed no token")
	}
	rotatedAt := time.Now()
	within(t, time.Second, "successor on replica 2", func() bool { return send(g2, rotated[1]).status == 200 })
	if r := send(g2, old[1]); r.status != 200 && time.Since(rotatedAt) < 900*time.Millisecond {
		t.Fatalf("old token refused before its deadline: %d", r.status)
	}
	within(t, 2*time.Second, "old token refused after its deadline", func() bool { return send(g2, old[1]).status == 401 })
	if d := time.Since(rotatedAt); d < 900*time.Millisecond {
		t.Fatalf("old token refused %v after a rotation with 1s grace", d)
	}

	// Freeze billing through the API of replica 2: both refuse, other flows.
	if st, body := adminCall(t, g2.adminAddr, adminTok, "POST", "/v1/tenants/billing/freeze", map[string]string{"reason": "token leaked"}); st != 200 {
		t.Fatalf("freeze: %d %v", st, body)
	}
	for _, g := range []*gatewayProc{g1, g2} {
		took := within(t, time.Second, "freeze on "+g.httpAddr, func() bool {
			r := send(g, tok)
			return r.status == 503 && errCode(r) == "tenant_frozen"
		})
		t.Logf("freeze seen on %s after %v", g.httpAddr, took)
		err := sendSMTP(t, g.smtpAddr, "billing", tok, from, []string{"a@example.org"}, "From: "+from+"\r\n\r\nx\r\n")
		if code, ec := smtpCode(err); code != 451 || ec != [3]int{4, 7, 1} {
			t.Fatalf("SMTP while frozen: %v", err)
		}
	}
	if st, body := adminCall(t, g1.adminAddr, adminTok, "GET", "/v1/tenants/billing", nil); st != 200 ||
		body["freeze"].(map[string]any)["reason"] != "token leaked" || body["freeze"].(map[string]any)["frozen"] != true {
		t.Fatalf("status of the frozen tenant: %d %v", st, body)
	}
	// Unfreeze through replica 1: flows again on both within a second,
	// although each replica holds a cached frozen refusal.
	if st, body := adminCall(t, g1.adminAddr, adminTok, "POST", "/v1/tenants/billing/unfreeze", map[string]string{}); st != 200 {
		t.Fatalf("unfreeze: %d %v", st, body)
	}
	for _, g := range []*gatewayProc{g1, g2} {
		took := within(t, time.Second, "unfreeze on "+g.httpAddr, func() bool { return send(g, tok).status == 200 })
		t.Logf("unfreeze seen on %s after %v", g.httpAddr, took)
	}

	// Suppression through the CLI on replica 1, paged back, enforced on replica 2.
	if out := runCLI(t, cliEnv, "admin", "suppress", "add", "Gone@Example.org", "--tenant", "billing"); !strings.Contains(out, "gone@example.org") {
		t.Fatalf("suppress add: %s", out)
	}
	if st, body := adminCall(t, g2.adminAddr, adminTok, "GET", "/v1/suppressions?tenant=billing&prefix=go", nil); st != 200 ||
		len(body["suppressions"].([]any)) != 1 {
		t.Fatalf("suppressions list: %d %v", st, body)
	}
	r := postJSON(t, g2.httpAddr, tok, map[string]any{"from": from, "to": []string{"gone@example.org"}, "subject": "x", "text": "x"})
	if r.status != 422 || errCode(r) != "recipient_suppressed" {
		t.Fatalf("send to a suppressed address: %d %v", r.status, r.body)
	}

	// A freeze of an unknown tenant: 404, nothing changed.
	if st, body := adminCall(t, g1.adminAddr, adminTok, "POST", "/v1/tenants/nobody/freeze", map[string]string{"reason": "x"}); st != 404 {
		t.Fatalf("freeze of an unknown tenant: %d %v", st, body)
	}
	if r := send(g1, tok); r.status != 200 {
		t.Fatalf("billing after a refused freeze of another tenant: %d", r.status)
	}

	// Audit: in the store, newest first.
	st, body := adminCall(t, g2.adminAddr, adminTok, "GET", "/v1/audit?limit=3", nil)
	entries, _ := body["entries"].([]any)
	if st != 200 || len(entries) != 3 || entries[0].(map[string]any)["action"] != "tenant.freeze" ||
		entries[0].(map[string]any)["result"] != "error" || entries[2].(map[string]any)["action"] != "tenant.unfreeze" {
		t.Fatalf("audit: %d %v", st, body)
	}

	// Metrics move.
	_, m := adminCall(t, g1.adminAddr, adminTok, "GET", "/metrics", nil)
	text := m["text"].(string)
	acc := metricValue(text, `sesgate_messages_accepted_total{tenant="billing"}`)
	frozen := metricValue(text, `sesgate_messages_refused_total{reason="tenant_frozen",tenant="billing"}`)
	bad := metricValue(text, `sesgate_messages_refused_total{reason="bad_credentials",tenant="unauthenticated"}`)
	if acc < 2 || frozen < 1 || bad < 1 || !strings.Contains(text, "sesgate_redis_latency_seconds_bucket") {
		t.Fatalf("metrics: accepted %v, frozen %v, bad credentials %v\n%s", acc, frozen, bad, text)
	}
	checkMetricsInREADME(t, g1.logs())
	send(g1, tok)
	_, m = adminCall(t, g1.adminAddr, adminTok, "GET", "/metrics", nil)
	if got := metricValue(m["text"].(string), `sesgate_messages_accepted_total{tenant="billing"}`); got != acc+1 {
		t.Fatalf("accepted counter %v after one more message, want %v", got, acc+1)
	}
}

// TestOperateReload changes the policy file under a running gateway: a
// valid change of a limit is applied (polled, and on SIGHUP), an invalid
// file is rejected with its problems logged and the old policy kept.
func TestOperateReload(t *testing.T) {
	tok, tokLine, adminTok, adminLine := mintPolicyTokens(t)
	path := filepath.Join(t.TempDir(), "policy.yml")
	writePolicy(t, path, tokLine, adminLine, "{rate: 5, burst: 5}")
	g := startGateway(t, baseEnv(t), "--config", path, "--sink", "outbox", "--reload-poll", "100ms")
	rate := func() float64 {
		st, body := adminCall(t, g.adminAddr, adminTok, "GET", "/v1/tenants/billing", nil)
		if st != 200 {
			t.Fatalf("tenant status: %d %v", st, body)
		}
		return body["limits"].(map[string]any)["rate"].(float64)
	}
	if r := rate(); r != 5 {
		t.Fatalf("rate %v at start", r)
	}
	aout := runCLI(t, nil, "token", "new", "--admin", "--name", "second")
	admin2 := regexp.MustCompile(`(sg_\S+)`).FindString(aout)
	admin2Line := regexp.MustCompile(`- (\{name: second, .*\})`).FindStringSubmatch(aout)[1]
	if st, _ := adminCall(t, g.adminAddr, admin2, "GET", "/v1/tenants", nil); st != 401 {
		t.Fatalf("second admin token before the reload: %d", st)
	}
	if st, _ := adminCall(t, g.adminAddr, adminTok, "GET", "/v1/breakers/added", nil); st != 404 {
		t.Fatalf("breaker of a tenant not yet in the policy: %d", st)
	}
	writePolicy(t, path, tokLine, adminLine+"\n  - "+admin2Line, "{rate: 7, burst: 5}\n  - id: added\n    identities: [\"*\"]")
	within(t, 3*time.Second, "rate 7 after the file changed", func() bool { return rate() == 7 })
	// The breakers know the tenant the reload added.
	if st, body := adminCall(t, g.adminAddr, adminTok, "GET", "/v1/breakers/added", nil); st != 200 || body["state"] != "closed" {
		t.Fatalf("breaker of the added tenant after the reload: %d %v", st, body)
	}
	if st, _ := adminCall(t, g.adminAddr, admin2, "GET", "/v1/tenants", nil); st != 200 {
		t.Fatalf("second admin token after the reload: %d", st)
	}

	os.WriteFile(path, []byte("tenants:\n  - id: billing\n    identites: [x]\n"), 0o600)
	within(t, 3*time.Second, "invalid file logged", func() bool {
		return strings.Contains(g.logs(), "policy reload rejected") && strings.Contains(g.logs(), "tenants[0].identites")
	})
	if r := rate(); r != 7 {
		t.Fatalf("rate %v after an invalid file, want 7 kept", r)
	}
	msg := map[string]any{"from": "a@billing.example.com", "to": []string{"a@example.org"}, "subject": "x", "text": "x"}
	if r := postJSON(t, g.httpAddr, tok, msg); r.status != 200 {
		t.Fatalf("send after an invalid file: %d %v", r.status, r.body)
	}
	_, m := adminCall(t, g.adminAddr, adminTok, "GET", "/metrics", nil)
	text := m["text"].(string)
	if metricValue(text, `sesgate_policy_reloads_total{result="ok"}`) != 1 || metricValue(text, `sesgate_policy_reloads_total{result="invalid"}`) != 1 {
		t.Fatalf("reload metrics:\n%s", text)
	}

	// The new limits are enforced, not only shown.
	writePolicy(t, path, tokLine, adminLine, "{rate: 0.01, burst: 1}")
	within(t, 3*time.Second, "rate 0.01 after the file changed", func() bool { return rate() == 0.01 })
	time.Sleep(250 * time.Millisecond) // the last message at rate 7 holds the bucket for 1/7 s
	if r := postJSON(t, g.httpAddr, tok, msg); r.status != 200 {
		t.Fatalf("first message under burst 1: %d %v", r.status, r.body)
	}
	if r := postJSON(t, g.httpAddr, tok, msg); r.status != 429 || errCode(r) != "rate_limited" {
		t.Fatalf("second message under burst 1: %d %v", r.status, r.body)
	}

	// SIGHUP, with the poll off.
	path2 := filepath.Join(t.TempDir(), "policy.yml")
	writePolicy(t, path2, tokLine, adminLine, "{rate: 5, burst: 5}")
	h := startGateway(t, baseEnv(t), "--config", path2, "--sink", "outbox", "--reload-poll", "0")
	writePolicy(t, path2, tokLine, adminLine, "{rate: 9, burst: 5}")
	time.Sleep(200 * time.Millisecond)
	hrate := func() float64 {
		_, body := adminCall(t, h.adminAddr, adminTok, "GET", "/v1/tenants/billing", nil)
		return body["limits"].(map[string]any)["rate"].(float64)
	}
	if r := hrate(); r != 5 {
		t.Fatalf("rate %v before SIGHUP with the poll off", r)
	}
	h.cmd.Process.Signal(syscall.SIGHUP)
	within(t, 2*time.Second, "rate 9 after SIGHUP", func() bool { return hrate() == 9 })
}

// checkMetricsInREADME finds the gateway's "metrics registered" debug line
// and checks that the README names every metric in it.
func checkMetricsInREADME(t *testing.T, logs string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			Msg   string   `json:"msg"`
			Names []string `json:"names"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "metrics registered" {
			continue
		}
		if len(rec.Names) < 8 {
			t.Fatalf("only %d metrics registered: %v", len(rec.Names), rec.Names)
		}
		for _, n := range rec.Names {
			if !strings.Contains(string(readme), "`"+n+"`") {
				t.Errorf("metric %s is not listed in README.md", n)
			}
		}
		return
	}
	t.Fatal("no \"metrics registered\" line in the debug log")
}
