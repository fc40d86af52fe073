package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "a@example.com", "a@example.com", true},
		{"domain lowercased", "Bob@Example.COM", "Bob@example.com", true},
		{"plus and dots", "a.b+c@mail.example.org", "a.b+c@mail.example.org", true},
		{"empty", "", "", false},
		{"no at", "example.com", "", false},
		{"no domain", "a@", "", false},
		{"single label domain", "a@localhost", "", false},
		{"leading dot", ".a@example.com", "", false},
		{"double dot", "a..b@example.com", "", false},
		{"8-bit local", "jos\u00e9@example.com", "", false},
		{"space", "a b@example.com", "", false},
		{"angle", "<a@example.com>", "", false},
		{"crlf", "a@example.com\r\nRCPT TO:<b@example.com>", "", false},
		{"long local", strings.Repeat("a", 65) + "@example.com", "", false},
		{"hyphen label", "a@-x.example.com", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddress(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("ParseAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if AsError(err) == nil || AsError(err).Code != CodeInvalidAddress {
				t.Fatalf("ParseAddress(%q) = %q, %v; want invalid_address", tc.in, got, err)
			}
		})
	}
}

func TestTenantMatching(t *testing.T) {
	ten := &Tenant{
		Identities:       []string{"noreply@example.com", "@billing.example.com"},
		RecipientDomains: []string{"customer.org", "*.partner.net"},
		SourceNets:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
	senders := map[string]bool{
		"noreply@example.com":       true,
		"NoReply@example.com":       true,
		"other@example.com":         false,
		"x@billing.example.com":     true,
		"x@sub.billing.example.com": false,
	}
	for addr, want := range senders {
		if got := ten.AllowsSender(addr); got != want {
			t.Errorf("AllowsSender(%q) = %v", addr, got)
		}
	}
	rcpts := map[string]bool{
		"a@customer.org":     true,
		"a@sub.customer.org": false,
		"a@x.partner.net":    true,
		"a@partner.net":      false,
		"a@evil.org":         false,
	}
	for addr, want := range rcpts {
		if got := ten.AllowsRecipient(addr); got != want {
			t.Errorf("AllowsRecipient(%q) = %v", addr, got)
		}
	}
	if !ten.AllowsSource(netip.MustParseAddr("10.1.2.3")) || ten.AllowsSource(netip.MustParseAddr("192.0.2.1")) {
		t.Error("AllowsSource wrong")
	}
	if !ten.AllowsSource(netip.MustParseAddr("::ffff:10.1.2.3")) {
		t.Error("AllowsSource does not unmap IPv4-in-IPv6")
	}
	any := &Tenant{Identities: []string{"*"}}
	if !any.AllowsSender("who@ever.com") || !any.AllowsRecipient("a@b.cd") {
		t.Error("wildcard tenant refuses")
	}
}

func TestEffectiveBurst(t *testing.T) {
	for _, tc := range []struct {
		name      string
		l         Limits
		want, dom int
	}{
		{"explicit", Limits{Rate: 5, Burst: 9, PerDomainRate: 5, PerDomainBurst: 7}, 9, 7},
		{"rounded up", Limits{Rate: 2.5, PerDomainRate: 3.2}, 3, 4},
		{"at least one", Limits{Rate: 0.1, PerDomainRate: 0.01}, 1, 1},
		{"no rate", Limits{}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.EffectiveBurst(); got != tc.want {
				t.Fatalf("EffectiveBurst = %d; want %d", got, tc.want)
			}
			if got := tc.l.EffectivePerDomainBurst(); got != tc.dom {
				t.Fatalf("EffectivePerDomainBurst = %d; want %d", got, tc.dom)
			}
		})
	}
}

func TestPrepareMessage(t *testing.T) {
	long := strings.Repeat("x", 999)
	tests := []struct {
		name     string
		raw      string
		eightBit bool
		code     Code // 0 with wantOK
		wantOK   bool
		wantFrom []string
		wantNot  string // must not appear in output
		wantHas  string // must appear in output
	}{
		{name: "ok", raw: "From: A <a@example.com>\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n", wantOK: true, wantFrom: []string{"a@example.com"}, wantHas: "Subject: hi\r\n\r\nbody\r\n"},
		{name: "bcc stripped", raw: "From: a@example.com\r\nBcc: secret@example.org,\r\n  other@example.org\r\nTo: b@example.org\r\n\r\nbody\r\n", wantOK: true, wantFrom: []string{"a@example.com"}, wantNot: "secret@", wantHas: "From: a@example.com\r\nTo: b@example.org\r\n\r\n"},
		{name: "resent-bcc stripped", raw: "From: a@example.com\nResent-Bcc: s@example.org\n\nbody\n", wantOK: true, wantFrom: []string{"a@example.com"}, wantNot: "s@example.org"},
		{name: "x-ses headers stripped", raw: "From: a@example.com\r\nX-SES-CONFIGURATION-SET: no-events\r\nx-ses-message-tags: t=1\r\nX-Sesame: kept\r\n\r\nx\r\n", wantOK: true, wantFrom: []string{"a@example.com"}, wantNot: "no-events", wantHas: "X-Sesame: kept\r\n"},
		{name: "bare LF to CRLF", raw: "From: a@example.com\n\nline1\nline2\n", wantOK: true, wantFrom: []string{"a@example.com"}, wantHas: "\r\n\r\nline1\r\nline2\r\n"},
		{name: "encoded display name", raw: "From: =?utf-8?q?Jos=C3=A9?= <j@example.com>\r\n\r\nx\r\n", wantOK: true, wantFrom: []string{"j@example.com"}},
		{name: "8bit with 8BITMIME", raw: "From: a@example.com\r\n\r\ncaf\u00e9\r\n", eightBit: true, wantOK: true, wantFrom: []string{"a@example.com"}},
		{name: "headers only", raw: "From: a@example.com\r\nSubject: x", wantOK: true, wantFrom: []string{"a@example.com"}},
		{name: "empty", raw: " \r\n", code: CodeBadContent},
		{name: "no from", raw: "To: b@example.org\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "two from", raw: "From: a@example.com\r\nFrom: c@example.com\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "bad from", raw: "From: not an address\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "long line", raw: "From: a@example.com\r\n\r\n" + long + "\r\n", code: CodeBadContent},
		{name: "8bit without 8BITMIME", raw: "From: a@example.com\r\n\r\ncaf\u00e9\r\n", code: CodeBadContent},
		{name: "NUL", raw: "From: a@example.com\r\n\r\na\x00b\r\n", code: CodeBadContent},
		{name: "malformed header", raw: "From: a@example.com\r\nnot a header\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "leading continuation", raw: " folded\r\nFrom: a@example.com\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "return-path stripped", raw: "Return-Path: <bounce@evil.example>\r\nFrom: a@example.com\r\nreturn-path:\r\n <x@evil.example>\r\n\r\nx\r\n", wantOK: true, wantFrom: []string{"a@example.com"}, wantNot: "evil.example", wantHas: "From: a@example.com\r\n\r\nx\r\n"},
		{name: "two sender", raw: "From: a@example.com\r\nSender: a@example.com\r\nSENDER: b@example.com\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "bad sender", raw: "From: a@example.com\r\nSender: not an address\r\n\r\nx\r\n", code: CodeBadContent},
		{name: "bad resent-from", raw: "From: a@example.com\r\nResent-From: a@localhost\r\n\r\nx\r\n", code: CodeBadContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := PrepareMessage([]byte(tc.raw), tc.eightBit)
			if !tc.wantOK {
				if ge := AsError(err); ge == nil || ge.Code != tc.code {
					t.Fatalf("err = %v; want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(m.From, ",") != strings.Join(tc.wantFrom, ",") {
				t.Fatalf("From = %v; want %v", m.From, tc.wantFrom)
			}
			out := string(m.Data)
			if tc.wantNot != "" && strings.Contains(out, tc.wantNot) {
				t.Fatalf("output still contains %q:\n%s", tc.wantNot, out)
			}
			if tc.wantHas != "" && !strings.Contains(out, tc.wantHas) {
				t.Fatalf("output lacks %q:\n%q", tc.wantHas, out)
			}
			if strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") {
				t.Fatalf("bare LF left in output: %q", out)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	a, b := NewID(t0), NewID(t0.Add(time.Millisecond))
	if len(a) != 26 || a == b || a >= b {
		t.Fatalf("ids %q %q: want 26 chars, distinct, sortable", a, b)
	}
}

// recordingSink is a fault-injecting sink for pipeline tests.
type recordingSink struct {
	got []*Envelope
	err error
}

func (s *recordingSink) Send(_ context.Context, env *Envelope) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	s.got = append(s.got, env)
	return "ses-" + env.ID, nil
}

type denyLimiter struct{}

func (denyLimiter) Admit(context.Context, *Tenant, []string) ([]*Error, error) {
	return nil, &Error{Code: CodeRateLimited, Msg: "rate limit exceeded", RetryAfter: time.Second}
}

// suppressLimiter drops one recipient as suppressed.
type suppressLimiter struct{ addr string }

func (s suppressLimiter) Admit(_ context.Context, _ *Tenant, rcpts []string) ([]*Error, error) {
	for _, r := range rcpts {
		if r == s.addr {
			return []*Error{{Code: CodeSuppressedBounce, Msg: "suppressed", Recipient: r}}, nil
		}
	}
	return nil, nil
}

func TestSubmit(t *testing.T) {
	ten := &Tenant{ID: "t", Identities: []string{"@example.com"}, Limits: Limits{MaxRecipients: 2, MaxMessageBytes: 200}}
	msg := []byte("From: a@example.com\r\nBcc: hidden@example.org\r\n\r\nhi\r\n")
	tests := []struct {
		name    string
		env     Envelope
		sinkErr error
		limiter Limiter
		code    Code
		ok      bool
	}{
		{name: "ok", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org", "hidden@example.org"}, Data: msg}, ok: true},
		{name: "duplicates collapse", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org", "x@example.org"}, Data: msg}, ok: true},
		{name: "no tenant", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: msg}, code: CodeAuthRequired},
		{name: "sender", env: Envelope{From: "a@evil.com", Recipients: []string{"x@example.org"}, Data: msg}, code: CodeSenderNotAllowed},
		{name: "header from", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: []byte("From: ceo@evil.com\r\n\r\nx\r\n")}, code: CodeSenderNotAllowed},
		{name: "header sender", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: []byte("From: a@example.com\r\nSender: ceo@evil.com\r\n\r\nx\r\n")}, code: CodeSenderNotAllowed},
		{name: "header resent-sender", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: []byte("From: a@example.com\r\nResent-From: a@example.com\r\nResent-Sender: ceo@evil.com\r\n\r\nx\r\n")}, code: CodeSenderNotAllowed},
		{name: "no rcpt", env: Envelope{From: "a@example.com", Data: msg}, code: CodeNoRecipients},
		{name: "too many", env: Envelope{From: "a@example.com", Recipients: []string{"a@example.org", "b@example.org", "c@example.org"}, Data: msg}, code: CodeTooManyRecipients},
		{name: "bad rcpt", env: Envelope{From: "a@example.com", Recipients: []string{"nope"}, Data: msg}, code: CodeInvalidAddress},
		{name: "too large", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: append(bytes.Clone(msg), strings.Repeat("x", 300)...)}, code: CodeTooLarge},
		{name: "suppressed dropped", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org", "gone@example.org"}, Data: msg}, limiter: suppressLimiter{"gone@example.org"}, ok: true},
		{name: "frozen by policy", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: msg}, limiter: denyLimiter{}, code: CodeFrozen},
		{name: "rate", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: msg}, limiter: denyLimiter{}, code: CodeRateLimited},
		{name: "sink error", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: msg}, sinkErr: Errorf(CodeUpstreamThrottled, "slow down"), code: CodeUpstreamThrottled},
		{name: "sink raw error", env: Envelope{From: "a@example.com", Recipients: []string{"x@example.org"}, Data: msg}, sinkErr: errors.New("boom"), code: CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{err: tc.sinkErr}
			p := NewPipeline(Options{Sink: sink, Limiter: tc.limiter})
			env := tc.env
			switch tc.name {
			case "no tenant":
			case "frozen by policy":
				frozen := *ten
				frozen.Frozen = true
				env.Tenant = &frozen
			default:
				env.Tenant = ten
			}
			res, err := p.Submit(context.Background(), &env)
			if !tc.ok {
				if ge := AsError(err); ge == nil || ge.Code != tc.code || res != nil {
					t.Fatalf("res=%v err=%v; want %s", res, err, tc.code)
				}
				if len(sink.got) != 0 {
					t.Fatal("refused message reached the sink")
				}
				return
			}
			if err != nil || res.ProviderID == "" || res.ID == "" {
				t.Fatalf("res=%v err=%v", res, err)
			}
			if len(sink.got) != 1 || bytes.Contains(sink.got[0].Data, []byte("Bcc")) {
				t.Fatalf("sink got %d messages / Bcc not stripped", len(sink.got))
			}
			if tc.name == "duplicates collapse" && len(sink.got[0].Recipients) != 1 {
				t.Fatalf("recipients %v", sink.got[0].Recipients)
			}
			if tc.name == "suppressed dropped" {
				if got := sink.got[0].Recipients; len(got) != 1 || got[0] != "x@example.org" {
					t.Fatalf("sink recipients %v", got)
				}
				if len(res.Rejected) != 1 || res.Rejected[0].Recipient != "gone@example.org" || res.Rejected[0].Code != CodeSuppressedBounce {
					t.Fatalf("rejected %v", res.Rejected)
				}
			}
		})
	}
}

func TestCodesComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Codes() {
		s := c.String()
		if s == "" || strings.HasPrefix(s, "code_") || seen[s] {
			t.Fatalf("code %d has name %q (missing or duplicate)", int(c), s)
		}
		seen[s] = true
	}
}

func TestPrepareMessageOriginators(t *testing.T) {
	raw := "From: a@example.com\r\nSender: S <s@Example.COM>\r\nResent-From: r1@example.com, r2@example.net\r\nresent-sender: rs@example.com\r\nResent-From: r3@example.org\r\n\r\nx\r\n"
	m, err := PrepareMessage([]byte(raw), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Originator{{"Sender", "s@example.com"}, {"Resent-From", "r1@example.com"}, {"Resent-From", "r2@example.net"},
		{"Resent-Sender", "rs@example.com"}, {"Resent-From", "r3@example.org"}}
	if len(m.Originators) != len(want) {
		t.Fatalf("originators %v; want %v", m.Originators, want)
	}
	for i := range want {
		if m.Originators[i] != want[i] {
			t.Fatalf("originators %v; want %v", m.Originators, want)
		}
	}
	ten := &Tenant{Identities: []string{"@example.com", "@example.net", "r3@example.org"}}
	if err := m.CheckIdentities(ten); err != nil {
		t.Fatalf("all identities: %v", err)
	}
	ten.Identities = ten.Identities[:2]
	ge := AsError(m.CheckIdentities(ten))
	if ge == nil || ge.Code != CodeSenderNotAllowed || !strings.Contains(ge.Msg, "Resent-From header") {
		t.Fatalf("foreign Resent-From: %v", ge)
	}
}
