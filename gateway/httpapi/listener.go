package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/sesgate/sesgate/gateway"
)

// Listener defaults.
const (
	// DefaultMaxConns bounds the HTTP listener's connections open at once.
	DefaultMaxConns = 1024
	// DefaultMaxConnsPerSource bounds the connections open at once from
	// one source (an IPv4 address or an IPv6 /64).
	DefaultMaxConnsPerSource = 256
)

// Fixed bounds of refusing a connection.
const (
	// maxRefusers bounds the goroutines answering connections over the
	// per-source limit; past it, such connections are closed unanswered.
	maxRefusers = 64
	// refuseTimeout bounds answering one of them.
	refuseTimeout = 2 * time.Second
	// connDrainBytes is what is read of a refused connection's request, so
	// that closing it does not reset the answer away.
	connDrainBytes = 64 << 10
	// sourceRetry is the Retry-After of a connection over the limit.
	sourceRetry = time.Second
)

// ListenerOptions configure LimitListener. Zero values take the defaults.
type ListenerOptions struct {
	MaxConns          int // default DefaultMaxConns
	MaxConnsPerSource int // default DefaultMaxConnsPerSource
	Logger            *slog.Logger
	// Registerer, when set, gets sesgate_http_connections_refused_total.
	Registerer prometheus.Registerer
}

// LimitListener bounds the connections of l: at most MaxConns open at once
// (golang.org/x/net/netutil.LimitListener: one more waits in the kernel's
// backlog until one closes) and at most MaxConnsPerSource from one client
// source, an IPv4 address or an IPv6 /64 (one more is answered 503 with
// Retry-After and closed, in a bounded number of goroutines). Serve the HTTP API and the SNS endpoint
// from it.
func LimitListener(l net.Listener, opts ListenerOptions) (net.Listener, error) {
	if opts.MaxConns < 0 || opts.MaxConnsPerSource < 0 {
		return nil, errors.New("httpapi: connection limits must not be negative")
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerSource == 0 {
		opts.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sl := &sourceListener{
		Listener: l, max: opts.MaxConnsPerSource, log: opts.Logger,
		open: gateway.NewSlots[netip.Prefix](opts.MaxConnsPerSource), refusers: make(chan struct{}, maxRefusers),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sesgate_http_connections_refused_total",
			Help: "HTTP connections refused because their client address had too many open.",
		}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(sl.refused); err != nil {
			return nil, err
		}
	}
	return netutil.LimitListener(sl, opts.MaxConns), nil
}

// sourceListener counts open connections per source.
type sourceListener struct {
	net.Listener
	max      int
	log      *slog.Logger
	refusers chan struct{}
	refused  prometheus.Counter
	open     *gateway.Slots[netip.Prefix] // by gateway.SourceKey; non-IP addresses share the invalid Prefix
}

// Accept returns the next connection whose source is under the limit,
// answering the others.
func (l *sourceListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := gateway.SourceKey(gateway.ClientAddr(c.RemoteAddr()))
		if l.open.Take(src) {
			return &sourceConn{Conn: c, l: l, src: src}, nil
		}
		l.refuse(c, src)
	}
}

// refusal is the whole answer to a connection over the per-source limit.
var refusal = func() string {
	body := `{"error":{"code":"too_many_connections","message":"too many connections from this address"}}` + "\n"
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" +
		"Retry-After: " + strconv.Itoa(int(sourceRetry/time.Second)) + "\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// refuse answers c 503 and closes it, reading a little of its request
// first so that the close does not reset the answer away.
func (l *sourceListener) refuse(c net.Conn, src netip.Prefix) {
	l.refused.Inc()
	l.log.Debug("http connection refused: too many from this address", "src", src.String(), "max", l.max)
	select {
	case l.refusers <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusers }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if _, err := io.WriteString(c, refusal); err != nil {
			return
		}
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, connDrainBytes))
	}()
}

// sourceConn gives its place back when closed (once).
type sourceConn struct {
	net.Conn
	l    *sourceListener
	src  netip.Prefix
	once sync.Once
}

func (c *sourceConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Give(c.src) })
	return err
}
