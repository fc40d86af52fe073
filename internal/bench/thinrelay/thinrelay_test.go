package thinrelay

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/internal/sestest"
)

// start runs the relay on loopback in front of a fresh SES test server.
func start(t *testing.T) (*sestest.Server, string) {
	t.Helper()
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	r, err := New(Options{Endpoint: url, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(sestest.DefaultAccessKeyID, sestest.DefaultSecretAccessKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ln) }()
	t.Cleanup(func() {
		_ = r.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

const raw = "From: app@example.com\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n"

// send sends one message without AUTH and returns the DATA reply's text.
func send(t *testing.T, addr string, rcpts ...string) (string, error) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("test.localhost"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("app@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// TestRelaySends: a send without AUTH gets 250 with SES's MessageId, and
// SES got the raw message with the envelope's recipients.
func TestRelaySends(t *testing.T) {
	srv, addr := start(t)
	text, err := send(t, addr, "a@example.net", "b@example.org")
	if err != nil {
		t.Fatal(err)
	}
	id, ok := strings.CutPrefix(text, "2.0.0 Ok: queued as ")
	if !ok || id == "" {
		t.Fatalf("reply %q, want 2.0.0 Ok: queued as <MessageId>", text)
	}
	m, ok := srv.Message(id)
	if !ok {
		t.Fatalf("SES has no message %q (accepted %d)", id, srv.Accepted())
	}
	if !bytes.Equal(m.Raw, []byte(raw)) {
		t.Errorf("SES got raw %q, want %q", m.Raw, raw)
	}
	if got := strings.Join(m.Recipients(), ","); got != "a@example.net,b@example.org" {
		t.Errorf("SES recipients %s", got)
	}
	if m.From != "app@example.com" {
		t.Errorf("SES from %q", m.From)
	}
}

// TestRelaySESError: an SES error is a 451 and nothing is recorded.
func TestRelaySESError(t *testing.T) {
	srv, addr := start(t)
	srv.FailNext(1, sestest.Fault{Type: sestest.MessageRejected})
	_, err := send(t, addr, "a@example.net")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 4, 2}) || !strings.Contains(se.Message, "MessageRejected") {
		t.Fatalf("err = %v, want 451 4.4.2 naming MessageRejected", err)
	}
	if n := srv.Accepted(); n != 0 {
		t.Errorf("SES accepted %d", n)
	}
}

// TestListenLoopbackOnly: a relay without authentication refuses to listen
// beyond loopback.
func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:25", "example.com:25"} {
		if _, err := Listen(addr); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("Listen(%q) = %v, want a loopback refusal", addr, err)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without endpoint: no error")
	}
}
