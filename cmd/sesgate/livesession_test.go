package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
)

// liveSession is one SMTP session kept open across policy changes.
type liveSession struct {
	t *testing.T
	c *smtp.Client
}

// openSession connects to addr and authenticates as user with token.
func openSession(t *testing.T, addr, user, token string) *liveSession {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", user, token)); err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	return &liveSession{t: t, c: c}
}

// send sends one message on the open session; nil on 250.
func (s *liveSession) send(from, to string) error {
	if err := s.c.Mail(from, nil); err != nil {
		return err
	}
	if err := s.c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := s.c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "From: "+from+"\r\nSubject: live\r\n\r\nx\r\n"); err != nil {
		return err
	}
	return w.Close()
}

// mailRefused tries MAIL FROM on the open session: false (and RSET) when it
// is accepted, true when it is refused with code and enhanced code want.
// Any other answer fails the test.
func (s *liveSession) mailRefused(from string, code int, want smtp.EnhancedCode) bool {
	s.t.Helper()
	err := s.c.Mail(from, nil)
	if err == nil {
		if err := s.c.Reset(); err != nil {
			s.t.Fatalf("RSET: %v", err)
		}
		return false
	}
	if c, ec := smtpCode(err); c != code || ec != want {
		s.t.Fatalf("MAIL FROM %s: %v, want %d %v", from, err, code, want)
	}
	return true
}

// closed reports whether the server ended the session: NOOP fails.
func (s *liveSession) closed() bool { return s.c.Noop() != nil }

// writeLivePolicy writes a policy with the tenants billing (identities,
// frozen) and, when withOther, other.
func writeLivePolicy(t *testing.T, path, adminLine, billingLine, billingIdentity string, frozen bool, otherLine string) {
	t.Helper()
	p := "admin_tokens:\n  - " + adminLine + "\n" +
		"tenants:\n  - id: billing\n    tokens:\n      - " + billingLine + "\n" +
		"    identities: [\"" + billingIdentity + "\"]\n    limits: {rate: 1000, burst: 1000}\n"
	if frozen {
		p += "    frozen: true\n"
	}
	if otherLine != "" {
		p += "  - id: other\n    tokens:\n      - " + otherLine + "\n    identities: [\"@other.example.com\"]\n"
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(p), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as a ConfigMap update
		t.Fatal(err)
	}
}

// TestLiveSessionSeesRevocationAndPolicy keeps SMTP sessions open on two
// replicas (one real Redis, SES behind them) while the token is revoked
// through the admin API, the tenant is frozen, changed and removed in the
// policy file: each session's next MAIL, or the end of a DATA in flight,
// is decided on the current token table and tenant.
func TestLiveSessionSeesRevocationAndPolicy(t *testing.T) {
	rs := redistest.Start(t)
	ses, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tok, tokLine, adminTok, adminLine := mintPolicyTokens(t)
	oout := runCLI(t, nil, "token", "new", "--tenant", "other")
	otherTok := regexp.MustCompile(`(sg_\S+)`).FindString(oout)
	otherLine := regexp.MustCompile(`- (\{key_id: .*\})`).FindStringSubmatch(oout)[1]
	path := filepath.Join(t.TempDir(), "policy.yml")
	writeLivePolicy(t, path, adminLine, tokLine, "@billing.example.com", false, otherLine)
	env := append(sesEnv(t, url), "SESGATE_REDIS_URL=redis://"+rs.Addr, "SESGATE_RECIPIENT_KEY=0123456789abcdef0123456789abcdef")
	g1 := startGateway(t, env, "--config", path, "--reload-poll", "100ms")
	g2 := startGateway(t, env, "--config", path, "--reload-poll", "100ms")
	const from, to = "app@billing.example.com", "a@example.org"
	badCreds := smtp.EnhancedCode{5, 7, 8}
	httpMsg := map[string]any{"from": from, "to": []string{to}, "subject": "x", "text": "x"}

	mint := func(t *testing.T) (token, kid string) {
		st, body := adminCall(t, g1.adminAddr, adminTok, "POST", "/v1/tokens", map[string]string{"tenant": "billing"})
		if st != 201 {
			t.Fatalf("mint: %d %v", st, body)
		}
		token, kid = body["token"].(string), body["key_id"].(string)
		for _, g := range []*gatewayProc{g1, g2} {
			within(t, 2*time.Second, "minted token accepted on "+g.httpAddr, func() bool { return postJSON(t, g.httpAddr, token, httpMsg).status == 200 })
		}
		return token, kid
	}
	revoke := func(t *testing.T, kid string) time.Time {
		if st, body := adminCall(t, g1.adminAddr, adminTok, "POST", "/v1/tokens/"+kid+"/revoke", map[string]string{}); st != 200 {
			t.Fatalf("revoke: %d %v", st, body)
		}
		return time.Now()
	}

	// (a) A revoked token: the next MAIL of an open session is refused
	// within a second, on both replicas, and the session ends.
	t.Run("revoked", func(t *testing.T) {
		minted, kid := mint(t)
		live := []*liveSession{openSession(t, g1.smtpAddr, "billing", minted), openSession(t, g2.smtpAddr, "billing", minted)}
		for i, s := range live {
			if err := s.send(from, to); err != nil {
				t.Fatalf("session %d before the revocation: %v", i+1, err)
			}
		}
		revoked := revoke(t, kid)
		for i, s := range live {
			within(t, time.Second-time.Since(revoked), "revoked token refused at MAIL on replica "+string(rune('1'+i)), func() bool {
				return s.mailRefused(from, 535, badCreds)
			})
			if !s.closed() {
				t.Fatalf("session %d still open after its token was revoked", i+1)
			}
		}
		t.Logf("revocation refused at MAIL on both replicas %v after the revoke call", time.Since(revoked))
	})

	// (d) A message whose DATA is in flight when the revocation lands is
	// refused at the end of DATA; nothing reaches SES.
	t.Run("revoked in DATA", func(t *testing.T) {
		minted, kid := mint(t)
		s := openSession(t, g2.smtpAddr, "billing", minted)
		if err := s.c.Mail(from, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.c.Rcpt(to, nil); err != nil {
			t.Fatal(err)
		}
		w, err := s.c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "From: "+from+"\r\nSubject: in flight\r\n\r\n")
		revoke(t, kid)
		// The probe posts a real message, which SES gets while the
		// revocation has not reached replica 2 yet: count from after it.
		within(t, time.Second, "revocation applied on replica 2", func() bool { return postJSON(t, g2.httpAddr, minted, httpMsg).status == 401 })
		sentBefore := len(ses.Sent())
		io.WriteString(w, "the rest of the body\r\n")
		if code, ec := smtpCode(w.Close()); code != 535 || ec != badCreds {
			t.Fatalf("end of DATA after the revocation: %d %v, want 535 5.7.8", code, ec)
		}
		if n := len(ses.Sent()); n != sentBefore {
			t.Fatalf("%d messages reached SES after the revocation", n-sentBefore)
		}
	})

	// (b) The policy file freezes billing: the open session's next MAIL
	// gets 451 4.7.1 on both replicas; unfrozen with a new identity, the
	// same session is checked against the new tenant.
	t.Run("frozen and changed in the policy", func(t *testing.T) {
		live := []*liveSession{openSession(t, g1.smtpAddr, "billing", tok), openSession(t, g2.smtpAddr, "billing", tok)}
		for i, s := range live {
			if err := s.send(from, to); err != nil {
				t.Fatalf("session %d before the freeze: %v", i+1, err)
			}
		}
		writeLivePolicy(t, path, adminLine, tokLine, "@billing.example.com", true, otherLine)
		for i, s := range live {
			within(t, 5*time.Second, "frozen in the policy file: 451 at MAIL on replica "+string(rune('1'+i)), func() bool {
				return s.mailRefused(from, 451, smtp.EnhancedCode{4, 7, 1})
			})
		}
		writeLivePolicy(t, path, adminLine, tokLine, "@new.example.com", false, otherLine)
		for i, s := range live {
			within(t, 5*time.Second, "new identity on replica "+string(rune('1'+i)), func() bool {
				return s.c.Mail("app@new.example.com", nil) == nil
			})
			s.c.Reset()
			if !s.mailRefused(from, 550, smtp.EnhancedCode{5, 7, 1}) {
				t.Fatalf("session %d: the old identity still accepted after the reload", i+1)
			}
			if err := s.send("app@new.example.com", to); err != nil {
				t.Fatalf("session %d with the new identity: %v", i+1, err)
			}
		}
	})

	// (c) The tenant other is removed from the policy: its open session
	// is refused at the next MAIL.
	t.Run("tenant removed", func(t *testing.T) {
		os2 := openSession(t, g1.smtpAddr, "other", otherTok)
		if err := os2.send("app@other.example.com", to); err != nil {
			t.Fatalf("tenant other before its removal: %v", err)
		}
		writeLivePolicy(t, path, adminLine, tokLine, "@new.example.com", false, "")
		within(t, 5*time.Second, "removed tenant refused at MAIL", func() bool {
			return os2.mailRefused("app@other.example.com", 535, badCreds)
		})
	})
}
