package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
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
// While a message body is read (dataDeadline set), every Read extends the
// read deadline by the idle timeout, capped by the overall DATA deadline; a
// timeout then kills the connection so no body line is ever read as a
// command.
type trackedConn struct {
	net.Conn
	srv         *Server
	id          string
	readTimeout time.Duration

	mu           sync.Mutex
	killed       bool
	draining     bool // end the session once no transaction is open
	inTx         bool // a MAIL was accepted and not yet reset
	dataDeadline time.Time
	closed       bool
	timer        *time.Timer // session lifetime bound
}

func (c *trackedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.killed {
		c.mu.Unlock()
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
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.killed {
			return n, io.EOF
		}
		if inData {
			c.killLocked()
		}
	}
	return n, err
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed {
		t = pastDeadline
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// kill makes the session end after whatever it is writing now.
func (c *trackedConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killLocked()
}

func (c *trackedConn) killLocked() {
	c.killed = true
	_ = c.Conn.SetReadDeadline(pastDeadline)
}

// drain ends the session now if no transaction is open, or once the open
// one ends.
func (c *trackedConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.inTx {
		c.killLocked()
	}
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
