package gateway_test

// Tests of PrepareMessage's header rules through the real front ends: an SMTP
// server and the HTTP API on 127.0.0.1:0, a recording sink behind them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/gatewaytest"
)

const feToken = "sg_fe_token"

type feAuth struct{ t *gateway.Tenant }

func (a feAuth) Authenticate(_ context.Context, user, token string, _ netip.Addr) (*gateway.Tenant, error) {
	if token != feToken || (user != "" && user != a.t.ID) {
		return nil, gateway.Errorf(gateway.CodeBadCredentials, "invalid credentials")
	}
	return a.t, nil
}

type feSink struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (s *feSink) Send(_ context.Context, env *gateway.Envelope) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, bytes.Clone(env.Data))
	return fmt.Sprintf("ses-%d", len(s.msgs)), nil
}

func (s *feSink) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.msgs
	s.msgs = nil
	return m
}

// frontEnds starts an SMTP server and the HTTP API sharing one pipeline.
func frontEnds(t *testing.T) (smtpAddr, httpURL string, sink *feSink) {
	t.Helper()
	sink = &feSink{}
	ten := &gateway.Tenant{ID: "acme", Identities: []string{"@acme.example", "ops@other.example"}}
	p := gateway.NewPipeline(gateway.Options{Auth: feAuth{ten}, Sink: sink, Logger: slog.New(slog.DiscardHandler)})
	smtpAddr, httpURL = gatewaytest.FrontEnds(t, p)
	return smtpAddr, httpURL, sink
}

// sendSMTP submits msg over SMTP and returns the DATA error (nil on 250).
func sendSMTP(t *testing.T, addr, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "acme", feToken)); err != nil {
		t.Fatal(err)
	}
	return c.SendMail("app@acme.example", []string{"to@dest.example"}, strings.NewReader(msg))
}

// sendHTTP posts msg as message/rfc822 and returns the status and error body.
func sendHTTP(t *testing.T, url, msg string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/messages?to=to@dest.example", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+feToken)
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body.Error.Code, body.Error.Message
}

func TestOriginatorHeadersThroughFrontEnds(t *testing.T) {
	smtpAddr, httpURL, sink := frontEnds(t)
	msg := func(extra string) string {
		return "From: App <app@acme.example>\r\nTo: to@dest.example\r\nSubject: s\r\n" + extra + "\r\nbody\r\n"
	}
	refused := []struct{ name, extra, header string }{
		{"foreign Sender", "Sender: ceo@bank.example\r\n", "Sender"},
		{"foreign Sender with display name", "Sender: \"Acme\" <ceo@bank.example>\r\n", "Sender"},
		{"foreign Resent-From", "Resent-From: a@acme.example, ceo@bank.example\r\n", "Resent-From"},
		{"foreign Resent-Sender", "resent-sender: ceo@bank.example\r\n", "Resent-Sender"},
		{"folded foreign Sender", "Sender: App\r\n <ceo@bank.example>\r\n", "Sender"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := sendSMTP(t, smtpAddr, msg(tc.extra))
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) ||
				!strings.Contains(se.Message, tc.header+" header") {
				t.Errorf("SMTP: %v; want 550 5.7.1 naming the %s header", err, tc.header)
			}
			status, code, text := sendHTTP(t, httpURL, msg(tc.extra))
			if status != http.StatusForbidden || code != "sender_not_allowed" || !strings.Contains(text, tc.header+" header") {
				t.Errorf("HTTP: %d %s %q; want 403 sender_not_allowed naming the %s header", status, code, text, tc.header)
			}
			if got := sink.take(); len(got) != 0 {
				t.Errorf("sink got %d messages", len(got))
			}
		})
	}

	accepted := []struct{ name, extra string }{
		{"own Sender", "Sender: bounce@acme.example\r\n"},
		{"own Resent-From and Resent-Sender", "Resent-From: ops@other.example\r\nResent-Sender: x@ACME.example\r\n"},
		{"Return-Path removed", "Return-Path: <ceo@bank.example>\r\n"},
		{"folded Return-Path removed", "Return-path:\r\n <ceo@bank.example>\r\n"},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			if err := sendSMTP(t, smtpAddr, msg(tc.extra)); err != nil {
				t.Fatalf("SMTP: %v", err)
			}
			if status, code, text := sendHTTP(t, httpURL, msg(tc.extra)); status != http.StatusOK {
				t.Fatalf("HTTP: %d %s %q", status, code, text)
			}
			got := sink.take()
			if len(got) != 2 {
				t.Fatalf("sink got %d messages, want 2", len(got))
			}
			for _, m := range got {
				hdr, _, _ := bytes.Cut(m, []byte("\r\n\r\n"))
				if bytes.Contains(bytes.ToLower(hdr), []byte("return-path")) || bytes.Contains(m, []byte("bank.example")) {
					t.Errorf("Return-Path reached the sink:\n%s", m)
				}
				if !bytes.HasSuffix(m, []byte("\r\n\r\nbody\r\n")) {
					t.Errorf("body changed:\n%q", m)
				}
			}
		})
	}
}

// A JSON request whose sender's display name holds a backslash next to
// non-ASCII letters: net/mail wrote it in a form it cannot read back, so the
// HTTP API refused its own composed message (found by FuzzCompose).
func TestComposedBackslashNameThroughHTTP(t *testing.T) {
	_, httpURL, sink := frontEnds(t)
	body := `{"from":"\"J\u00fcrgen \\\\ M\u00fcller\" <app@acme.example>","to":["to@dest.example"],"subject":"x","text":"x"}`
	req, err := http.NewRequest(http.MethodPost, httpURL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+feToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	got := sink.take()
	if len(got) != 1 {
		t.Fatalf("sink got %d messages", len(got))
	}
	m, err := mail.ReadMessage(bytes.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Jürgen \\ Müller" || from[0].Address != "app@acme.example" {
		t.Fatalf("From %q read back as %v, %v", m.Header.Get("From"), from, err)
	}
}
