package server

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
)

// rawSMTP is a raw SMTP client for the shared-budget test.
type rawSMTP struct {
	t  *testing.T
	c  net.Conn
	tp *textproto.Conn
}

func dialSMTP(t *testing.T, addr string) *rawSMTP {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	s := &rawSMTP{t: t, c: c, tp: textproto.NewConn(c)}
	s.expect("220")
	return s
}

func (s *rawSMTP) expect(prefix string) string {
	s.t.Helper()
	var lines []string
	for {
		line, err := s.tp.ReadLine()
		if err != nil {
			s.t.Fatalf("reading a reply (want %s): %v", prefix, err)
		}
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, prefix) {
		s.t.Fatalf("reply %q, want %s", strings.Join(lines, " | "), prefix)
	}
	return last
}

func (s *rawSMTP) cmd(line, want string) string {
	s.t.Helper()
	if err := s.tp.PrintfLine("%s", line); err != nil {
		s.t.Fatal(err)
	}
	return s.expect(want)
}

// begin authenticates as tenant and opens a transaction up to DATA's 354.
func (s *rawSMTP) begin(tenant, token string) {
	s.cmd("EHLO client.test", "250")
	s.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+tenant+"\x00"+token)), "235")
	s.cmd("MAIL FROM:<me@example.com>", "250")
	s.cmd("RCPT TO:<you@example.org>", "250")
	s.cmd("DATA", "354")
}

// writeBody writes about n bytes of message (dot-safe lines).
func (s *rawSMTP) writeBody(n int) {
	s.t.Helper()
	if _, err := io.WriteString(s.c, "From: me@example.com\r\nTo: you@example.org\r\nSubject: big\r\n\r\n"); err != nil {
		s.t.Fatal(err)
	}
	chunk := []byte(strings.Repeat(strings.Repeat("y", 78)+"\r\n", (1<<20)/80))
	for written := 0; written < n; written += len(chunk) {
		if _, err := s.c.Write(chunk); err != nil {
			s.t.Fatal(err)
		}
	}
}

// httpPost sends the headers of a raw POST declaring length and then the
// first send bytes of its body, and reads the answer concurrently.
type httpPost struct {
	c    net.Conn
	done chan struct{}
	resp *http.Response
	code string
	err  error
	body io.Reader
}

func startPost(t *testing.T, addr, token string, length, send int) *httpPost {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	p := &httpPost{c: c, done: make(chan struct{})}
	fmt.Fprintf(c, "POST /v1/messages?from=me@example.com&to=you@example.org HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: message/rfc822\r\nContent-Length: %d\r\n\r\n", token, length)
	p.write(t, send)
	go func() {
		defer close(p.done)
		p.resp, p.err = http.ReadResponse(bufio.NewReader(c), nil)
		if p.err == nil {
			var b struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.NewDecoder(io.LimitReader(p.resp.Body, 1<<16)).Decode(&b)
			p.code = b.Error.Code
		}
	}()
	return p
}

// write sends the next n bytes of the body: a header block, then lines.
func (p *httpPost) write(t *testing.T, n int) {
	t.Helper()
	if p.body == nil {
		p.body = io.MultiReader(strings.NewReader("From: me@example.com\r\nTo: you@example.org\r\nSubject: big\r\n\r\n"),
			repeatReader(strings.Repeat("z", 78)+"\r\n"))
	}
	if _, err := io.CopyN(p.c, p.body, int64(n)); err != nil {
		t.Fatal(err)
	}
}

// repeatReader repeats line forever.
func repeatReader(line string) io.Reader {
	buf := []byte(strings.Repeat(line, (64<<10)/len(line)))
	return readerFunc(func(p []byte) (int, error) { return copy(p, buf), nil })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func (p *httpPost) wait(t *testing.T, what string) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
	if p.err != nil {
		t.Fatalf("%s: %v", what, p.err)
	}
	return p.resp.StatusCode, p.code
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedMemoryBudget: SMTP and HTTP take from one memory budget
// (--mem-budget). An SMTP DATA in flight holding half of it makes HTTP
// refuse a post that would go over (503 server_busy + Retry-After) before
// its body is sent; an HTTP post holding most of it makes SMTP refuse a
// message that would go over (451 4.3.0). What each held is given back.
func TestSharedMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	s := testSettings(t, dir, "--mem-budget", "40MiB")
	srv, err := Start(t.Context(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	tok, err := os.ReadFile(filepath.Join(dir, "dev-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	budget := srv.front.budget
	if budget == nil || budget.Limit() != 40<<20 {
		t.Fatalf("budget %v, want one of 40 MiB", budget)
	}

	// SMTP holds 21 MiB: HTTP cannot have 20.
	c := dialSMTP(t, s.SMTPAddr)
	c.begin("dev", token)
	c.writeBody(21 << 20)
	waitUntil(t, "SMTP's 21 MiB in the budget", func() bool { return budget.InUse() >= 21<<20 })
	p := startPost(t, s.HTTPAddr, token, 20<<20, 0)
	if status, code := p.wait(t, "HTTP post while SMTP holds the budget"); status != http.StatusServiceUnavailable ||
		code != "server_busy" || p.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP post while SMTP holds the budget: %d %q Retry-After %q; want 503 server_busy with Retry-After",
			status, code, p.resp.Header.Get("Retry-After"))
	}
	c.cmd(".", "250")
	waitUntil(t, "the budget given back by SMTP", func() bool { return budget.InUse() == 0 })

	// HTTP holds 39 MiB (its declared length; 1 MiB sent): SMTP cannot
	// have 2.
	p = startPost(t, s.HTTPAddr, token, 39<<20, 1<<20)
	waitUntil(t, "HTTP's 39 MiB in the budget", func() bool { return budget.InUse() >= 39<<20 })
	c.cmd("MAIL FROM:<me@example.com>", "250")
	c.cmd("RCPT TO:<you@example.org>", "250")
	c.cmd("DATA", "354")
	c.writeBody(2 << 20)
	c.cmd(".", "451 4.3.0")
	p.c.Close() // the client gives up: its reservation goes with it
	waitUntil(t, "the budget given back by HTTP", func() bool { return budget.InUse() == 0 })
	c.cmd("MAIL FROM:<me@example.com>", "250")
	c.cmd("RCPT TO:<you@example.org>", "250")
	c.cmd("DATA", "354")
	c.writeBody(2 << 20)
	c.cmd(".", "250")
}

// TestPreLimiterBeforeBody: with a rate per recipient (not cached), a
// tenant whose pre-limiter is empty is refused 429 rate_limited with
// Retry-After before the body of its next post is read.
func TestPreLimiterBeforeBody(t *testing.T) {
	dir := t.TempDir()
	m := auth.NewToken("slow")
	policy := filepath.Join(dir, "policy.yml")
	doc := "tenants:\n  - id: slow\n    identities: ['*']\n    tokens:\n      - " + m.Record.PolicyLine() +
		"\n    limits:\n      rate: 0.01\n      rate_per: recipient\n      burst: 1\n      max_recipients: 1\n"
	if err := os.WriteFile(policy, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testSettings(t, dir, "--config", policy, "--sink", "outbox")
	srv, err := Start(t.Context(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	msg := "From: me@example.com\r\nTo: you@example.org\r\nSubject: x\r\n\r\nhi\r\n"
	first := startPost(t, s.HTTPAddr, m.Token, len(msg), 0)
	if _, err := io.WriteString(first.c, msg); err != nil {
		t.Fatal(err)
	}
	if status, code := first.wait(t, "first message"); status != http.StatusOK {
		t.Fatalf("first message: %d %q", status, code)
	}
	p := startPost(t, s.HTTPAddr, m.Token, 1<<20, 0)
	status, code := p.wait(t, "second message, body not sent")
	if ra, _ := strconv.Atoi(p.resp.Header.Get("Retry-After")); status != http.StatusTooManyRequests || code != "rate_limited" || ra < 1 {
		t.Fatalf("second message: %d %q Retry-After %q; want 429 rate_limited with Retry-After", status, code, p.resp.Header.Get("Retry-After"))
	}
}

// TestFrontEndSettings: the memory and connection bounds have defaults,
// environment variables and flags (the flag wins), and refuse nonsense.
func TestFrontEndSettings(t *testing.T) {
	s, err := ParseSettings(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemBudget != 512<<20 || s.HTTPMaxConns != 1024 || s.HTTPMaxConnsPerSource != 256 || s.HTTPMaxRequestsPerTenant != 128 ||
		s.SNSMemBudget != 32<<20 || s.SNSMaxBodiesPerSource != 16 || s.SNSBodyTimeout != 5*time.Second {
		t.Fatalf("defaults: %+v", s)
	}
	t.Setenv("SESGATE_MEM_BUDGET", "1GiB")
	t.Setenv("SESGATE_HTTP_MAX_CONNS_PER_SOURCE", "32")
	t.Setenv("SESGATE_SNS_MEM_BUDGET", "1MiB")
	t.Setenv("SESGATE_SNS_BODY_TIMEOUT", "2s")
	s, err = ParseSettings([]string{"--http-max-conns", "64", "--http-max-requests-per-tenant", "8", "--sns-max-bodies-per-source", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemBudget != 1<<30 || s.HTTPMaxConns != 64 || s.HTTPMaxConnsPerSource != 32 || s.HTTPMaxRequestsPerTenant != 8 ||
		s.SNSMemBudget != 1<<20 || s.SNSMaxBodiesPerSource != 4 || s.SNSBodyTimeout != 2*time.Second {
		t.Fatalf("from env and flags: %+v", s)
	}
	if s, _ := ParseSettings([]string{"--mem-budget", "600MB"}, io.Discard); s == nil || s.MemBudget != 600e6 {
		t.Fatalf("flag over env: %+v", s)
	}
	for _, args := range [][]string{
		{"--mem-budget", "10MiB"},
		{"--mem-budget", "lots"},
		{"--http-max-conns", "0"},
		{"--http-max-conns-per-source", "-1"},
		{"--http-max-requests-per-tenant", "0"},
		{"--sns-mem-budget", "100KiB"},
		{"--sns-max-bodies-per-source", "0"},
		{"--sns-body-timeout", "0s"},
	} {
		if _, err := ParseSettings(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	t.Setenv("SESGATE_HTTP_MAX_CONNS", "many")
	if _, err := ParseSettings(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "SESGATE_HTTP_MAX_CONNS") {
		t.Errorf("bad env: %v", err)
	}
}

// TestSNSBoundsWired: the --sns-* settings reach the SNS endpoint on the
// HTTP listener: with one body per address, a second SNS post from the
// same address while one stalls is answered 503 busy before its body,
// and the stalled one is cut after --sns-body-timeout.
func TestSNSBoundsWired(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yml")
	doc := "events:\n  sns:\n    topic_arns: [arn:aws:sns:us-east-1:123456789012:ses-events]\ntenants:\n  - id: app\n    identities: ['*']\n"
	if err := os.WriteFile(policy, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testSettings(t, dir, "--config", policy, "--sns-max-bodies-per-source", "1", "--sns-body-timeout", "1s")
	srv, err := Start(t.Context(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	snsPost := func() (net.Conn, chan string) {
		c, err := net.Dial("tcp", s.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "POST /v1/events/sns HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n{\"Type\":")
		status := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(c).ReadString('\n')
			status <- strings.TrimSpace(line)
		}()
		return c, status
	}
	start := time.Now()
	_, stalled := snsPost()
	time.Sleep(200 * time.Millisecond) // the first one is reading
	_, second := snsPost()
	select {
	case got := <-second:
		if got != "HTTP/1.1 503 Service Unavailable" {
			t.Fatalf("second SNS post from the address: %q, want 503", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second SNS post from the address: no answer")
	}
	select {
	case got := <-stalled:
		if got != "HTTP/1.1 408 Request Timeout" || time.Since(start) > 10*time.Second {
			t.Fatalf("stalled SNS post: %q after %v, want 408 after about 1s", got, time.Since(start))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stalled SNS post never cut")
	}
}
