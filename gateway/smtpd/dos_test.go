package smtpd

import (
	"context"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dialFrom connects from the local address ip (any of 127.0.0.0/8 on Linux)
// and returns the client before any reply is read.
func (h *harness) dialFrom(t *testing.T, ip string) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newRawClient(t, conn)
}

// needFiles skips the test when the process may not open n more files.
func needFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur < n && lim.Max >= n {
		lim.Cur = n
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("setrlimit: %v", err)
		}
	}
	if lim.Cur < n {
		t.Skipf("RLIMIT_NOFILE is %d, the test needs %d", lim.Cur, n)
	}
}

// TestFloodFromOneSourceLeavesRoomForOthers is the flood of issue 10: one
// source opens 1000 connections and trickles a byte now and then, never
// ending a line; another source must still get its 220, AUTH and send.
func TestFloodFromOneSourceLeavesRoomForOthers(t *testing.T) {
	const flood = 1000
	needFiles(t, 2*flood+500) // both ends of every connection live here
	h := newHarness(t, func(_ *harness, o *Options) {
		// The default caps (1000 in all, 100 per source). The pre-AUTH
		// deadlines are raised so that they cannot be what makes room here.
		o.AuthTimeout = 10 * time.Minute
		o.PreAuthReadTimeout = 10 * time.Minute
	})

	var (
		mu      sync.Mutex
		held    []*rawClient
		refused = map[string]int{}
	)
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range jobs {
				c := h.dialFrom(t, "127.0.0.1")
				got, err := c.read()
				mu.Lock()
				switch {
				case err == nil && strings.HasPrefix(got, "220 "):
					held = append(held, c)
				case err == nil:
					refused[got]++
					c.conn.Close()
				default:
					refused["error: "+err.Error()]++
					c.conn.Close()
				}
				mu.Unlock()
			}
		})
	}
	for range flood {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()

	// The held connections trickle a byte every 100ms, as in the incident.
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	trickle.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, c := range held {
				_, _ = c.conn.Write([]byte("x"))
			}
		}
	})
	defer func() {
		close(stop)
		trickle.Wait()
	}()

	t.Logf("one source, %d connections: %d held, refused: %v", flood, len(held), refused)
	if len(held) != DefaultMaxConnectionsPerSource {
		t.Errorf("one source holds %d connections, want the per-source cap %d", len(held), DefaultMaxConnectionsPerSource)
	}
	for reply, n := range refused {
		if reply != "421 4.7.0 Too many connections from your address" {
			t.Errorf("%d connections refused with %q, want 421 4.7.0 Too many connections from your address", n, reply)
		}
	}

	// Another source is served at once, while the flood holds its share.
	start := time.Now()
	other := h.dialFrom(t, "127.0.0.2")
	other.expect("220 ")
	greeted := time.Since(start)
	other.login("acme", acmeToken)
	other.cmd("MAIL FROM:<app@acme.example>", "250")
	other.cmd("RCPT TO:<to@dest.example>", "250")
	if got := other.data(message("app@acme.example", "to@dest.example", "", "under a flood\r\n")); !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("other source's DATA reply %q", got)
	}
	t.Logf("other source (127.0.0.2): 220 after %v under the flood; AUTH and DATA answered 250 after %v", greeted, time.Since(start))
	if n := len(h.sink.messages()); n != 1 {
		t.Fatalf("sink got %d messages, want 1", n)
	}
	if !strings.Contains(h.logs.String(), "too many connections from one source") {
		t.Error("refusals of the flood not logged")
	}
}

// trickleBytes writes s one byte at a time, every, and then 'x' until the
// connection fails or stop is closed; it never ends a line.
func trickleBytes(c *rawClient, s string, every time.Duration, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(every):
		}
		b := byte('x')
		if i < len(s) {
			b = s[i]
		}
		if _, err := c.conn.Write([]byte{b}); err != nil {
			return
		}
	}
}

// noopUntil sends NOOP every interval until a reply other than 250 comes,
// and returns it.
func noopUntil(c *rawClient, every time.Duration, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := c.tp.PrintfLine("NOOP"); err != nil {
			return "", err
		}
		got, err := c.read()
		if err != nil || !strings.HasPrefix(got, "250 ") {
			return got, err
		}
		time.Sleep(every)
	}
	return "", context.DeadlineExceeded
}

func TestPreAuthDeadlines(t *testing.T) {
	t.Run("a trickled line ends at the pre-AUTH line deadline", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) {
			o.PreAuthReadTimeout = 500 * time.Millisecond
			o.AuthTimeout = time.Minute
			o.ReadTimeout = time.Minute
		})
		c := h.dial(t)
		stop := make(chan struct{})
		defer close(stop)
		go trickleBytes(c, "EHLO client.test", 100*time.Millisecond, stop)
		start := time.Now()
		c.expect("421 4.4.2 Idle timeout: no complete command within 500ms")
		c.expectClosed()
		t.Logf("trickler closed after %v", time.Since(start))
	})
	t.Run("complete lines without AUTH end at the AUTH deadline", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) {
			o.AuthTimeout = time.Second
			o.PreAuthReadTimeout = time.Minute
			o.ReadTimeout = time.Minute
		})
		c := h.dial(t)
		start := time.Now()
		c.cmd("EHLO client.test", "250")
		got, err := noopUntil(c, 100*time.Millisecond, 8*time.Second)
		if err != nil || !strings.HasPrefix(got, "421 4.7.0 AUTH not completed within 1s of connecting") {
			t.Fatalf("after NOOPs without AUTH: %q, %v", got, err)
		}
		c.expectClosed()
		t.Logf("closed %v after connecting", time.Since(start))
		if !strings.Contains(h.logs.String(), "smtp AUTH deadline passed") {
			t.Error("AUTH deadline not logged")
		}
	})
	t.Run("AUTH LOGIN left waiting ends at the AUTH deadline", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) {
			o.AuthTimeout = time.Second
			o.PreAuthReadTimeout = time.Minute
			o.ReadTimeout = time.Minute
		})
		c := h.dial(t)
		c.cmd("EHLO client.test", "250")
		c.cmd("AUTH LOGIN", "334 ")
		c.expect("421 4.7.0 AUTH not completed within 1s of connecting")
		c.expectClosed()
	})
	t.Run("after AUTH the longer idle limit applies", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) {
			o.AuthTimeout = time.Second
			o.PreAuthReadTimeout = 200 * time.Millisecond
			o.ReadTimeout = time.Minute
		})
		c := h.dial(t)
		c.login("acme", acmeToken)
		time.Sleep(1500 * time.Millisecond) // past both pre-AUTH bounds
		c.cmd("NOOP", "250")
		c.cmd("MAIL FROM:<app@acme.example>", "250")
	})
	t.Run("a trickled line after AUTH ends at the line deadline", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) { o.ReadTimeout = time.Second })
		c := h.dial(t)
		c.login("acme", acmeToken)
		stop := make(chan struct{})
		defer close(stop)
		go trickleBytes(c, "NOOP", 100*time.Millisecond, stop)
		c.expect("421 4.4.2 Idle timeout")
		c.expectClosed()
	})
	// The trick behind the incident: bufio hands go-smtp the part of a line
	// read when the deadline passes as if it were a whole line, and go-smtp
	// starts the next line with a fresh deadline. An unterminated "NOOP"
	// at each deadline kept a connection for the whole session lifetime.
	t.Run("an unterminated NOOP at the deadline is not a command", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) { o.ReadTimeout = 500 * time.Millisecond })
		c := h.dial(t)
		c.login("acme", acmeToken)
		if _, err := c.conn.Write([]byte("NOOP")); err != nil {
			t.Fatal(err)
		}
		c.expect("421 4.4.2 Idle timeout: no complete command within 500ms")
		c.expectClosed()
	})
	t.Run("an unterminated AUTH at the deadline does not authenticate", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(_ *harness, o *Options) { o.PreAuthReadTimeout = 500 * time.Millisecond })
		c := h.dial(t)
		c.cmd("EHLO client.test", "250")
		if _, err := c.conn.Write([]byte("AUTH PLAIN " + plainIR("acme", acmeToken))); err != nil {
			t.Fatal(err)
		}
		c.expect("421 4.4.2 Idle timeout: no complete command within 500ms")
		c.expectClosed()
		if logs := h.logs.String(); strings.Contains(logs, "smtp authenticated") {
			t.Fatalf("an unterminated AUTH line authenticated:\n%s", logs)
		}
	})
	t.Run("implicit TLS: the AUTH deadline reply comes over TLS", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, withTLS, func(_ *harness, o *Options) {
			o.ImplicitTLS = true
			o.AuthTimeout = time.Second
			o.PreAuthReadTimeout = time.Minute
		})
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := newRawClient(t, tlsClientConn(conn, h))
		c.expect("220 ")
		c.cmd("EHLO client.test", "250")
		c.expect("421 4.7.0 AUTH not completed within 1s of connecting")
		c.expectClosed()
	})
}

// TestPreAuthBoundsWithDefaults measures, with the default settings, how long
// a connection that never authenticates lives: one trickling bytes (the
// line deadline ends it) and one sending NOOP lines (the AUTH deadline ends
// it).
func TestPreAuthBoundsWithDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("takes DefaultAuthTimeout")
	}
	h := newHarness(t)
	const within = 45 * time.Second // below the 60s command timeout
	t.Run("trickler", func(t *testing.T) {
		t.Parallel()
		c := h.dial(t)
		_ = c.conn.SetDeadline(time.Now().Add(within))
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go trickleBytes(c, "EHLO client.test", time.Second, stop)
		c.expect("421 4.4.2 Idle timeout")
		t.Logf("a trickler (1 byte/s, no line end) lives %v", time.Since(start))
		c.expectClosed()
	})
	t.Run("NOOP lines", func(t *testing.T) {
		t.Parallel()
		c := h.dial(t)
		_ = c.conn.SetDeadline(time.Now().Add(within))
		start := time.Now()
		got, err := noopUntil(c, 2*time.Second, within)
		if err != nil || !strings.HasPrefix(got, "421 4.7.0 AUTH not completed") {
			t.Fatalf("after NOOPs without AUTH: %q, %v", got, err)
		}
		t.Logf("a client sending NOOP every 2s without AUTH lives %v", time.Since(start))
		c.expectClosed()
	})
}

// TestShutdownSays421 checks that at shutdown every session gets
// 421 4.3.2 before its connection closes: idle ones at once (before and
// after AUTH, plaintext and TLS), one in a transaction after its reply.
func TestShutdownSays421(t *testing.T) {
	tests := []struct {
		name     string
		implicit bool
	}{
		{"plaintext and STARTTLS", false},
		{"implicit TLS", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withTLS, func(_ *harness, o *Options) { o.ImplicitTLS = tt.implicit })
			gate := make(chan struct{})
			entered := make(chan struct{}, 1)
			h.sink.set(func(k *testSink) { k.gate, k.entered = gate, entered })
			connect := func() *rawClient {
				if !tt.implicit {
					return h.dial(t)
				}
				conn, err := net.Dial("tcp", h.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				c := newRawClient(t, tlsClientConn(conn, h))
				c.expect("220 ")
				return c
			}

			idle := map[string]*rawClient{}
			idle["before AUTH"] = connect()
			idle["before AUTH"].cmd("EHLO client.test", "250")
			idle["after AUTH"] = connect()
			idle["after AUTH"].login("acme", acmeToken)
			if !tt.implicit {
				c := connect()
				c.cmd("EHLO client.test", "250")
				c.cmd("STARTTLS", "220 ")
				tc := tlsClient(t, c, h)
				tc.login("acme", acmeToken)
				idle["STARTTLS after AUTH"] = tc
			}

			busy := connect()
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
			// A pipelined next command: read ahead or not, the session
			// ends with one 421 after the 250.
			busy.write("MAIL FROM:<app@acme.example>")
			select {
			case <-entered:
			case <-time.After(5 * time.Second):
				t.Fatal("message never reached the sink")
			}

			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				shut <- h.srv.Shutdown(ctx)
			}()
			for name, c := range idle {
				got, err := c.read()
				if err != nil || got != "421 4.3.2 Service shutting down" {
					t.Errorf("%s: at shutdown got %q, %v; want 421 4.3.2 Service shutting down", name, got, err)
					continue
				}
				c.expectClosed()
			}

			h.sink.set(func(k *testSink) { k.gate, k.entered = nil, nil })
			close(gate)
			busy.expect("250 2.0.0 Ok: queued as ")
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
		})
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string // "" for not counted
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}, "2001:db8:1:3::/64"},
		{&net.UnixAddr{Name: "/run/sesgate.sock", Net: "unix"}, ""},
	}
	for _, tt := range tests {
		got := sourceOf(tt.addr)
		if (tt.want == "" && got.IsValid()) || (tt.want != "" && got.String() != tt.want) {
			t.Errorf("sourceOf(%v) = %v, want %q", tt.addr, got, tt.want)
		}
	}
}
