package smtpd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// Test tenants and their tokens.
const (
	acmeToken  = "sg_acme01_s3cr3t-acme-token"
	smallToken = "sg_small1_s3cr3t-small-token"
)

func testTenants() map[string]*gateway.Tenant {
	return map[string]*gateway.Tenant{
		acmeToken: {ID: "acme", Identities: []string{"@acme.example"}},
		smallToken: {
			ID:               "small",
			Identities:       []string{"app@small.example"},
			RecipientDomains: []string{"ok.example"},
			Limits:           gateway.Limits{MaxRecipients: 3, MaxMessageBytes: 2000},
		},
	}
}

// testAuth answers like the real authenticator: CodeBadCredentials for an
// unknown token or a username that is not the token's tenant, and
// CodeAuthThrottled for the user "throttled".
type testAuth struct{ tokens map[string]*gateway.Tenant }

func (a *testAuth) Authenticate(_ context.Context, username, token string, _ netip.Addr) (*gateway.Tenant, error) {
	if username == "throttled" {
		return nil, &gateway.Error{Code: gateway.CodeAuthThrottled, Msg: "too many failed attempts", RetryAfter: 30 * time.Second}
	}
	t, ok := a.tokens[token]
	if !ok || t.ID != username {
		return nil, gateway.Errorf(gateway.CodeBadCredentials, "authentication failed")
	}
	return t, nil
}

// testSink records what it is given. Fault injection: fail makes Send return
// that error; block makes it wait for ctx; gate makes it signal entered and
// wait for the gate to close.
type testSink struct {
	mu      sync.Mutex
	sent    []gateway.Envelope
	fail    error
	block   bool
	gate    chan struct{}
	entered chan struct{}
	count   bool // count messages instead of keeping them (benchmarks)
	n       int
	// digest keeps the SHA-256 of each message instead of a copy
	// (allocation counts).
	digest  bool
	digests [][32]byte
}

func (k *testSink) Send(ctx context.Context, env *gateway.Envelope) (string, error) {
	k.mu.Lock()
	fail, block, gate, entered := k.fail, k.block, k.gate, k.entered
	k.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", gateway.Wrap(gateway.CodeUpstreamUnavailable, ctx.Err(), "upstream did not answer in time")
		}
	}
	if block {
		<-ctx.Done()
		return "", gateway.Wrap(gateway.CodeUpstreamUnavailable, ctx.Err(), "upstream did not answer in time")
	}
	if fail != nil {
		return "", fail
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	if k.count {
		return fmt.Sprintf("0100-ses-%d", k.n), nil
	}
	if k.digest {
		k.digests = append(k.digests, sha256.Sum256(env.Data))
		return fmt.Sprintf("0100-ses-%d", k.n), nil
	}
	cp := *env
	cp.Recipients = append([]string(nil), env.Recipients...)
	cp.Data = append([]byte(nil), env.Data...)
	k.sent = append(k.sent, cp)
	return fmt.Sprintf("0100-ses-%d", k.n), nil
}

func (k *testSink) set(f func(k *testSink)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f(k)
}

func (k *testSink) messages() []gateway.Envelope {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]gateway.Envelope(nil), k.sent...)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	t    *testing.T
	srv  *Server
	addr string
	sink *testSink
	logs *syncBuffer
	tls  *tls.Config // client config trusting the server cert, when TLS is on
}

// withTLS gives the server a fresh self-signed certificate for 127.0.0.1.
func withTLS(h *harness, o *Options) {
	srvCfg, cliCfg := testCerts(h.t)
	o.TLSConfig = srvCfg
	h.tls = cliCfg
}

// newHarness starts a server on 127.0.0.1:0 with a test pipeline. mods
// adjust the options before New.
func newHarness(t *testing.T, mods ...func(h *harness, o *Options)) *harness {
	t.Helper()
	h := &harness{t: t, sink: &testSink{}, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := gateway.NewPipeline(gateway.Options{Auth: &testAuth{tokens: testTenants()}, Sink: h.sink, Logger: logger})
	opts := Options{Pipeline: p, Logger: logger, Domain: "mx.test"}
	for _, m := range mods {
		m(h, &opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.addr = srv, l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(3 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs.String())
		}
	})
	return h
}

func tlsClientConn(c net.Conn, h *harness) *tls.Conn { return tls.Client(c, h.tls) }

// rawClient speaks the protocol line by line.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

// dial connects a raw client; t is the (sub)test that uses it.
func (h *harness) dial(t *testing.T) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := newRawClient(t, conn)
	c.expect("220 ")
	return c
}

func newRawClient(t *testing.T, conn net.Conn) *rawClient {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
}

// read returns the next reply as "code text" (multi-line replies joined by
// newlines).
func (c *rawClient) read() (string, error) {
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %s", code, msg), nil
}

func (c *rawClient) expect(prefix string) string {
	c.t.Helper()
	got, err := c.read()
	if err != nil {
		c.t.Fatalf("reading reply (want %q): %v", prefix, err)
	}
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("reply %q, want prefix %q", got, prefix)
	}
	return got
}

func (c *rawClient) write(line string) {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
}

// cmd sends one line and checks the reply's prefix.
func (c *rawClient) cmd(line, want string) string {
	c.t.Helper()
	c.write(line)
	return c.expect(want)
}

// data sends DATA and the body (dot-stuffed), and returns the final reply.
func (c *rawClient) data(body string) string {
	c.t.Helper()
	c.cmd("DATA", "354 ")
	w := c.tp.DotWriter()
	if _, err := io.WriteString(w, body); err != nil {
		c.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	got, err := c.read()
	if err != nil {
		c.t.Fatalf("reading DATA reply: %v", err)
	}
	return got
}

// expectClosed checks that the server closed the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.tp.ReadLine()
	if err == nil {
		c.t.Fatalf("got %q, want the connection closed", line)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open: %v", err)
	}
}

// login authenticates with AUTH PLAIN.
func (c *rawClient) login(user, token string) {
	c.t.Helper()
	c.cmd("EHLO client.test", "250")
	c.cmd("AUTH PLAIN "+plainIR(user, token), "235 2.0.0")
}

func plainIR(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + token))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// message builds an RFC 5322 message.
func message(from, to, extraHeaders, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: test\r\n" + extraHeaders + "\r\n" + body
}

// testCerts returns a server config with a self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func testCerts(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mx.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}
