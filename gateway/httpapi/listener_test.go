package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limitedServer serves a handler that answers "ok" on a LimitListener.
func limitedServer(t *testing.T, opts ListenerOptions) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll, err := LimitListener(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})})
	go func() { _ = srv.Serve(ll) }()
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// dialFrom connects from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// get sends one request on c and returns the answer.
func get(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

// TestLimitListenerPerSource: one address has at most MaxConnsPerSource
// connections open; one more is answered 503 too_many_connections with
// Retry-After and closed, while another address is served, and a closed
// connection gives its place back.
func TestLimitListenerPerSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := limitedServer(t, ListenerOptions{MaxConns: 100, MaxConnsPerSource: 2, Registerer: reg})
	a := dialFrom(t, "127.0.0.1", addr)
	b := dialFrom(t, "127.0.0.1", addr)
	for _, c := range []net.Conn{a, b} {
		if resp := get(t, c); resp.StatusCode != http.StatusOK {
			t.Fatalf("connection within the limit: %s", resp.Status)
		}
	}
	over := dialFrom(t, "127.0.0.1", addr)
	resp := get(t, over)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"code":"too_many_connections"`) {
		t.Fatalf("third connection: %s Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("refused connection left open")
	}
	if n := refusedCount(t, reg); n != 1 {
		t.Fatalf("refused counter %v, want 1", n)
	}
	if resp := get(t, dialFrom(t, "127.0.0.2", addr)); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %s", resp.Status)
	}
	a.Close()
	waitFor(t, "a's place given back", func() bool {
		c := dialFrom(t, "127.0.0.1", addr)
		defer c.Close()
		return get(t, c).StatusCode == http.StatusOK
	})
}

// refusedCount reads sesgate_http_connections_refused_total.
func refusedCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "sesgate_http_connections_refused_total" {
		t.Fatalf("registry: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// TestLimitListenerGlobal: past MaxConns, a connection is not served until
// one closes (it waits in the backlog), then it is.
func TestLimitListenerGlobal(t *testing.T) {
	addr := limitedServer(t, ListenerOptions{MaxConns: 2, MaxConnsPerSource: 10})
	a := dialFrom(t, "127.0.0.1", addr)
	b := dialFrom(t, "127.0.0.2", addr)
	for _, c := range []net.Conn{a, b} {
		if resp := get(t, c); resp.StatusCode != http.StatusOK {
			t.Fatalf("connection within the limit: %s", resp.Status)
		}
	}
	third := dialFrom(t, "127.0.0.3", addr) // the kernel completes the handshake
	if _, err := io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := third.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("third connection served over MaxConns: %d bytes, %v", n, err)
	}
	a.Close()
	_ = third.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("third connection after one closed: %v %v", resp, err)
	}
}

func TestLimitListenerOptions(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := LimitListener(l, ListenerOptions{MaxConnsPerSource: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
}
