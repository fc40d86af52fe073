package auth_test

// The failed-auth throttle through the real front ends: a Registry behind an
// SMTP server and the HTTP API on 127.0.0.1:0, clients dialling from
// 127.0.0.1 and 127.0.0.2.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/gatewaytest"
)

const feBurst = 4 // failures allowed before the throttle answers

type countSink struct{ n atomic.Int64 }

func (s *countSink) Send(context.Context, *gateway.Envelope) (string, error) {
	return fmt.Sprintf("ses-%d", s.n.Add(1)), nil
}

type feStack struct {
	smtpAddr, httpURL string
	a, b              auth.Minted
	sink              *countSink
}

// newFEStack starts both front ends over one Registry holding tenants "a"
// and "b". The clock stands still and the budget refills once an hour, so
// nothing refills during the test.
func newFEStack(t *testing.T) *feStack {
	t.Helper()
	s := &feStack{a: auth.NewToken("a"), b: auth.NewToken("b"), sink: &countSink{}}
	now := time.Unix(1_700_000_000, 0)
	reg := auth.NewRegistry(auth.RegistryOptions{
		Entries: []auth.Entry{
			{Record: s.a.Record, Tenant: &gateway.Tenant{ID: "a", Identities: []string{"@a.example"}}},
			{Record: s.b.Record, Tenant: &gateway.Tenant{ID: "b", Identities: []string{"@b.example"}}},
		},
		FailureBurst: feBurst, FailureRate: rate.Every(time.Hour),
		Now: func() time.Time { return now },
	})
	log := slog.New(slog.DiscardHandler)
	p := gateway.NewPipeline(gateway.Options{Auth: reg, Sink: s.sink, Logger: log})
	s.smtpAddr, s.httpURL = gatewaytest.FrontEnds(t, p)
	return s
}

// dialer dials from the given loopback address.
func dialer(from string) *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
}

// wrongTokens are the failures a misconfigured or hostile client of tenant
// "a" presents: a's key id with a wrong secret, and tokens with unknown key
// ids.
func wrongTokens(a auth.Minted, i int) string {
	if i%2 == 0 {
		return a.Token[:len(a.Token)-4] + fmt.Sprintf("%04d", i%10000)
	}
	return auth.NewToken("x").Token
}

// smtpAuth connects from src, authenticates with user and token and returns
// the SMTP reply code (235 on success). After a success it sends a message.
func (s *feStack) smtpAuth(t *testing.T, src, user, token string) int {
	t.Helper()
	conn, err := dialer(src).Dial("tcp", s.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	err = c.Auth(sasl.NewPlainClient("", user, token))
	var se *smtp.SMTPError
	switch {
	case err == nil:
		from := "app@" + user + ".example"
		if err := c.SendMail(from, []string{"to@dest.example"},
			strings.NewReader("From: "+from+"\r\nTo: to@dest.example\r\nSubject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatalf("SendMail after AUTH: %v", err)
		}
		return 235
	case errors.As(err, &se):
		if se.Code == 454 && se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
			t.Fatalf("throttled with %v, want 4.7.0", se.EnhancedCode)
		}
		return se.Code
	}
	t.Fatalf("AUTH: %v", err)
	return 0
}

// httpSend posts a JSON message from src with token and returns the status
// and the JSON error code.
func (s *feStack) httpSend(t *testing.T, src, from, token string) (int, string, http.Header) {
	t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer(src).DialContext, DisableKeepAlives: true}}
	body := fmt.Sprintf(`{"from":%q,"to":["to@dest.example"],"subject":"x","text":"x"}`, from)
	req, err := http.NewRequest(http.MethodPost, s.httpURL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	code := ""
	if i := strings.Index(string(raw), `"code":"`); i >= 0 {
		code, _, _ = strings.Cut(string(raw[i+len(`"code":"`):]), `"`)
	}
	return resp.StatusCode, code, resp.Header
}

func TestThrottleSparesCorrectTokensSMTP(t *testing.T) {
	s := newFEStack(t)
	// 127.0.0.1 hammers tenant a with wrong tokens until throttled.
	throttledAt := -1
	for i := 0; i < 4*feBurst && throttledAt < 0; i++ {
		switch code := s.smtpAuth(t, "127.0.0.1", "a", wrongTokens(s.a, i)); code {
		case 535:
		case 454:
			throttledAt = i
		default:
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	if throttledAt < 0 {
		t.Fatalf("never throttled after %d failures", 4*feBurst)
	}
	t.Logf("throttled after %d failures", throttledAt)
	// Guessing stays throttled, for a's key id and for unknown key ids.
	for i := 0; i < 4; i++ {
		if code := s.smtpAuth(t, "127.0.0.1", "a", wrongTokens(s.a, i)); code != 454 {
			t.Fatalf("guess %d after the throttle: %d, want 454", i, code)
		}
	}
	// Tenant b's correct token from the same source still authenticates.
	if code := s.smtpAuth(t, "127.0.0.1", "b", s.b.Token); code != 235 {
		t.Fatalf("b's correct token from the throttled source: %d, want 235", code)
	}
	// a's correct token from another source too.
	if code := s.smtpAuth(t, "127.0.0.2", "a", s.a.Token); code != 235 {
		t.Fatalf("a's correct token from 127.0.0.2: %d, want 235", code)
	}
	if n := s.sink.n.Load(); n != 2 {
		t.Fatalf("sink got %d messages, want 2", n)
	}
}

func TestThrottleSparesCorrectTokensHTTP(t *testing.T) {
	s := newFEStack(t)
	throttledAt := -1
	for i := 0; i < 4*feBurst && throttledAt < 0; i++ {
		status, code, hdr := s.httpSend(t, "127.0.0.1", "app@a.example", wrongTokens(s.a, i))
		switch {
		case status == http.StatusUnauthorized && code == "bad_credentials":
		case status == http.StatusTooManyRequests && code == "auth_throttled":
			if hdr.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			throttledAt = i
		default:
			t.Fatalf("attempt %d: %d %s", i, status, code)
		}
	}
	if throttledAt < 0 {
		t.Fatalf("never throttled after %d failures", 4*feBurst)
	}
	t.Logf("throttled after %d failures", throttledAt)
	for i := 0; i < 4; i++ {
		if status, code, _ := s.httpSend(t, "127.0.0.1", "app@a.example", wrongTokens(s.a, i)); status != http.StatusTooManyRequests {
			t.Fatalf("guess %d after the throttle: %d %s, want 429", i, status, code)
		}
	}
	if status, code, _ := s.httpSend(t, "127.0.0.1", "app@b.example", s.b.Token); status != http.StatusOK {
		t.Fatalf("b's correct token from the throttled source: %d %s, want 200", status, code)
	}
	if status, code, _ := s.httpSend(t, "127.0.0.2", "app@a.example", s.a.Token); status != http.StatusOK {
		t.Fatalf("a's correct token from 127.0.0.2: %d %s, want 200", status, code)
	}
	if n := s.sink.n.Load(); n != 2 {
		t.Fatalf("sink got %d messages, want 2", n)
	}
}
