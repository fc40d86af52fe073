package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
)

func TestNewValidatesOptions(t *testing.T) {
	p := gateway.NewPipeline(gateway.Options{Auth: &testAuth{}, Sink: &testSink{}})
	smallBudget, _ := gateway.NewMemBudget(1 << 10)
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"pipeline required", Options{}, "Pipeline is required"},
		{"implicit TLS needs a config", Options{Pipeline: p, ImplicitTLS: true}, "ImplicitTLS needs a TLSConfig"},
		{"negative size", Options{Pipeline: p, MaxMessageBytes: -1}, "MaxMessageBytes must not be negative"},
		{"negative timeout", Options{Pipeline: p, ReadTimeout: -time.Second}, "ReadTimeout must not be negative"},
		{"bad domain", Options{Pipeline: p, Domain: "mx.test\r\n250 hi"}, "Domain must be a hostname"},
		{"buffer below message size", Options{Pipeline: p, MaxMessageBytes: 1 << 20, MaxBufferedBytes: 1 << 10}, "MaxBufferedBytes must be at least MaxMessageBytes"},
		{"per-source cap over the global cap", Options{Pipeline: p, MaxConnections: 10, MaxConnectionsPerSource: 11}, "MaxConnectionsPerSource (11) must not exceed MaxConnections (10)"},
		{"negative AUTH timeout", Options{Pipeline: p, AuthTimeout: -time.Second}, "AuthTimeout must not be negative"},
		{"negative pre-AUTH timeout", Options{Pipeline: p, PreAuthReadTimeout: -time.Second}, "PreAuthReadTimeout must not be negative"},
		{"shared budget below message size", Options{Pipeline: p, MaxMessageBytes: 1 << 20, Budget: smallBudget}, "Budget must be at least MaxMessageBytes"},
		{"shared budget and own buffer", Options{Pipeline: p, MaxBufferedBytes: 1 << 30, Budget: smallBudget}, "Budget or MaxBufferedBytes, not both"},
		{"defaults", Options{Pipeline: p}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := s.opts
			if o.MaxMessageBytes != 40<<20 || o.MaxRecipients != 50 || o.ReadTimeout != 60*time.Second ||
				o.WriteTimeout != 60*time.Second || o.MaxConnections != 1000 || o.Domain != "localhost" {
				t.Errorf("defaults not applied: %+v", o)
			}
			if o.MaxConnectionsPerSource != 100 || o.AuthTimeout != 30*time.Second || o.PreAuthReadTimeout != 10*time.Second {
				t.Errorf("flood defaults not applied: %+v", o)
			}
		})
	}
}

func TestPerSourceDefaultFollowsGlobalCap(t *testing.T) {
	p := gateway.NewPipeline(gateway.Options{Auth: &testAuth{}, Sink: &testSink{}})
	s, err := New(Options{Pipeline: p, MaxConnections: 20})
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.MaxConnectionsPerSource != 20 {
		t.Fatalf("MaxConnectionsPerSource = %d with MaxConnections 20, want 20", s.opts.MaxConnectionsPerSource)
	}
}

func TestServeRefusesListenerWhereAuthCannotWork(t *testing.T) {
	p := gateway.NewPipeline(gateway.Options{Auth: &testAuth{}, Sink: &testSink{}})
	s, err := New(Options{Pipeline: p, TreatAsPublic: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = s.Serve(l)
	if err == nil || !strings.Contains(err.Error(), "no TLS is configured") {
		t.Fatalf("Serve = %v, want a refusal", err)
	}
}

func TestIsLocal(t *testing.T) {
	tests := []struct {
		name string
		addr net.Addr
		want bool
	}{
		{"ipv4 loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25}, true},
		{"other loopback", &net.TCPAddr{IP: net.IPv4(127, 9, 9, 9), Port: 25}, true},
		{"ipv6 loopback", &net.TCPAddr{IP: net.IPv6loopback, Port: 25}, true},
		{"mapped loopback", &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 25}, true},
		{"private", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 25}, false},
		{"public", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 25}, false},
		{"unspecified", &net.TCPAddr{IP: net.IPv4zero, Port: 25}, false},
		{"unix socket", &net.UnixAddr{Name: "/run/sesgate.sock", Net: "unix"}, true},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isLocal(tt.addr); got != tt.want {
				t.Errorf("isLocal(%v) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name     string
		client   sasl.Client
		wantCode int // 0: success
		wantEnh  smtp.EnhancedCode
	}{
		{"plain ok", sasl.NewPlainClient("", "acme", acmeToken), 0, smtp.EnhancedCode{}},
		{"login ok", sasl.NewLoginClient("acme", acmeToken), 0, smtp.EnhancedCode{}},
		{"plain wrong token", sasl.NewPlainClient("", "acme", "sg_acme01_wrong"), 535, smtp.EnhancedCode{5, 7, 8}},
		{"login wrong token", sasl.NewLoginClient("acme", "sg_acme01_wrong"), 535, smtp.EnhancedCode{5, 7, 8}},
		{"token of another tenant", sasl.NewPlainClient("", "small", acmeToken), 535, smtp.EnhancedCode{5, 7, 8}},
		{"authorization identity", sasl.NewPlainClient("other", "acme", acmeToken), 535, smtp.EnhancedCode{5, 7, 8}},
		{"throttled", sasl.NewPlainClient("", "throttled", "sg_x_y"), 454, smtp.EnhancedCode{4, 7, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smtp.Dial(h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Auth(tt.client)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Auth: %v", err)
				}
				// Authenticated: a message goes through.
				if err := c.SendMail("app@acme.example", []string{"to@dest.example"},
					strings.NewReader(message("app@acme.example", "to@dest.example", "", "hi\r\n"))); err != nil {
					t.Fatalf("SendMail: %v", err)
				}
				return
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != tt.wantCode || se.EnhancedCode != tt.wantEnh {
				t.Fatalf("Auth error = %v, want %d %v", err, tt.wantCode, tt.wantEnh)
			}
		})
	}
	if n := len(h.sink.messages()); n != 2 {
		t.Errorf("sink got %d messages, want 2", n)
	}
	logs := h.logs.String()
	for _, secret := range []string{acmeToken, "sg_acme01_wrong", plainIR("acme", acmeToken)} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a token: %q", secret)
		}
	}
	if !strings.Contains(logs, "code=bad_credentials") || !strings.Contains(logs, "code=auth_throttled") {
		t.Errorf("log lacks the refused AUTH causes:\n%s", logs)
	}
}

func TestAuthLoginRaw(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name  string
		lines [][2]string // line to send, expected reply prefix
	}{
		{"without initial response", [][2]string{
			{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, // "Username:"
			{b64("acme"), "334 UGFzc3dvcmQ6"},  // "Password:"
			{b64(acmeToken), "235 2.0.0"},
		}},
		{"with initial response", [][2]string{
			{"AUTH LOGIN " + b64("acme"), "334 UGFzc3dvcmQ6"},
			{b64(acmeToken), "235 2.0.0"},
		}},
		{"wrong token", [][2]string{
			{"AUTH LOGIN " + b64("acme"), "334 UGFzc3dvcmQ6"},
			{b64("nope"), "535 5.7.8 authentication failed"},
		}},
		{"cancelled", [][2]string{
			{"AUTH LOGIN", "334 VXNlcm5hbWU6"},
			{"*", "501 5.0.0"},
		}},
		{"malformed plain", [][2]string{
			{"AUTH PLAIN " + b64("no-nul-separators"), "501 5.5.4 malformed authentication exchange"},
		}},
		{"unknown mechanism", [][2]string{
			{"AUTH CRAM-MD5", "501 5.5.4 unsupported authentication mechanism"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t)
			ehlo := c.cmd("EHLO client.test", "250")
			if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
				t.Fatalf("EHLO on loopback does not offer AUTH PLAIN LOGIN:\n%s", ehlo)
			}
			for _, l := range tt.lines {
				c.cmd(l[0], l[1])
			}
		})
	}
}

func TestAuthFailuresEndConnection(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t)
	c.cmd("EHLO client.test", "250")
	for i := 0; i < maxAuthFailures; i++ {
		c.cmd("AUTH PLAIN "+plainIR("acme", "wrong"), "535 5.7.8")
	}
	c.expectClosed()
}

func TestMailRequiresAuth(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<app@acme.example>", "530 5.7.0 Authentication required")
	c.cmd("RCPT TO:<to@dest.example>", "502 5.5.1") // no transaction
	c.cmd("DATA", "502 5.5.1")
	if n := len(h.sink.messages()); n != 0 {
		t.Fatalf("sink got %d messages without AUTH", n)
	}
}

func TestPublicListenerRequiresTLS(t *testing.T) {
	h := newHarness(t, withTLS, func(_ *harness, o *Options) { o.TreatAsPublic = true })
	c := h.dial(t)
	ehlo := c.cmd("EHLO client.test", "250")
	if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("before TLS, EHLO must offer STARTTLS and no AUTH:\n%s", ehlo)
	}
	c.cmd("AUTH PLAIN "+plainIR("acme", acmeToken), "530 5.7.0 Must issue a STARTTLS command first")
	c.cmd("AUTH LOGIN", "530 5.7.0 Must issue a STARTTLS command first")
	c.cmd("MAIL FROM:<app@acme.example>", "530 5.7.0 Must issue a STARTTLS command first")

	c.cmd("STARTTLS", "220 ")
	tc := tlsClient(t, c, h)
	ehlo = tc.cmd("EHLO client.test", "250")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("after TLS, EHLO must offer AUTH and no STARTTLS:\n%s", ehlo)
	}
	tc.cmd("AUTH PLAIN "+plainIR("acme", acmeToken), "235 2.0.0")
	tc.cmd("MAIL FROM:<app@acme.example>", "250")
	tc.cmd("RCPT TO:<to@dest.example>", "250")
	if got := tc.data(message("app@acme.example", "to@dest.example", "", "over TLS\r\n")); !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("DATA reply %q", got)
	}
	if n := len(h.sink.messages()); n != 1 {
		t.Fatalf("sink got %d messages, want 1", n)
	}
}

// tlsClient upgrades a raw client after its STARTTLS was answered 220.
func tlsClient(t *testing.T, c *rawClient, h *harness) *rawClient {
	t.Helper()
	conn := tlsClientConn(c.conn, h)
	if err := conn.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return newRawClient(t, conn)
}

func TestAllowInsecureAuth(t *testing.T) {
	h := newHarness(t, func(_ *harness, o *Options) {
		o.TreatAsPublic = true
		o.AllowInsecureAuth = true
	})
	c := h.dial(t)
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example>", "250")
}

func TestImplicitTLS(t *testing.T) {
	h := newHarness(t, withTLS, func(_ *harness, o *Options) {
		o.ImplicitTLS = true
		o.TreatAsPublic = true
	})
	c, err := smtp.DialTLS(h.addr, h.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on an implicit TLS connection")
	}
	if err := c.Auth(sasl.NewPlainClient("", "acme", acmeToken)); err != nil {
		t.Fatalf("Auth: %v", err)
	}
	if err := c.SendMail("app@acme.example", []string{"to@dest.example"},
		strings.NewReader(message("app@acme.example", "to@dest.example", "", "implicit\r\n"))); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if msgs := h.sink.messages(); len(msgs) != 1 || msgs[0].Tenant.ID != "acme" || msgs[0].Via != "smtp" {
		t.Fatalf("sink got %+v", msgs)
	}
}

func TestSenderChecks(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name     string
		mailFrom string
		header   string
		wantMail string
		wantData string
	}{
		{"envelope sender not allowed", "app@evil.example", "app@acme.example", "550 5.7.1 sender not allowed", ""},
		{"invalid envelope sender", "app@localhost", "app@acme.example", "553 5.1.3", ""},
		{"null sender", "", "app@acme.example", "250", "250 2.0.0 Ok"},
		{"null sender, From not allowed", "", "boss@evil.example", "250", "550 5.7.1 From header address not allowed"},
		{"null sender, no From", "", "", "250", "554 5.6.0 message has no From header"},
		{"header From not allowed", "app@acme.example", "boss@evil.example", "250", "550 5.7.1 From header address not allowed"},
		{"no header From", "app@acme.example", "", "250", "554 5.6.0 message has no From header"},
		{"allowed", "app@acme.example", "App <app@acme.example>", "250", "250 2.0.0 Ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t)
			c.login("acme", acmeToken)
			c.cmd("MAIL FROM:<"+tt.mailFrom+">", tt.wantMail)
			if tt.wantData == "" {
				return
			}
			c.cmd("RCPT TO:<to@dest.example>", "250")
			body := "Subject: x\r\n\r\nhello\r\n"
			if tt.header != "" {
				body = "From: " + tt.header + "\r\n" + body
			}
			if got := c.data(body); !strings.HasPrefix(got, tt.wantData) {
				t.Fatalf("DATA reply %q, want %q", got, tt.wantData)
			}
		})
	}
	msgs := h.sink.messages()
	if len(msgs) != 2 || msgs[0].From != "" || msgs[1].From != "app@acme.example" {
		t.Fatalf("sink got %d messages (%+v), want the null sender's (From \"\") and the allowed one", len(msgs), msgs)
	}
}

func TestRecipientLimits(t *testing.T) {
	tests := []struct {
		name     string
		user     string
		token    string
		from     string
		rcpts    []string
		wantRcpt []string // reply prefix per RCPT
		wantSent []string // envelope recipients the sink gets
	}{
		{
			name: "51st recipient refused, first 50 delivered",
			user: "acme", token: acmeToken, from: "app@acme.example",
			rcpts:    numbered("r", "dest.example", 51),
			wantRcpt: append(repeat("250", 50), "452 4.5.3"),
			wantSent: numbered("r", "dest.example", 50),
		},
		{
			name: "tenant limit of 3",
			user: "small", token: smallToken, from: "app@small.example",
			rcpts:    numbered("r", "ok.example", 4),
			wantRcpt: []string{"250", "250", "250", "452 4.5.3 too many recipients"},
			wantSent: numbered("r", "ok.example", 3),
		},
		{
			name: "bad recipients refused, good ones kept",
			user: "small", token: smallToken, from: "app@small.example",
			rcpts:    []string{"a@ok.example", "b@other.example", "c@localhost", "c@OK.example"},
			wantRcpt: []string{"250", "550 5.7.1 recipient domain not allowed", "553 5.1.3", "250"},
			wantSent: []string{"a@ok.example", "c@ok.example"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := h.dial(t)
			c.login(tt.user, tt.token)
			c.cmd("MAIL FROM:<"+tt.from+">", "250")
			for i, r := range tt.rcpts {
				c.cmd("RCPT TO:<"+r+">", tt.wantRcpt[i])
			}
			if got := c.data(message(tt.from, "list@ok.example", "", "hi\r\n")); !strings.HasPrefix(got, "250 2.0.0") {
				t.Fatalf("DATA reply %q", got)
			}
			msgs := h.sink.messages()
			if len(msgs) != 1 {
				t.Fatalf("sink got %d messages", len(msgs))
			}
			if got := strings.Join(msgs[0].Recipients, ","); got != strings.Join(tt.wantSent, ",") {
				t.Errorf("recipients %s, want %s", got, strings.Join(tt.wantSent, ","))
			}
		})
	}
}

func numbered(prefix, domain string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@%s", prefix, i+1, domain)
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// exactly returns a message of n bytes (CRLF line endings, n >= 100).
func exactly(n int) string {
	m := message("app@small.example", "to@ok.example", "", "")
	for len(m) < n {
		k := min(70, n-len(m)-2)
		m += strings.Repeat("x", max(k, 0)) + "\r\n"
	}
	if len(m) != n {
		panic(fmt.Sprintf("exactly(%d): %d bytes", n, len(m)))
	}
	return m
}

func TestMessageSize(t *testing.T) {
	big := func(n int) string {
		return message("app@small.example", "to@ok.example", "", strings.Repeat(strings.Repeat("x", 70)+"\r\n", n/72+1))
	}
	tests := []struct {
		name     string
		serverMx int64
		mail     string
		body     string
		wantMail string
		want     string
	}{
		{"over the tenant limit", 0, "MAIL FROM:<app@small.example>", big(3000), "250", "552 5.3.4 message exceeds 2000 bytes"},
		{"over the server limit", 1000, "MAIL FROM:<app@small.example>", big(5000), "250", "552 5.3.4 message exceeds 1000 bytes"},
		{"far over the server limit", 1000, "MAIL FROM:<app@small.example>", big(200000), "250", "552 5.3.4"},
		{"declared SIZE over the tenant limit", 0, "MAIL FROM:<app@small.example> SIZE=5000", "", "552 5.3.4 message exceeds 2000 bytes", ""},
		{"declared SIZE over the server limit", 1000, "MAIL FROM:<app@small.example> SIZE=1500", "", "552 5.3.4", ""},
		{"under the limits", 0, "MAIL FROM:<app@small.example> SIZE=500", big(500), "250", "250 2.0.0"},
		// The bounds are to the byte. (go-smtp refuses a message of exactly
		// the server limit: its reader stops at the limit before it sees
		// the end-of-data line.)
		{"one byte under the server limit", 1000, "MAIL FROM:<app@small.example> SIZE=999", exactly(999), "250", "250 2.0.0"},
		{"one byte over the server limit", 1000, "MAIL FROM:<app@small.example>", exactly(1001), "250", "552 5.3.4 message exceeds 1000 bytes"},
		{"exactly the tenant limit", 0, "MAIL FROM:<app@small.example>", exactly(2000), "250", "250 2.0.0"},
		{"one byte over the tenant limit", 0, "MAIL FROM:<app@small.example>", exactly(2001), "250", "552 5.3.4 message exceeds 2000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(_ *harness, o *Options) { o.MaxMessageBytes = tt.serverMx })
			c := h.dial(t)
			c.login("small", smallToken)
			c.cmd(tt.mail, tt.wantMail)
			if tt.want == "" {
				return
			}
			c.cmd("RCPT TO:<to@ok.example>", "250")
			if got := c.data(tt.body); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("DATA reply %q, want %q", got, tt.want)
			}
			// The connection stays usable.
			c.cmd("MAIL FROM:<app@small.example>", "250")
			c.cmd("RCPT TO:<to@ok.example>", "250")
			if got := c.data(message("app@small.example", "to@ok.example", "", "small\r\n")); !strings.HasPrefix(got, "250 2.0.0") {
				t.Fatalf("next message: %q", got)
			}
			wantSent := 1
			if strings.HasPrefix(tt.want, "250") {
				wantSent = 2
			}
			if n := len(h.sink.messages()); n != wantSent {
				t.Fatalf("sink got %d messages, want %d", n, wantSent)
			}
		})
	}
}

func TestContentChecks(t *testing.T) {
	tests := []struct {
		name      string
		mail      string
		body      string
		want      string
		wantClose bool // go-smtp closes after a line over its own limit
		want8bit  bool
	}{
		{"8-bit without 8BITMIME", "MAIL FROM:<app@acme.example>", message("app@acme.example", "to@dest.example", "", "caf\xc3\xa9\r\n"), "554 5.6.0 8-bit data without 8BITMIME", false, false},
		{"8-bit with 8BITMIME", "MAIL FROM:<app@acme.example> BODY=8BITMIME", message("app@acme.example", "to@dest.example", "", "caf\xc3\xa9\r\n"), "250 2.0.0", false, true},
		{"line of 1500 characters", "MAIL FROM:<app@acme.example>", message("app@acme.example", "to@dest.example", "", strings.Repeat("y", 1500)+"\r\n"), "554 5.6.0 line longer than 998 characters", false, false},
		{"line of 999 characters", "MAIL FROM:<app@acme.example>", message("app@acme.example", "to@dest.example", "", strings.Repeat("y", 999)+"\r\n"), "554 5.6.0 line longer than 998 characters", false, false},
		{"line of 998 characters", "MAIL FROM:<app@acme.example>", message("app@acme.example", "to@dest.example", "", strings.Repeat("y", 998)+"\r\n"), "250 2.0.0", false, false},
		{"line of 3000 characters", "MAIL FROM:<app@acme.example>", message("app@acme.example", "to@dest.example", "", strings.Repeat("z", 3000)+"\r\n"), "554 5.6.0 line longer than 998 characters", true, false},
		{"SMTPUTF8 not offered", "MAIL FROM:<app@acme.example> SMTPUTF8", "", "504 5.5.4", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := h.dial(t)
			ehlo := c.cmd("EHLO client.test", "250")
			for _, ext := range []string{"8BITMIME", "SIZE 41943040", "PIPELINING"} {
				if !strings.Contains(ehlo, ext) {
					t.Errorf("EHLO lacks %s:\n%s", ext, ehlo)
				}
			}
			if strings.Contains(ehlo, "SMTPUTF8") {
				t.Errorf("EHLO offers SMTPUTF8:\n%s", ehlo)
			}
			c.cmd("AUTH PLAIN "+plainIR("acme", acmeToken), "235")
			if tt.body == "" {
				c.cmd(tt.mail, tt.want)
				return
			}
			c.cmd(tt.mail, "250")
			c.cmd("RCPT TO:<to@dest.example>", "250")
			if got := c.data(tt.body); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("DATA reply %q, want %q", got, tt.want)
			}
			if tt.wantClose {
				c.expect("500 5.4.0 Too long line")
				c.expectClosed()
				return
			}
			c.cmd("NOOP", "250") // still usable
			msgs := h.sink.messages()
			if strings.HasPrefix(tt.want, "250") {
				if len(msgs) != 1 || msgs[0].EightBit != tt.want8bit {
					t.Fatalf("sink got %+v, want one message with EightBit=%v", msgs, tt.want8bit)
				}
			} else if len(msgs) != 0 {
				t.Fatalf("sink got %d messages, want none", len(msgs))
			}
		})
	}
}

func TestChunking(t *testing.T) {
	msg := message("app@small.example", "to@ok.example", "", "chunked body\r\n")
	big := message("app@small.example", "to@ok.example", "", strings.Repeat("b", 900)+"\r\n"+strings.Repeat("c", 900)+"\r\n"+strings.Repeat("d", 900)+"\r\n")
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"one chunk", []string{msg}, "250 2.0.0 Ok: queued as "},
		{"two chunks", []string{msg[:20], msg[20:]}, "250 2.0.0 Ok: queued as "},
		{"over the tenant limit", []string{big[:1500], big[1500:]}, "552 5.3.4 message exceeds 2000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := h.dial(t)
			ehlo := c.cmd("EHLO client.test", "250")
			if !strings.Contains(ehlo, "CHUNKING") {
				t.Fatalf("EHLO lacks CHUNKING:\n%s", ehlo)
			}
			c.cmd("AUTH PLAIN "+plainIR("small", smallToken), "235")
			c.cmd("MAIL FROM:<app@small.example>", "250")
			c.cmd("RCPT TO:<to@ok.example>", "250")
			var got string
			for i, ch := range tt.chunks {
				last, want := "", "250 2.0.0 Continue"
				if i == len(tt.chunks)-1 {
					last, want = " LAST", ""
				}
				if _, err := fmt.Fprintf(c.conn, "BDAT %d%s\r\n%s", len(ch), last, ch); err != nil {
					t.Fatal(err)
				}
				got = c.expect(want)
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("final reply %q, want %q", got, tt.want)
			}
			wantSent := 0
			if strings.HasPrefix(tt.want, "250") {
				wantSent = 1
			}
			msgs := h.sink.messages()
			if len(msgs) != wantSent {
				t.Fatalf("sink got %d messages, want %d", len(msgs), wantSent)
			}
			if wantSent == 1 && string(msgs[0].Data) != msg {
				t.Errorf("data %q, want %q", msgs[0].Data, msg)
			}
			c.cmd("NOOP", "250") // still usable
		})
	}
}

func TestBccHeaderStrippedRecipientsKept(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t)
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example>", "250")
	for _, r := range []string{"to@dest.example", "cc@dest.example", "hidden@dest.example"} {
		c.cmd("RCPT TO:<"+r+">", "250")
	}
	body := "From: app@acme.example\r\nTo: to@dest.example\r\nCc: cc@dest.example\r\nBcc: hidden@dest.example,\r\n other@dest.example\r\nSubject: x\r\n\r\nbody\r\n"
	if got := c.data(body); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("DATA reply %q", got)
	}
	msgs := h.sink.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages", len(msgs))
	}
	if got := strings.Join(msgs[0].Recipients, ","); got != "to@dest.example,cc@dest.example,hidden@dest.example" {
		t.Errorf("envelope recipients %s", got)
	}
	data := string(msgs[0].Data)
	if strings.Contains(strings.ToLower(data), "bcc") || strings.Contains(data, "hidden@") || strings.Contains(data, "other@") {
		t.Errorf("Bcc leaked into the message:\n%s", data)
	}
	if !strings.Contains(data, "Cc: cc@dest.example\r\n") {
		t.Errorf("Cc header lost:\n%s", data)
	}
}

func TestSubmitReplyNamesBothIDs(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t)
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example>", "250")
	c.cmd("RCPT TO:<to@dest.example>", "250")
	got := c.data(message("app@acme.example", "to@dest.example", "", "hi\r\n"))
	msgs := h.sink.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages", len(msgs))
	}
	want := "250 2.0.0 Ok: queued as " + msgs[0].ID + " ses=0100-ses-1"
	if got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	if len(msgs[0].ID) != 26 || msgs[0].Source.String() != "127.0.0.1" || msgs[0].From != "app@acme.example" {
		t.Errorf("envelope %+v", msgs[0])
	}
}

func TestSinkErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"throttled", &gateway.Error{Code: gateway.CodeUpstreamThrottled, Msg: "upstream throttled", RetryAfter: 2 * time.Second}, "451 4.4.5 upstream throttled, retry after 2s"},
		{"quota", gateway.Errorf(gateway.CodeUpstreamQuota, "daily quota exceeded"), "452 4.3.1 daily quota exceeded"},
		{"paused", gateway.Errorf(gateway.CodeUpstreamPaused, "sending paused"), "451 4.3.2 sending paused"},
		{"rejected", gateway.Errorf(gateway.CodeUpstreamRejected, "message rejected"), "554 5.6.0 message rejected"},
		{"not authorized", gateway.Errorf(gateway.CodeUpstreamNotAuthorized, "identity not verified"), "550 5.7.1 identity not verified"},
		{"mail from unverified", gateway.Errorf(gateway.CodeUpstreamSenderUnverified, "MAIL FROM domain not verified"), "550 5.1.8 MAIL FROM domain not verified"},
		{"bad request", gateway.Errorf(gateway.CodeUpstreamBadRequest, "invalid request"), "554 5.6.0 invalid request"},
		{"misconfigured", gateway.Errorf(gateway.CodeUpstreamMisconfigured, "configuration set missing"), "451 4.3.0 configuration set missing"},
		{"unavailable", gateway.Wrap(gateway.CodeUpstreamUnavailable, errors.New("connection reset by 10.0.0.1"), "upstream unavailable"), "451 4.4.1 upstream unavailable"},
		{"plain error", errors.New("sink exploded"), "451 4.3.0 internal error"},
	}
	h := newHarness(t)
	c := h.dial(t)
	c.login("acme", acmeToken)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.sink.set(func(k *testSink) { k.fail = tt.err })
			c.cmd("MAIL FROM:<app@acme.example>", "250")
			c.cmd("RCPT TO:<to@dest.example>", "250")
			if got := c.data(message("app@acme.example", "to@dest.example", "", "hi\r\n")); got != tt.want {
				t.Fatalf("DATA reply %q, want %q", got, tt.want)
			}
		})
	}
	if strings.Contains(h.logs.String(), "reply=\"250") {
		t.Error("a failed send was logged as accepted")
	}
	if n := len(h.sink.messages()); n != 0 {
		t.Fatalf("sink recorded %d messages", n)
	}
}

func TestSubmitDeadline(t *testing.T) {
	h := newHarness(t, func(_ *harness, o *Options) { o.SubmitTimeout = 200 * time.Millisecond })
	h.sink.set(func(k *testSink) { k.block = true })
	c := h.dial(t)
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example>", "250")
	c.cmd("RCPT TO:<to@dest.example>", "250")
	start := time.Now()
	if got := c.data(message("app@acme.example", "to@dest.example", "", "hi\r\n")); got != "451 4.4.1 upstream did not answer in time" {
		t.Fatalf("DATA reply %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Submit took %v, want about 200ms", d)
	}
}

func TestSlowClientMidData(t *testing.T) {
	tests := []struct {
		name       string
		readTO     time.Duration
		dataTO     time.Duration
		trickle    time.Duration // 0: stop sending
		wantReason string
	}{
		{"client stops sending", 300 * time.Millisecond, 0, 0, "read timeout: client stopped sending"},
		// A byte every 100ms keeps the idle timeout (1s) from firing for
		// 3s; the DATA bound (600ms) ends it first.
		{"client trickles past the DATA bound", time.Second, 600 * time.Millisecond, 100 * time.Millisecond, "DATA took longer than the data timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(_ *harness, o *Options) {
				o.ReadTimeout = tt.readTO
				o.DataTimeout = tt.dataTO
			})
			c := h.dial(t)
			c.login("acme", acmeToken)
			c.cmd("MAIL FROM:<app@acme.example>", "250")
			c.cmd("RCPT TO:<to@dest.example>", "250")
			c.cmd("DATA", "354")
			c.write("From: app@acme.example")
			if tt.trickle > 0 {
				go func() {
					for i := 0; i < 30; i++ {
						time.Sleep(tt.trickle)
						if _, err := c.conn.Write([]byte("x")); err != nil {
							return
						}
					}
				}()
			}
			c.expect("451 4.3.0 message data not received: " + tt.wantReason)
			c.expectClosed()
			if n := len(h.sink.messages()); n != 0 {
				t.Fatalf("sink got %d messages", n)
			}
			logs := h.logs.String()
			if !strings.Contains(logs, "smtp DATA aborted; nothing submitted") || !strings.Contains(logs, tt.wantReason) {
				t.Fatalf("log does not say why:\n%s", logs)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	h := newHarness(t, func(_ *harness, o *Options) { o.ReadTimeout = 200 * time.Millisecond })
	c := h.dial(t)
	c.cmd("EHLO client.test", "250")
	c.expect("421 4.4.2 Idle timeout")
	c.expectClosed()
}

func TestConnectionLimit(t *testing.T) {
	tests := []struct {
		name     string
		implicit bool
	}{
		{"plain", false},
		{"implicit TLS", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(h *harness, o *Options) {
				o.MaxConnections = 2
				if tt.implicit {
					withTLS(h, o)
					o.ImplicitTLS = true
				}
			})
			connect := func() *rawClient {
				conn, err := net.Dial("tcp", h.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				if tt.implicit {
					conn = tlsClientConn(conn, h)
				}
				return newRawClient(t, conn)
			}
			a, b := connect(), connect()
			a.expect("220 ")
			b.expect("220 ")
			over := connect()
			over.expect("421 4.7.0 Too many connections")
			over.expectClosed()

			// Both sessions still work; once one leaves, a new one gets in.
			b.cmd("NOOP", "250")
			a.cmd("QUIT", "221")
			a.expectClosed()
			deadline := time.Now().Add(3 * time.Second)
			for {
				c := connect()
				got, err := c.read()
				c.conn.Close()
				if err == nil && strings.HasPrefix(got, "220 ") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no slot freed: last reply %q, %v", got, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(h.logs.String(), "too many connections") {
				t.Error("refused connection not logged")
			}
		})
	}
}

func TestShutdownDrainsDataAndRefusesNew(t *testing.T) {
	h := newHarness(t)
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	h.sink.set(func(k *testSink) { k.gate, k.entered = gate, entered })

	idle := h.dial(t)
	idle.login("acme", acmeToken)

	busy := h.dial(t)
	busy.login("acme", acmeToken)
	busy.cmd("MAIL FROM:<app@acme.example>", "250")
	busy.cmd("RCPT TO:<to@dest.example>", "250")
	busy.cmd("DATA", "354")
	w := busy.tp.DotWriter()
	if _, err := w.Write([]byte(message("app@acme.example", "to@dest.example", "", "in flight\r\n"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered: // the message is in the sink
	case <-time.After(5 * time.Second):
		t.Fatal("message never reached the sink")
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- h.srv.Shutdown(ctx)
	}()

	// The idle session is told and closed; new connections are refused.
	idle.expect("421 4.3.2 Service shutting down")
	idle.expectClosed()
	if conn, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("a new connection was accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a message in flight", err)
	default:
	}

	// The message in flight is answered 250 and delivered, then the
	// session is told and closed, and Shutdown returns.
	h.sink.set(func(k *testSink) { k.gate, k.entered = nil, nil })
	close(gate)
	got, err := busy.read()
	if err != nil || !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("in-flight reply %q, %v", got, err)
	}
	busy.expect("421 4.3.2 Service shutting down")
	busy.expectClosed()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if n := len(h.sink.messages()); n != 1 {
		t.Fatalf("sink got %d messages, want 1", n)
	}
}

func TestShutdownDeadlineClosesEverything(t *testing.T) {
	h := newHarness(t)
	h.sink.set(func(k *testSink) { k.block = true })
	c := h.dial(t)
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example>", "250")
	c.cmd("RCPT TO:<to@dest.example>", "250")
	c.cmd("DATA", "354")
	w := c.tp.DotWriter()
	_, _ = w.Write([]byte(message("app@acme.example", "to@dest.example", "", "stuck\r\n")))
	_ = w.Close()
	time.Sleep(100 * time.Millisecond) // let the message reach the sink

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	got, err := c.read()
	if err == nil && strings.HasPrefix(got, "250") {
		t.Fatalf("a message the sink never confirmed was answered %q", got)
	}
	c.expectClosed()
}

func TestMaxSessionDuration(t *testing.T) {
	h := newHarness(t, func(_ *harness, o *Options) { o.MaxSessionDuration = time.Second })
	c := h.dial(t)
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example>", "250")
	time.Sleep(1200 * time.Millisecond)
	// A transaction open when the bound passes finishes...
	c.cmd("RCPT TO:<to@dest.example>", "250")
	if got := c.data(message("app@acme.example", "to@dest.example", "", "hi\r\n")); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("DATA reply %q", got)
	}
	// ...and then the session ends.
	c.expectClosed()
}

func TestBufferedBytesBudget(t *testing.T) {
	h := newHarness(t, func(_ *harness, o *Options) {
		const step = 64 << 10 // gateway.MessageBuffer takes from the budget in steps of 64 KiB
		o.MaxMessageBytes = step
		o.MaxBufferedBytes = step // room for one message at a time
	})
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	h.sink.set(func(k *testSink) { k.gate, k.entered = gate, entered })
	msg := message("app@acme.example", "to@dest.example", "", "hello\r\n")

	a := h.dial(t)
	a.login("acme", acmeToken)
	a.cmd("MAIL FROM:<app@acme.example>", "250")
	a.cmd("RCPT TO:<to@dest.example>", "250")
	a.cmd("DATA", "354")
	w := a.tp.DotWriter()
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered: // a's body is held while it is submitted
	case <-time.After(5 * time.Second):
		t.Fatal("first message never reached the sink")
	}

	b := h.dial(t)
	b.login("acme", acmeToken)
	b.cmd("MAIL FROM:<app@acme.example>", "250")
	b.cmd("RCPT TO:<to@dest.example>", "250")
	if got := b.data(msg); got != "451 4.3.0 gateway busy, try again later" {
		t.Fatalf("second message while the budget is taken: %q", got)
	}

	h.sink.set(func(k *testSink) { k.gate, k.entered = nil, nil })
	close(gate)
	a.expect("250 2.0.0 Ok: queued as ")

	// The budget is given back: b's retry on the same connection goes through.
	b.cmd("MAIL FROM:<app@acme.example>", "250")
	b.cmd("RCPT TO:<to@dest.example>", "250")
	if got := b.data(msg); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("retry: %q", got)
	}
	if n := len(h.sink.messages()); n != 2 {
		t.Fatalf("sink got %d messages, want 2", n)
	}
	if used := h.srv.budget.InUse(); used != 0 {
		t.Fatalf("%d buffered bytes still taken", used)
	}
}
