package smtpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// listener counts connections, refuses those over the limit, and wraps the
// rest in a trackedConn (and TLS, for implicit TLS).
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := l.srv.track(c)
		if !ok {
			continue
		}
		if l.srv.opts.ImplicitTLS {
			tc.startTLS()
			return tls.Server(tc, l.srv.tlsConfig), nil
		}
		return tc, nil
	}
}

// pastDeadline makes a blocked Read return at once.
var pastDeadline = time.Unix(1, 0)

// trackedConn is the raw connection under go-smtp (and under TLS). It lets
// the server end a session cleanly from outside go-smtp's goroutine: once
// killed, Read returns io.EOF, which go-smtp treats as the client leaving,
// and a blocked Read is woken by a deadline in the past. Writes are never
// affected, so a reply in progress still reaches the client.
//
// A session that ends for a reason of ours (shutdown, a command line or the
// AUTH exchange not completed in time) gets a last 421 line, its farewell,
// written from inside Read: Read runs on go-smtp's goroutine, the only one
// that writes replies, so the farewell never interleaves with one. It goes
// through the *tls.Conn once TLS is up; while a TLS handshake is under way
// and that conn is not known yet, there is no farewell (go-smtp answers a
// timeout itself; a shutdown closes without a line). After the farewell,
// writes are dropped, so nothing follows it.
//
// Command lines: go-smtp sets one read deadline per line, but on a deadline
// bufio hands the part of a line read so far to go-smtp as if it were a
// whole line, and go-smtp starts the next line with a fresh deadline: a
// client trickling bytes would never time out. So a deadline in the command
// phase kills the connection (the session callbacks refuse to act on a
// killed connection, so that partial line does nothing). Before AUTH, read
// deadlines are the shorter of go-smtp's, the pre-AUTH idle limit and the
// AUTH deadline (a fixed time from connect), and write deadlines are at
// most the pre-AUTH idle limit.
//
// While a message body is read (dataDeadline set), every Read extends the
// read deadline by the idle timeout, capped by the overall DATA deadline; a
// timeout then kills the connection so no body line is ever read as a
// command.
type trackedConn struct {
	net.Conn
	srv         *Server
	id          string
	source      netip.Prefix // per-source count; invalid: not counted
	readTimeout time.Duration
	preAuthIdle time.Duration
	authTimeout time.Duration

	mu           sync.Mutex
	killed       bool
	draining     bool // end the session once no transaction is open
	inTx         bool // a MAIL was accepted and not yet reset
	dataDeadline time.Time
	closed       bool
	timer        *time.Timer // session lifetime bound
	authDeadline time.Time   // AUTH must succeed before this
	authed       bool
	bound        readBound // what bounds the read deadline set last
	farewell     string    // last line before the close, if any
	muted        bool      // the farewell was written: drop later writes
	tlsPending   bool      // TLS under go-smtp, its *tls.Conn not known yet
	tlsConn      *tls.Conn // the TLS conn over this one, once known
}

// readBound is what set a read deadline: the AUTH deadline, or an idle
// limit for one command line.
type readBound struct {
	auth bool
	idle time.Duration
}

// Farewells.
const (
	msgShuttingDown  = "Service shutting down" // also the 421 to a command at shutdown
	farewellShutdown = "421 4.3.2 " + msgShuttingDown
	// farewellTimeout bounds writing a farewell.
	farewellTimeout = 5 * time.Second
)

func (c *trackedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.killed {
		w, line := c.takeFarewellLocked()
		c.mu.Unlock()
		c.say(w, line)
		return 0, io.EOF
	}
	inData := !c.dataDeadline.IsZero()
	if inData {
		d := time.Now().Add(c.readTimeout)
		if c.dataDeadline.Before(d) {
			d = c.dataDeadline
		}
		_ = c.Conn.SetReadDeadline(d)
	}
	c.mu.Unlock()

	n, err := c.Conn.Read(b)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	c.mu.Lock()
	switch {
	case c.killed:
		w, line := c.takeFarewellLocked()
		c.mu.Unlock()
		c.say(w, line)
		return n, io.EOF
	case inData:
		c.killLocked()
		c.mu.Unlock()
		return n, err
	}
	// A command line, or the AUTH exchange, was not completed in time.
	c.killLocked()
	bound, authed := c.bound, c.authed
	if bound.auth {
		c.farewell = fmt.Sprintf("421 4.7.0 AUTH not completed within %s of connecting, closing connection", c.authTimeout)
	} else {
		c.farewell = fmt.Sprintf("421 4.4.2 Idle timeout: no complete command within %s, closing connection", bound.idle)
	}
	w, line := c.takeFarewellLocked()
	c.mu.Unlock()
	if bound.auth {
		c.srv.log.Info("smtp AUTH deadline passed; connection closed", slog.String("session", c.id),
			slog.String("remote", c.RemoteAddr().String()), slog.Duration("auth_timeout", c.authTimeout))
	} else {
		c.srv.log.Debug("smtp idle timeout; connection closed", slog.String("session", c.id),
			slog.String("remote", c.RemoteAddr().String()), slog.Duration("timeout", bound.idle), slog.Bool("authenticated", authed))
	}
	if !c.say(w, line) {
		return n, err // no farewell possible: go-smtp answers the timeout
	}
	return n, io.EOF
}

// takeFarewellLocked returns the farewell to write, and where, once.
func (c *trackedConn) takeFarewellLocked() (io.Writer, string) {
	line := c.farewell
	c.farewell = ""
	switch {
	case line == "" || c.muted:
		return nil, ""
	case c.tlsConn != nil:
		return c.tlsConn, line
	case c.tlsPending:
		return nil, ""
	}
	return c.Conn, line
}

// say writes a farewell and mutes the connection; false when there was
// nothing to write.
func (c *trackedConn) say(w io.Writer, line string) bool {
	if w == nil {
		return false
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(farewellTimeout))
	_, _ = io.WriteString(w, line+"\r\n")
	c.mu.Lock()
	c.muted = true
	c.mu.Unlock()
	return true
}

func (c *trackedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	muted := c.muted
	c.mu.Unlock()
	if muted {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed {
		return c.Conn.SetReadDeadline(pastDeadline)
	}
	// go-smtp sets now+ReadTimeout for each line (and for the implicit TLS
	// handshake).
	c.bound = readBound{idle: c.readTimeout}
	if !c.authed {
		if d := time.Now().Add(c.preAuthIdle); t.IsZero() || d.Before(t) {
			t, c.bound = d, readBound{idle: c.preAuthIdle}
		}
		if t.IsZero() || c.authDeadline.Before(t) {
			t, c.bound = c.authDeadline, readBound{auth: true}
		}
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.authed {
		if d := time.Now().Add(c.preAuthIdle); t.IsZero() || d.Before(t) {
			t = d
		}
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// kill makes the session end after whatever it is writing now, without a
// farewell (the caller wrote its own last reply).
func (c *trackedConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.farewell = ""
	c.killLocked()
}

func (c *trackedConn) killLocked() {
	c.killed = true
	_ = c.Conn.SetReadDeadline(pastDeadline)
}

// isKilled reports whether the session is ending: a line read after that
// (a partial one cut by a deadline, or one read ahead) must do nothing.
func (c *trackedConn) isKilled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed
}

// drain ends the session now if no transaction is open, or once the open
// one ends; farewell ("" for none) is its last line.
func (c *trackedConn) drain(farewell string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed {
		return
	}
	c.draining = true
	c.farewell = farewell
	if !c.inTx {
		c.killLocked()
	}
}

// setAuthed switches the deadlines between their pre-AUTH and
// authenticated bounds.
func (c *trackedConn) setAuthed(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authed = v
}

// startTLS records that a TLS handshake began over this connection.
func (c *trackedConn) startTLS() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tlsConn == nil {
		c.tlsPending = true
	}
}

// setTLS records the TLS conn over this one (its handshake complete).
func (c *trackedConn) setTLS(t *tls.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tlsConn, c.tlsPending = t, false
}

// isDraining reports whether the session must take no new transaction.
func (c *trackedConn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// beginTx marks a transaction open; false when the connection is draining.
func (c *trackedConn) beginTx() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.inTx = true
	return true
}

// endTx closes the transaction (go-smtp resets after writing the DATA reply)
// and ends a draining session.
func (c *trackedConn) endTx() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inTx = false
	c.dataDeadline = time.Time{}
	if c.draining {
		c.killLocked()
	}
}

// beginData switches reads to the DATA deadlines until endTx.
func (c *trackedConn) beginData(deadline time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dataDeadline = deadline
}

// dataDeadlinePassed reports whether the overall DATA bound has passed.
func (c *trackedConn) dataDeadlinePassed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dataDeadline.IsZero() && !time.Now().Before(c.dataDeadline)
}

// Close closes the connection once and releases its slot.
func (c *trackedConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.killed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.srv.untrack(c)
	return c.Conn.Close()
}

// rawConn returns the trackedConn under nc (go-smtp hands sessions either
// the trackedConn or a *tls.Conn around it).
func rawConn(nc net.Conn) (*trackedConn, bool) {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, ok := nc.(*trackedConn)
	return tc, ok
}

// isLocal reports whether a connection's local address is loopback (or a
// Unix socket, which only local processes can reach): plaintext AUTH is
// allowed there, for a sidecar on localhost.
func isLocal(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ok && ip.Unmap().IsLoopback()
	case *net.UnixAddr:
		return true
	case nil:
		return false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// remoteAddr returns the client's IP address, or the zero Addr.
func remoteAddr(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// sourceOf is the key of the per-source connection count: the IPv4
// address, or the /64 of an IPv6 address (one host's usual share). Invalid
// (not counted) for an address that is not IP, such as a Unix socket, which
// only local processes reach.
func sourceOf(a net.Addr) netip.Prefix {
	ip := remoteAddr(a)
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}
