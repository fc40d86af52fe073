package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/internal/sestest"
)

// binPath is the sesgate binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sesgate-e2e-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "sesgate")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		panic("build sesgate: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseEnv is a clean environment: no AWS settings from the machine, except a
// CA bundle path when set.
func baseEnv(t *testing.T) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if v := os.Getenv("AWS_CA_BUNDLE"); v != "" {
		env = append(env, "AWS_CA_BUNDLE="+v)
	}
	return env
}

type gatewayProc struct {
	cmd       *exec.Cmd
	smtpAddr  string
	httpAddr  string
	adminAddr string // host:port of the admin listener
	dataDir   string
	mu        sync.Mutex
	stderr    bytes.Buffer
	done      chan error
}

func (g *gatewayProc) logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

var (
	smtpLineRE = regexp.MustCompile(`(?m)^  SMTP   (\S+)`)
	httpLineRE = regexp.MustCompile(`(?m)^  HTTP   http://(\S+)/v1/messages`)
	adminRE    = regexp.MustCompile(`(?m)^  admin  http://(\S+)/dashboard/`)
)

// startGateway runs `sesgate serve` on free loopback ports and waits for its banner.
func startGateway(t *testing.T, env []string, args ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{dataDir: t.TempDir(), done: make(chan error, 1)}
	full := append([]string{"serve", "--smtp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", g.dataDir}, args...)
	g.cmd = exec.Command(binPath, full...)
	g.cmd.Env = env
	pr, pw := io.Pipe()
	g.cmd.Stderr = pw
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bannerDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		closed := false
		for sc.Scan() {
			g.mu.Lock()
			g.stderr.WriteString(sc.Text() + "\n")
			s := g.stderr.String()
			g.mu.Unlock()
			if !closed && strings.Contains(s, "  admin  ") && (strings.Contains(s, "  tenant ") || strings.Contains(s, "  policy ")) {
				closed = true
				close(bannerDone)
			}
		}
	}()
	go func() { err := g.cmd.Wait(); pw.Close(); g.done <- err }()
	select {
	case <-bannerDone:
	case err := <-g.done:
		t.Fatalf("gateway exited before its banner: %v\n%s", err, g.logs())
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		t.Fatalf("no banner within 20s:\n%s", g.logs())
	}
	s := g.logs()
	if m := smtpLineRE.FindStringSubmatch(s); m != nil {
		g.smtpAddr = m[1]
	}
	if m := httpLineRE.FindStringSubmatch(s); m != nil {
		g.httpAddr = m[1]
	}
	if m := adminRE.FindStringSubmatch(s); m != nil {
		g.adminAddr = m[1]
	}
	t.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			g.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.done:
			case <-time.After(10 * time.Second):
				g.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs())
		}
	})
	return g
}

func (g *gatewayProc) token(t *testing.T) string {
	t.Helper()
	path := filepath.Join(g.dataDir, "dev-token")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("dev-token mode %v, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// sendSMTP sends one message with AUTH PLAIN and returns the final reply error (nil on 250).
func sendSMTP(t *testing.T, addr, user, token, from string, rcpts []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", user, token)); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

type sendResult struct {
	status int
	body   map[string]any
	header http.Header
}

func postJSON(t *testing.T, addr, token string, body any) sendResult {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/messages", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("status %d, body not JSON: %v", resp.StatusCode, err)
	}
	return sendResult{resp.StatusCode, out, resp.Header}
}

func errCode(r sendResult) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func smtpCode(err error) (int, smtp.EnhancedCode) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, se.EnhancedCode
	}
	return 0, smtp.EnhancedCode{}
}

const smtpMsg = "From: App <app@example.com>\r\nTo: a@example.org\r\nBcc: hidden@example.org\r\nSubject: e2e\r\n\r\nhello over SMTP\r\n"

func TestEndToEndOutbox(t *testing.T) {
	g := startGateway(t, baseEnv(t))
	if g.smtpAddr == "" || g.httpAddr == "" {
		t.Fatalf("banner lacks addresses:\n%s", g.logs())
	}
	if !strings.Contains(g.logs(), "mail is NOT sent to SES") {
		t.Fatalf("banner does not say mail goes to the outbox:\n%s", g.logs())
	}
	tok := g.token(t)

	if err := sendSMTP(t, g.smtpAddr, "dev", tok, "app@example.com", []string{"a@example.org", "hidden@example.org"}, smtpMsg); err != nil {
		t.Fatalf("SMTP send: %v", err)
	}
	r := postJSON(t, g.httpAddr, tok, map[string]any{"from": "app@example.com", "to": []string{"b@example.org"}, "subject": "e2e", "text": "hello over HTTP"})
	if r.status != 200 || r.body["id"] == "" || !strings.HasPrefix(r.body["message_id"].(string), "outbox-") {
		t.Fatalf("HTTP send: %d %v", r.status, r.body)
	}

	// Bad credentials on both front ends, nothing stored.
	if code, ec := smtpCode(sendSMTP(t, g.smtpAddr, "dev", tok+"x", "app@example.com", []string{"a@example.org"}, smtpMsg)); code != 535 || ec != (smtp.EnhancedCode{5, 7, 8}) {
		t.Fatalf("wrong token over SMTP: %d %v", code, ec)
	}
	if r := postJSON(t, g.httpAddr, "sg_nope", map[string]any{"from": "app@example.com", "to": []string{"b@example.org"}, "subject": "x", "text": "x"}); r.status != 401 || errCode(r) != "bad_credentials" {
		t.Fatalf("wrong token over HTTP: %d %v", r.status, r.body)
	}

	// The outbox commands see exactly the two accepted messages.
	out := runCLI(t, []string{"SESGATE_DATA_DIR=" + g.dataDir}, "outbox", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "rcpts=2") || !strings.Contains(lines[1], "rcpts=1") {
		t.Fatalf("outbox list:\n%s", out)
	}
	id := strings.Fields(lines[0])[0]
	show := runCLI(t, []string{"SESGATE_DATA_DIR=" + g.dataDir}, "outbox", "show", id)
	if !strings.Contains(show, "X-Sesgate-Envelope-To: hidden@example.org") || !strings.Contains(show, "hello over SMTP") {
		t.Fatalf("outbox show lacks the envelope or body:\n%s", show)
	}
	if strings.Contains(strings.ToLower(show), "bcc:") {
		t.Fatalf("Bcc header reached the outbox:\n%s", show)
	}
	// One audit line per message, and never the token.
	logs := g.logs()
	if strings.Count(logs, `"outcome":"sent"`) != 2 || strings.Contains(logs, tok) {
		t.Fatalf("audit log wrong (2 sent lines, no token expected):\n%s", logs)
	}

	// The exec probe used by the sidecar manifest sees the gateway ready.
	if out := runCLI(t, nil, "probe", "--url", "http://"+g.httpAddr+"/readyz"); strings.TrimSpace(out) != "ready" {
		t.Fatalf("probe: %q", out)
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-g.done; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func runCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(baseEnv(t), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesgate %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func sesEnv(t *testing.T, url string) []string {
	return append(baseEnv(t),
		"AWS_ACCESS_KEY_ID="+sestest.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+sestest.DefaultSecretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_SESV2="+url,
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

func TestEndToEndSES(t *testing.T) {
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	g := startGateway(t, append(sesEnv(t, url), "SESGATE_SINK=ses"))
	if !strings.Contains(g.logs(), "Amazon SES") {
		t.Fatalf("banner does not name SES:\n%s", g.logs())
	}
	tok := g.token(t)

	if err := sendSMTP(t, g.smtpAddr, "dev", tok, "app@example.com", []string{"a@example.org", "hidden@example.org"}, smtpMsg); err != nil {
		t.Fatalf("SMTP send: %v", err)
	}
	r := postJSON(t, g.httpAddr, tok, map[string]any{"from": "app@example.com", "to": []string{"b@example.org"}, "bcc": []string{"c@example.org"}, "subject": "e2e", "text": "hi"})
	if r.status != 200 {
		t.Fatalf("HTTP send: %d %v", r.status, r.body)
	}
	sent := srv.Sent()
	if len(sent) != 2 {
		t.Fatalf("SES got %d messages, want 2", len(sent))
	}
	if r.body["message_id"] != sent[1].ID {
		t.Fatalf("HTTP answer message_id %v, SES id %s", r.body["message_id"], sent[1].ID)
	}
	for i, want := range [][]string{{"a@example.org", "hidden@example.org"}, {"b@example.org", "c@example.org"}} {
		m := sent[i]
		got := append(append(append([]string{}, m.To...), m.Cc...), m.Bcc...)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("message %d destinations %v, want %v", i, got, want)
		}
		if bytes.Contains(bytes.ToLower(m.Raw), []byte("bcc:")) || bytes.Contains(m.Raw, []byte("hidden@")) || bytes.Contains(m.Raw, []byte("c@example.org")) {
			t.Errorf("message %d: Bcc leaked into the raw message", i)
		}
		if m.Tags["sesgate-tenant"] != "dev" || m.Tags["sesgate-id"] == "" || m.From != "app@example.com" {
			t.Errorf("message %d: from %q tags %v", i, m.From, m.Tags)
		}
	}

	// SES faults reach the client as specific answers, and nothing is half-sent.
	tests := []struct {
		name     string
		fault    sestest.ErrorType
		message  string
		smtp     int
		enhanced smtp.EnhancedCode
		status   int
		code     string
	}{
		{"rejected", sestest.MessageRejected, "Message contains a virus.", 554, smtp.EnhancedCode{5, 6, 0}, 422, "ses_message_rejected"},
		{"throttled", sestest.TooManyRequests, "", 451, smtp.EnhancedCode{4, 4, 5}, 429, "ses_throttled"},
		{"internal", sestest.InternalServiceError, "", 451, smtp.EnhancedCode{4, 4, 1}, 502, "ses_unavailable"},
		{"paused", sestest.SendingPaused, "", 451, smtp.EnhancedCode{4, 3, 2}, 503, "ses_sending_paused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.FailNext(3, sestest.Fault{Type: tc.fault, Message: tc.message}) // enough for the sink's throttle retries
			err := sendSMTP(t, g.smtpAddr, "dev", tok, "app@example.com", []string{"a@example.org"}, smtpMsg)
			if code, ec := smtpCode(err); code != tc.smtp || ec != tc.enhanced {
				t.Fatalf("SMTP: %v; want %d %v", err, tc.smtp, tc.enhanced)
			}
			srv.ClearFaults()
			srv.FailNext(3, sestest.Fault{Type: tc.fault, Message: tc.message})
			r := postJSON(t, g.httpAddr, tok, map[string]any{"from": "app@example.com", "to": []string{"b@example.org"}, "subject": "x", "text": "x"})
			if r.status != tc.status || errCode(r) != tc.code {
				t.Fatalf("HTTP: %d %v; want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if (r.status == 429 || r.status == 503) && r.header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
			srv.ClearFaults()
		})
	}
	if n := len(srv.Sent()); n != 2 {
		t.Fatalf("SES recorded %d messages after faults, want still 2", n)
	}
}

func TestEndToEndPolicyFile(t *testing.T) {
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	out := runCLI(t, nil, "token", "new", "--tenant", "billing")
	tokRE := regexp.MustCompile(`(sg_\S+)`)
	lineRE := regexp.MustCompile(`- (\{key_id: .*\})`)
	tm, lm := tokRE.FindStringSubmatch(out), lineRE.FindStringSubmatch(out)
	if tm == nil || lm == nil {
		t.Fatalf("token new output:\n%s", out)
	}
	policy := "tenants:\n  - id: billing\n    tokens:\n      - " + lm[1] + "\n" +
		"    identities: [\"@billing.example.com\"]\n    recipient_domains: [example.org]\n" +
		"    limits: {rate: 1, burst: 2}\n    ses: {configuration_set: billing-events, tenant_name: billing}\n"
	path := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := runCLI(t, nil, "check-config", path); !strings.Contains(out, "ok (1 tenants, 1 tokens)") {
		t.Fatalf("check-config: %s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("tenants:\n  - id: x\n    identites: [a@b.cd]\n"), 0o600)
	cmd := exec.Command(binPath, "check-config", bad)
	cmd.Env = baseEnv(t)
	bout, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(bout), "tenants[0].identites (line 3): unknown key") || !strings.Contains(string(bout), "tenants[0].identities (line 2, not set): at least one identity") {
		t.Fatalf("check-config on a bad file: %v\n%s", err, bout)
	}

	g := startGateway(t, sesEnv(t, url), "--config", path) // sink defaults to ses with a policy
	tok := tm[1]
	from := "news@billing.example.com"
	if err := sendSMTP(t, g.smtpAddr, "billing", tok, from, []string{"a@example.org"}, "From: "+from+"\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("SMTP send: %v", err)
	}
	m := srv.Sent()[0]
	if m.ConfigurationSet != "billing-events" || m.TenantName != "billing" || m.Tags["sesgate-tenant"] != "billing" {
		t.Fatalf("SES send lacks tenant options: %+v", m)
	}
	// Scope: sender, recipient domain, rate.
	if code, _ := smtpCode(sendSMTP(t, g.smtpAddr, "billing", tok, "ceo@example.com", []string{"a@example.org"}, "From: ceo@example.com\r\n\r\nx\r\n")); code != 550 {
		t.Fatalf("foreign sender: %d", code)
	}
	if r := postJSON(t, g.httpAddr, tok, map[string]any{"from": from, "to": []string{"x@gmail.com"}, "subject": "x", "text": "x"}); r.status != 403 || errCode(r) != "recipient_not_allowed" {
		t.Fatalf("foreign recipient: %d %v", r.status, r.body)
	}
	var limited sendResult
	for i := 0; i < 3; i++ {
		limited = postJSON(t, g.httpAddr, tok, map[string]any{"from": from, "to": []string{"a@example.org"}, "subject": "x", "text": "x"})
	}
	if limited.status != 429 || errCode(limited) != "rate_limited" || limited.header.Get("Retry-After") == "" {
		t.Fatalf("over rate: %d %v", limited.status, limited.body)
	}
	// The dev token does not exist with a policy file.
	if _, err := os.Stat(filepath.Join(g.dataDir, "dev-token")); !os.IsNotExist(err) {
		t.Fatalf("dev-token written with a policy file: %v", err)
	}
}

func TestEndToEndGracefulShutdown(t *testing.T) {
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	srv.SetLatency(1500 * time.Millisecond)
	g := startGateway(t, append(sesEnv(t, url), "SESGATE_SINK=ses", "SESGATE_SHUTDOWN_DELAY=300ms"))
	tok := g.token(t)

	got := make(chan sendResult, 1)
	go func() {
		got <- postJSON(t, g.httpAddr, tok, map[string]any{"from": "a@example.com", "to": []string{"b@example.org"}, "subject": "x", "text": "x"})
	}()
	// Wait until SES has the request in hand, then stop the gateway.
	deadline := time.Now().Add(5 * time.Second)
	for srv.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness goes false first, while the listener still answers.
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get("http://" + g.httpAddr + "/readyz")
	if err != nil {
		t.Fatalf("readyz during drain: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("readyz during drain: %d, want 503", resp.StatusCode)
	}
	r := <-got
	if r.status != 200 || r.body["message_id"] == nil {
		t.Fatalf("in-flight request during shutdown: %d %v", r.status, r.body)
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not exit")
	}
	if !strings.Contains(g.logs(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in log:\n%s", g.logs())
	}
}
