package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/logthrottle"
)

// session is one go-smtp session: from EHLO to QUIT, or to STARTTLS (which
// starts a new session on the same connection).
type session struct {
	srv    *Server
	sc     *smtp.Conn
	conn   *trackedConn
	id     string // the connection's id, for the log
	remote netip.Addr
	secure bool // TLS, loopback, or AllowInsecureAuth: AUTH and MAIL allowed

	ctx    context.Context // cancelled at Logout or on a forced shutdown
	cancel context.CancelFunc

	authFailures int // go-smtp's goroutine only

	// mu guards the fields below: go-smtp runs Data on its own goroutine
	// for BDAT, concurrently with Reset.
	mu    sync.Mutex
	login *gateway.Login // nil before AUTH, and after the credential went away
	// tenant is the tenant as of the last check (AUTH, then each MAIL and
	// end of DATA re-checks the login).
	tenant   *gateway.Tenant
	from     string
	eightBit bool
	rcpts    []string
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// newSession is the go-smtp Backend: it runs at EHLO/HELO.
func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	tc, ok := rawConn(nc)
	if !ok { // cannot happen: every connection comes through listener
		stray := &session{srv: s, id: "-", remote: gateway.ClientAddr(nc.RemoteAddr())}
		return nil, stray.reply(gateway.Wrap(gateway.CodeInternal, errors.New("smtpd: connection not accepted by this server"), "internal error"))
	}
	_, isTLS := c.TLSConnectionState()
	if t, ok := nc.(*tls.Conn); ok { // handshake complete
		tc.setTLS(t)
	}
	local := isLocal(nc.LocalAddr()) && !s.opts.TreatAsPublic
	sess := &session{
		srv:    s,
		sc:     c,
		conn:   tc,
		id:     tc.id,
		remote: gateway.ClientAddr(nc.RemoteAddr()),
		secure: isTLS || local || s.opts.AllowInsecureAuth,
	}
	sess.ctx, sess.cancel = context.WithCancel(s.base)
	if err := sess.ending(); err != nil {
		sess.cancel()
		return nil, err
	}
	if tc.isDraining() {
		sess.cancel()
		tc.kill()
		return nil, sess.reply(gateway.Errorf(gateway.CodeShuttingDown, msgShuttingDown))
	}
	s.log.Debug("smtp session", slog.String("session", sess.id), slog.String("remote", sess.remote.String()),
		slog.Bool("tls", isTLS), slog.Bool("secure", sess.secure))
	return sess, nil
}

// ending refuses a command on a connection that is ending: a line cut
// short by a deadline, or read ahead before the end, must do nothing. When
// draining, the reply is the shutdown one and replaces the farewell.
func (s *session) ending() error {
	if !s.conn.isKilled() {
		return nil
	}
	if s.conn.isDraining() {
		s.conn.kill()
		return s.reply(gateway.Errorf(gateway.CodeShuttingDown, msgShuttingDown))
	}
	return s.reply(gateway.Wrap(gateway.CodeInternal, errClientGone, "connection closing"))
}

func (s *session) currentTenant() *gateway.Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenant
}

// AuthMechanisms lists PLAIN and LOGIN where AUTH is allowed, and nothing
// (so AUTH is not advertised) where it would be refused.
func (s *session) AuthMechanisms() []string {
	if !s.secure {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an AUTH exchange.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if err := s.ending(); err != nil {
		return nil, err
	}
	if !s.secure {
		return nil, s.reply(gateway.Errorf(gateway.CodeTLSRequired, "Must issue a STARTTLS command first"))
	}
	if s.authFailures >= maxAuthFailures {
		s.conn.kill()
		return nil, s.reply(gateway.Errorf(gateway.CodeAuthThrottled, "too many failed authentication attempts"))
	}
	var inner sasl.Server
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		inner = sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed(gateway.Errorf(gateway.CodeBadCredentials, "authorization identity must be empty or the username"))
			}
			return s.authenticate(username, password)
		})
	case sasl.Login:
		inner = newLoginServer(s.authenticate)
	default:
		return nil, s.reply(gateway.Errorf(gateway.CodeMalformed, "unsupported authentication mechanism"))
	}
	return &saslServer{s: s, inner: inner}, nil
}

// saslServer turns a mechanism's own errors (malformed exchange) into
// replies, so go-smtp never shows a raw error text.
type saslServer struct {
	s     *session
	inner sasl.Server
}

func (a *saslServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := a.inner.Next(response)
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			err = a.s.authFailed(gateway.Wrap(gateway.CodeMalformed, err, "malformed authentication exchange"))
		}
	}
	return challenge, done, err
}

// authenticate resolves the username (tenant id) and token to a tenant.
func (s *session) authenticate(username, token string) error {
	if err := s.ending(); err != nil {
		return err
	}
	if len(username) > maxUsername || len(token) > maxLoginField {
		return s.authFailed(gateway.Errorf(gateway.CodeBadCredentials, "authentication failed"))
	}
	ctx, cancel := context.WithTimeout(s.ctx, authTimeout)
	defer cancel()
	l, err := s.srv.pipeline.Login(ctx, username, token, s.remote)
	if err != nil {
		return s.authFailed(err)
	}
	t := l.Tenant
	s.mu.Lock()
	s.login, s.tenant = l, t
	s.mu.Unlock()
	s.conn.setAuthed(true)
	s.srv.log.Info("smtp authenticated", slog.String("session", s.id),
		slog.String("remote", s.remote.String()), slog.String("tenant", t.ID))
	return nil
}

// authFailed counts a failed attempt, ends the connection after the last
// allowed one, and returns the reply.
func (s *session) authFailed(err error) error {
	s.authFailures++
	if s.authFailures >= maxAuthFailures {
		s.conn.kill()
	}
	return s.reply(err)
}

// recheck resolves the session's login against the current tokens and
// policy (in process): the tenant as it is now. When the credential is
// gone (revoked, expired, tenant removed) or the client's address is no
// longer allowed, the session ends after the reply: go-smtp takes one AUTH
// per connection, so the client reconnects to authenticate again.
func (s *session) recheck() (*gateway.Tenant, error) {
	s.mu.Lock()
	l := s.login
	s.mu.Unlock()
	if l == nil {
		return nil, gateway.Errorf(gateway.CodeAuthRequired, "Authentication required")
	}
	t, err := s.srv.pipeline.Recheck(l)
	if err != nil {
		s.mu.Lock()
		s.login = nil // s.tenant stays, for the log
		s.mu.Unlock()
		s.conn.kill()
		return nil, err
	}
	s.mu.Lock()
	s.tenant = t
	s.mu.Unlock()
	return t, nil
}

// Mail starts a transaction: TLS, AUTH (re-checked), sender identity,
// tenant state, declared size.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := s.ending(); err != nil {
		return err
	}
	if !s.secure {
		return s.reply(gateway.Errorf(gateway.CodeTLSRequired, "Must issue a STARTTLS command first"))
	}
	t, err := s.recheck()
	if err != nil {
		return s.reply(err)
	}
	// MAIL FROM:<> (the null sender, for auto-replies and notifications)
	// is accepted: Submit then holds the From header to the tenant's
	// identities and SES takes the sender from it.
	addr := ""
	if from != "" {
		if addr, err = s.srv.pipeline.CheckSender(t, from); err != nil {
			return s.reply(err)
		}
	}
	// A tenant frozen, or over a limit and still in the limiter's cache,
	// is refused before any recipient or body is read.
	if err := s.srv.pipeline.CheckTenant(t); err != nil {
		return s.reply(err)
	}
	if opts != nil && opts.Size > 0 {
		if err := s.srv.pipeline.CheckSize(t, opts.Size); err != nil {
			return s.reply(err)
		}
	}
	if !s.conn.beginTx() {
		s.conn.kill()
		return s.reply(gateway.Errorf(gateway.CodeShuttingDown, msgShuttingDown))
	}
	s.mu.Lock()
	s.from = addr
	s.eightBit = opts != nil && opts.Body == smtp.Body8BitMIME
	s.rcpts = s.rcpts[:0]
	s.mu.Unlock()
	return nil
}

// Rcpt adds the n-th recipient, or refuses this one and keeps the others.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.ending(); err != nil {
		return err
	}
	s.mu.Lock()
	t, n := s.tenant, len(s.rcpts)+1
	if s.login == nil {
		t = nil
	}
	s.mu.Unlock()
	if t == nil {
		return s.reply(gateway.Errorf(gateway.CodeAuthRequired, "Authentication required"))
	}
	addr, err := s.srv.pipeline.CheckRecipient(t, to, n)
	if err != nil {
		return s.reply(err)
	}
	// Suppression (tenant and global lists) is one store read per RCPT.
	ctx, cancel := context.WithTimeout(s.ctx, rcptTimeout)
	err = s.srv.pipeline.CheckSuppression(ctx, t, addr)
	cancel()
	if err != nil {
		return s.reply(err)
	}
	s.mu.Lock()
	s.rcpts = append(s.rcpts, addr)
	s.mu.Unlock()
	return nil
}

// Data reads the body under the size bound and submits the message. The
// 250 reply is built here, after Submit returned a Result.
func (s *session) Data(r io.Reader) error {
	if err := s.ending(); err != nil {
		return err
	}
	s.mu.Lock()
	t, from, eightBit := s.tenant, s.from, s.eightBit
	rcpts := append([]string(nil), s.rcpts...)
	s.mu.Unlock()
	if t == nil {
		return s.reply(gateway.Errorf(gateway.CodeAuthRequired, "Authentication required"))
	}

	limit := min(s.srv.opts.MaxMessageBytes, t.MaxMessageBytes())
	s.conn.beginData(time.Now().Add(s.srv.opts.DataTimeout))
	buf := gateway.NewMessageBuffer(s.srv.budget)
	defer buf.Release()
	if _, err := io.Copy(buf, io.LimitReader(r, limit+1)); err != nil {
		if !errors.Is(err, gateway.ErrBudgetFull) {
			return s.dataFailed(err, limit)
		}
		if derr := discardRest(r); derr != nil {
			return s.dataFailed(derr, limit)
		}
		return s.reply(gateway.Wrap(gateway.CodeInternal, err, "gateway busy, try again later"))
	}
	if size := buf.Len(); size > limit {
		if derr := discardRest(r); derr != nil {
			return s.dataFailed(derr, limit)
		}
		err := s.srv.pipeline.CheckSize(t, size)
		if err == nil {
			err = gateway.Errorf(gateway.CodeTooLarge, "message exceeds %d bytes", limit)
		}
		return s.reply(err)
	}

	// The end of DATA: the message is decided on the credential and the
	// tenant as they are now, not as they were at MAIL.
	t, err := s.recheck()
	if err != nil {
		return s.reply(err)
	}
	env := &gateway.Envelope{
		Tenant:     t,
		From:       from,
		Recipients: rcpts,
		Data:       buf.Bytes(), // held once (see gateway.MessageBuffer)
		DataOwned:  true,        // and prepared over itself
		EightBit:   eightBit,
		Source:     s.remote,
		Via:        "smtp",
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.opts.SubmitTimeout)
	defer cancel()
	res, err := s.srv.pipeline.Submit(ctx, env)
	if err != nil {
		return s.reply(err)
	}
	return &smtp.SMTPError{
		Code:         250,
		EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message:      "Ok: queued as " + replyID(res.ID) + " ses=" + replyID(res.ProviderID),
	}
}

// discardRest reads and drops the rest of a refused body, so the connection
// stays usable. Past go-smtp's own size limit, go-smtp discards the rest
// itself after Data returns.
func discardRest(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	if errors.Is(err, smtp.ErrDataTooLarge) {
		return nil
	}
	return err
}

// dataFailed explains a body that could not be read. Nothing is submitted.
func (s *session) dataFailed(err error, limit int64) error {
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return s.reply(gateway.Errorf(gateway.CodeTooLarge, "message exceeds %d bytes", limit))
	case errors.Is(err, smtp.ErrTooLongLine):
		// go-smtp stops reading at a line over its limit and closes the
		// connection after this reply.
		return s.reply(gateway.Errorf(gateway.CodeBadContent, "line longer than %d characters", gateway.MaxLineLength))
	}
	why := "connection error"
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && s.conn.dataDeadlinePassed():
		why = "DATA took longer than the data timeout"
	case errors.Is(err, os.ErrDeadlineExceeded):
		why = "read timeout: client stopped sending"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		why = "client closed the connection"
	case errors.Is(err, smtp.ErrDataReset):
		why = "client aborted the transfer"
	}
	attrs := []slog.Attr{
		slog.String("session", s.id),
		slog.String("remote", s.remote.String()),
		slog.String("reason", why),
		slog.String("error", err.Error()),
	}
	who := logthrottle.Source(gateway.SourceKey(s.remote))
	if t := s.currentTenant(); t != nil {
		attrs = append(attrs, slog.String("tenant", t.ID))
		who = t.ID
	}
	s.srv.pipeline.Refusals().Log(context.Background(), s.srv.log, slog.LevelWarn, who, why, "smtp DATA aborted; nothing submitted", attrs...)
	return s.reply(gateway.Wrap(gateway.CodeInternal, fmt.Errorf("%w: %w", errClientGone, err), "message data not received: "+why))
}

// replyID keeps a provider id safe for a reply line.
func replyID(id string) string {
	const maxID = 256
	id = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f {
			return -1
		}
		return r
	}, id)
	if len(id) > maxID {
		id = id[:maxID]
	}
	if id == "" {
		return "-"
	}
	return id
}

// Reset ends the transaction. go-smtp calls it after writing the DATA reply,
// on RSET and on a new EHLO.
func (s *session) Reset() {
	s.mu.Lock()
	s.from, s.eightBit, s.rcpts = "", false, nil
	s.mu.Unlock()
	s.conn.endTx()
}

// Logout ends the session (connection closed, or STARTTLS: then the
// connection is TLS from now on, and not authenticated).
func (s *session) Logout() error {
	s.cancel()
	s.conn.endTx()
	s.conn.setAuthed(false)
	if t, ok := s.sc.Conn().(*tls.Conn); ok {
		s.conn.setTLS(t)
	}
	return nil
}
