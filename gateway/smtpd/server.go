package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
)

// Defaults for zero Options fields.
const (
	DefaultDomain                  = "localhost"
	DefaultMaxMessageBytes         = gateway.DefaultMaxMessageBytes // 40 MB, SES's limit
	DefaultMaxRecipients           = gateway.DefaultMaxRecipients   // 50, SES's limit
	DefaultReadTimeout             = 60 * time.Second
	DefaultWriteTimeout            = 60 * time.Second
	DefaultDataTimeout             = 10 * time.Minute // RFC 5321 4.5.3.2.6
	DefaultSubmitTimeout           = 60 * time.Second
	DefaultMaxSessionDuration      = 30 * time.Minute
	DefaultMaxConnections          = 1000
	DefaultMaxConnectionsPerSource = 100              // at most MaxConnections
	DefaultAuthTimeout             = 30 * time.Second // from connect to AUTH done
	DefaultPreAuthReadTimeout      = 10 * time.Second
	DefaultMaxBufferedBytes        = 512 << 20
)

// Fixed bounds.
const (
	// maxLineLength is go-smtp's command and DATA line limit: the doubled
	// RFC 5321 limit, so that lines of 999..2000 characters reach
	// gateway.PrepareMessage and get its clear 554 5.6.0 (see the package doc).
	maxLineLength = 2000
	// maxAuthFailures failed AUTH attempts end the connection.
	maxAuthFailures = 3
	// authTimeout bounds one Authenticate call.
	authTimeout = 10 * time.Second
	// rcptTimeout bounds the suppression check of one RCPT (the limiter
	// has its own, shorter store timeout).
	rcptTimeout = 2 * time.Second
	// maxRejecters bounds the goroutines that answer connections over the
	// limit; past it, such connections are closed without an answer.
	maxRejecters = 64
	// rejectTimeout bounds answering one connection over the limit.
	rejectTimeout = 5 * time.Second
	// maxUsername bounds the AUTH username (a tenant id).
	maxUsername = 256
	// refusalLogEvery spaces the log lines of refused connections (one a
	// second per reason, with a count of those not logged), so a flood of
	// connections cannot flood the log.
	refusalLogEvery = time.Second
)

// ErrServerClosed is returned by Serve and Shutdown once Shutdown was called.
var ErrServerClosed = errors.New("smtpd: server closed")

// Options configure a Server. Pipeline is required; zero values take the
// defaults above.
type Options struct {
	Pipeline *gateway.Pipeline
	Logger   *slog.Logger // nil: the pipeline's logger
	Domain   string       // hostname in the greeting

	// TLSConfig enables STARTTLS (or implicit TLS with ImplicitTLS). nil: no
	// TLS; then the server can only be used on a loopback listener or with
	// AllowInsecureAuth.
	TLSConfig   *tls.Config
	ImplicitTLS bool // every connection starts with a TLS handshake

	// AllowInsecureAuth allows AUTH and MAIL without TLS on a non-loopback
	// listener. Only for networks where plaintext is acceptable.
	AllowInsecureAuth bool
	// TreatAsPublic gives loopback connections no exemption from the TLS
	// requirement: for tests of the public rules, or a sidecar that wants
	// TLS even on localhost.
	TreatAsPublic bool

	MaxMessageBytes int64 // server-wide bound, before the tenant's own
	MaxRecipients   int   // server-wide bound, before the tenant's own

	// ReadTimeout bounds reading one command line once authenticated (a
	// line not complete by then ends the session), and idle time in DATA.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration // writing one reply
	// DataTimeout bounds reading one whole message body.
	DataTimeout time.Duration
	// SubmitTimeout bounds Pipeline.Submit for one message.
	SubmitTimeout time.Duration
	// MaxSessionDuration bounds a connection's life: past it, the session
	// ends once no transaction is open.
	MaxSessionDuration time.Duration
	// MaxConnections bounds concurrent connections; one more gets
	// "421 4.7.0 Too many connections" and is closed.
	MaxConnections int
	// MaxConnectionsPerSource bounds concurrent connections from one source
	// (an IPv4 address, or an IPv6 /64), so that one source cannot take
	// every slot; one more gets "421 4.7.0 Too many connections from your
	// address" and is closed. At most MaxConnections; zero:
	// min(DefaultMaxConnectionsPerSource, MaxConnections).
	MaxConnectionsPerSource int
	// AuthTimeout bounds the time from connect to a successful AUTH (TLS
	// handshakes included): past it, a connection not authenticated gets
	// "421 4.7.0 AUTH not completed ..." and is closed.
	AuthTimeout time.Duration
	// PreAuthReadTimeout replaces ReadTimeout (when shorter) before AUTH:
	// the bound on reading one command line, and on writing one reply.
	PreAuthReadTimeout time.Duration
	// MaxBufferedBytes bounds the message bytes held in memory by all
	// sessions together (bodies being read or submitted), counted as
	// received. A body is held once (gateway.MessageBuffer) and prepared
	// in place (Envelope.DataOwned), so the memory a message costs is
	// about its size while it is read and submitted. A
	// message that would go over it is read to its end, dropped, and
	// answered 451 4.3.0. It must be at least MaxMessageBytes.
	MaxBufferedBytes int64
	// Budget, when set, is the memory budget shared with the other front
	// ends; it replaces MaxBufferedBytes (which must then be 0) and must be
	// at least MaxMessageBytes.
	Budget *gateway.MemBudget

	Now func() time.Time // session ids; nil: time.Now
}

// Server is the SMTP front end. It is safe for concurrent use.
type Server struct {
	opts      Options
	pipeline  *gateway.Pipeline
	log       *slog.Logger
	tlsConfig *tls.Config
	smtp      *smtp.Server
	rejecters chan struct{}
	budget    *gateway.MemBudget // message bytes held in memory

	base   context.Context // parent of every session context
	cancel context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners []*listener
	conns     map[*trackedConn]struct{}
	perSource *gateway.Slots[netip.Prefix] // open connections by gateway.SourceKey

	refusedFull, refusedSource logThrottle
}

// logThrottle lets one log line through per refusalLogEvery and counts the
// others.
type logThrottle struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were not logged since the
// last line.
func (t *logThrottle) allow(now time.Time) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := now.Sub(t.last); !t.last.IsZero() && d >= 0 && d < refusalLogEvery {
		t.suppressed++
		return false, 0
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return true, n
}

// New builds a Server from opts.
func New(opts Options) (*Server, error) {
	if opts.Pipeline == nil {
		return nil, errors.New("smtpd: Options.Pipeline is required")
	}
	if opts.ImplicitTLS && opts.TLSConfig == nil {
		return nil, errors.New("smtpd: ImplicitTLS needs a TLSConfig")
	}
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"MaxMessageBytes", opts.MaxMessageBytes < 0},
		{"MaxRecipients", opts.MaxRecipients < 0},
		{"ReadTimeout", opts.ReadTimeout < 0},
		{"WriteTimeout", opts.WriteTimeout < 0},
		{"DataTimeout", opts.DataTimeout < 0},
		{"SubmitTimeout", opts.SubmitTimeout < 0},
		{"MaxSessionDuration", opts.MaxSessionDuration < 0},
		{"MaxConnections", opts.MaxConnections < 0},
		{"MaxConnectionsPerSource", opts.MaxConnectionsPerSource < 0},
		{"AuthTimeout", opts.AuthTimeout < 0},
		{"PreAuthReadTimeout", opts.PreAuthReadTimeout < 0},
		{"MaxBufferedBytes", opts.MaxBufferedBytes < 0},
	} {
		if v.bad {
			return nil, fmt.Errorf("smtpd: Options.%s must not be negative", v.name)
		}
	}
	if strings.ContainsAny(opts.Domain, " \r\n") {
		return nil, errors.New("smtpd: Options.Domain must be a hostname")
	}
	setDefault(&opts.Domain, DefaultDomain)
	setDefault(&opts.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&opts.MaxRecipients, DefaultMaxRecipients)
	setDefault(&opts.ReadTimeout, DefaultReadTimeout)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.DataTimeout, DefaultDataTimeout)
	setDefault(&opts.SubmitTimeout, DefaultSubmitTimeout)
	setDefault(&opts.MaxSessionDuration, DefaultMaxSessionDuration)
	setDefault(&opts.MaxConnections, DefaultMaxConnections)
	setDefault(&opts.MaxConnectionsPerSource, min(DefaultMaxConnectionsPerSource, opts.MaxConnections))
	if opts.MaxConnectionsPerSource > opts.MaxConnections {
		return nil, fmt.Errorf("smtpd: Options.MaxConnectionsPerSource (%d) must not exceed MaxConnections (%d)", opts.MaxConnectionsPerSource, opts.MaxConnections)
	}
	setDefault(&opts.AuthTimeout, DefaultAuthTimeout)
	setDefault(&opts.PreAuthReadTimeout, DefaultPreAuthReadTimeout)
	budget := opts.Budget
	if budget == nil {
		setDefault(&opts.MaxBufferedBytes, max(DefaultMaxBufferedBytes, opts.MaxMessageBytes))
		if opts.MaxBufferedBytes < opts.MaxMessageBytes {
			return nil, errors.New("smtpd: Options.MaxBufferedBytes must be at least MaxMessageBytes")
		}
		budget, _ = gateway.NewMemBudget(opts.MaxBufferedBytes)
	} else if opts.MaxBufferedBytes != 0 {
		return nil, errors.New("smtpd: set Options.Budget or MaxBufferedBytes, not both")
	} else if budget.Limit() < opts.MaxMessageBytes {
		return nil, errors.New("smtpd: Options.Budget must be at least MaxMessageBytes")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = opts.Pipeline.Logger()
	}

	s := &Server{
		opts:      opts,
		pipeline:  opts.Pipeline,
		log:       opts.Logger.With(slog.String("component", "smtpd")),
		rejecters: make(chan struct{}, maxRejecters),
		budget:    budget,
		conns:     make(map[*trackedConn]struct{}),
		perSource: gateway.NewSlots[netip.Prefix](opts.MaxConnectionsPerSource),
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	if opts.TLSConfig != nil {
		s.tlsConfig = opts.TLSConfig.Clone()
		if s.tlsConfig.MinVersion < tls.VersionTLS12 {
			s.tlsConfig.MinVersion = tls.VersionTLS12
		}
	}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = opts.Domain
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.WriteTimeout
	// go-smtp's check is all-or-nothing per server; sessions decide per
	// connection (TLS, loopback) and refuse with 530 themselves.
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = false // SES takes no SMTPUTF8 addresses
	srv.ErrorLog = errorLog{s.log}
	if !opts.ImplicitTLS && s.tlsConfig != nil {
		// Advertises STARTTLS. The hook tells the connection that TLS is
		// starting under go-smtp (see trackedConn: no farewell in plaintext
		// into a TLS stream).
		starttls := s.tlsConfig.Clone()
		inner := starttls.GetConfigForClient
		starttls.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			if tc, ok := hi.Conn.(*trackedConn); ok {
				tc.startTLS()
			}
			if inner != nil {
				return inner(hi)
			}
			return nil, nil
		}
		srv.TLSConfig = starttls
	}
	s.smtp = srv
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve accepts connections on l until Shutdown, then returns
// ErrServerClosed. It refuses a listener on
// which AUTH could never succeed: not loopback, no TLS, no AllowInsecureAuth.
func (s *Server) Serve(l net.Listener) error {
	if s.tlsConfig == nil && !s.opts.AllowInsecureAuth && (s.opts.TreatAsPublic || !isLocal(l.Addr())) {
		return fmt.Errorf("smtpd: listener %s is not loopback and no TLS is configured: every AUTH would be refused (set TLSConfig, or AllowInsecureAuth)", l.Addr())
	}
	wl := &listener{Listener: l, srv: s}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, wl)
	s.mu.Unlock()
	s.log.Info("smtp listening", slog.String("addr", l.Addr().String()),
		slog.Bool("starttls", s.tlsConfig != nil && !s.opts.ImplicitTLS),
		slog.Bool("implicit_tls", s.opts.ImplicitTLS))
	err := s.smtp.Serve(wl)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if err == nil || closing {
		// Shutdown closed the listener (go-smtp returns nil, or the accept
		// error when our close came first).
		return ErrServerClosed
	}
	return err
}

// Addr returns the address of the first listener Serve was given, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

// Shutdown stops accepting connections, closes idle sessions with
// "421 4.3.2 Service shutting down", and waits for sessions with an open
// transaction (a message in DATA, or being submitted) to finish: each gets
// its reply, then that 421, then its connection closes. When ctx ends
// first, every connection is closed, every session context is cancelled
// (which cancels Submit calls in flight), and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closing = true
	var lerr error
	for _, l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) && lerr == nil {
			lerr = err
		}
	}
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.log.Info("smtp shutting down", slog.Int("sessions", len(conns)))
	// Every session is marked first, then the idle ones end: once any
	// session has seen its 421, none can start a new transaction.
	for _, c := range conns {
		c.markDraining(farewellShutdown)
	}
	for _, c := range conns {
		c.endIfIdle()
	}
	// go-smtp's Shutdown closes its listeners (already closed) and waits
	// for every connection handler to return.
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if ctx.Err() != nil {
		s.mu.Lock()
		for c := range s.conns {
			c.kill()
			_ = c.Conn.Close()
		}
		n := len(s.conns)
		s.mu.Unlock()
		s.cancel()
		s.log.Warn("smtp shutdown deadline passed; connections closed", slog.Int("sessions", n))
		return ctx.Err()
	}
	s.cancel()
	if err == nil {
		err = lerr
	}
	return err
}

// track registers a new connection, or answers it 421 when over a limit
// (in all, or from its source) or shutting down.
func (s *Server) track(c net.Conn) (*trackedConn, bool) {
	src := gateway.SourceKey(gateway.ClientAddr(c.RemoteAddr()))
	s.mu.Lock()
	closing, full := s.closing, len(s.conns) >= s.opts.MaxConnections
	over := !closing && !full && src.IsValid() && !s.perSource.Take(src)
	if closing || full || over {
		s.mu.Unlock()
		switch {
		case closing:
			_ = c.Close()
		case full:
			s.logRefused(&s.refusedFull, "smtp connection refused: too many connections", c,
				slog.Int("max", s.opts.MaxConnections))
			s.reject(c, "421 4.7.0 Too many connections")
		default:
			s.logRefused(&s.refusedSource, "smtp connection refused: too many connections from one source", c,
				slog.String("source", src.String()), slog.Int("max_per_source", s.opts.MaxConnectionsPerSource))
			s.reject(c, "421 4.7.0 Too many connections from your address")
		}
		return nil, false
	}
	tc := &trackedConn{
		Conn:         c,
		srv:          s,
		id:           gateway.NewID(s.opts.Now()),
		source:       src,
		readTimeout:  s.opts.ReadTimeout,
		preAuthIdle:  s.opts.PreAuthReadTimeout,
		authTimeout:  s.opts.AuthTimeout,
		authDeadline: time.Now().Add(s.opts.AuthTimeout),
	}
	tc.timer = time.AfterFunc(s.opts.MaxSessionDuration, func() { tc.drain("") })
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc, true
}

func (s *Server) untrack(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.source.IsValid() {
		s.perSource.Give(c.source)
	}
	s.mu.Unlock()
}

// logRefused logs a refused connection, at most once per refusalLogEvery
// for each reason.
func (s *Server) logRefused(t *logThrottle, msg string, c net.Conn, attrs ...any) {
	ok, suppressed := t.allow(s.opts.Now())
	if !ok {
		return
	}
	attrs = append(attrs, slog.String("remote", c.RemoteAddr().String()), slog.Int("not_logged_since_last", suppressed))
	s.log.Warn(msg, attrs...)
}

// reject answers a connection over a limit with line and closes it, in a
// bounded number of goroutines (implicit TLS needs a handshake first).
func (s *Server) reject(c net.Conn, line string) {
	select {
	case s.rejecters <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-s.rejecters }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(rejectTimeout))
		var w io.Writer = c
		if s.opts.ImplicitTLS {
			tc := tls.Server(c, s.tlsConfig)
			if err := tc.Handshake(); err != nil {
				return
			}
			w = tc
		}
		_, _ = io.WriteString(w, line+"\r\n")
	}()
}

// errorLog sends go-smtp's internal errors to the structured log.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) {
	l.log.Warn("smtp: " + fmt.Sprintf(format, v...))
}

func (l errorLog) Println(v ...any) {
	l.log.Warn("smtp: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
