package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// SMTPOptions configure SMTP senders: one connection per sender, reused.
type SMTPOptions struct {
	Addr     string // host:port
	User     string // AUTH PLAIN username (the tenant id)
	Token    string // AUTH PLAIN password
	StartTLS bool
	// TLSConfig is used for STARTTLS; ServerName defaults to Addr's host.
	TLSConfig *tls.Config
	// PerConn is how many messages a connection carries before QUIT and a
	// new connection; 0: as many as the run needs.
	PerConn int
	// Pipelining sends MAIL, RCPT and DATA in one write and then reads
	// their three replies (RFC 2920), as MTAs do; the server must offer
	// PIPELINING.
	Pipelining bool
	Message    Message
	// NoAuth skips AUTH (the thin relay has none).
	NoAuth bool
	// Helo is the EHLO name; default sesgate-bench.localhost.
	Helo string
	// DialTimeout bounds connecting; default 5s.
	DialTimeout time.Duration
}

// SMTP makes SMTP senders.
type SMTP struct {
	opts SMTPOptions
	from string
	raws [][]byte
	auth string
}

// NewSMTP prepares the messages.
func NewSMTP(opts SMTPOptions) (*SMTP, error) {
	if opts.Addr == "" {
		return nil, errors.New("load: SMTP address required")
	}
	if opts.Helo == "" {
		opts.Helo = "sesgate-bench.localhost"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.StartTLS {
		c := &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.TLSConfig != nil {
			c = opts.TLSConfig.Clone()
		}
		if c.ServerName == "" {
			c.ServerName, _, _ = net.SplitHostPort(opts.Addr)
		}
		opts.TLSConfig = c
	}
	m := opts.Message.withDefaults()
	opts.Message = m
	return &SMTP{
		opts: opts, from: m.From, raws: m.raw(),
		auth: base64.StdEncoding.EncodeToString([]byte("\x00" + opts.User + "\x00" + opts.Token)),
	}, nil
}

// NewSender returns a sender with its own connection, opened at its first
// send.
func (s *SMTP) NewSender(int) (Sender, error) { return &smtpSender{s: s}, nil }

type smtpSender struct {
	s    *SMTP
	conn net.Conn
	tp   *textproto.Conn
	used int
}

// replyError is a reply with an unexpected code.
type replyError struct {
	code int
	msg  string
}

func (e *replyError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

// outcome turns an error of a step into an Outcome: the reply code when the
// server answered, CodeError when the connection failed.
func outcome(err error) Outcome {
	var re *replyError
	if errors.As(err, &re) {
		return Outcome{Code: strconv.Itoa(re.code), Err: err}
	}
	return Outcome{Code: CodeError, Err: err}
}

func (c *smtpSender) Send(ctx context.Context, seq int64) Outcome {
	if c.tp == nil {
		if err := c.connect(ctx); err != nil {
			c.drop()
			return outcome(err)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	}
	out := c.transaction(seq)
	c.used++
	switch {
	case out.Code == CodeError || out.Code == "421":
		c.drop()
	case out.Code != "250":
		// Abandon the transaction; a connection that cannot is dropped.
		if _, err := c.cmd(250, "RSET"); err != nil {
			c.drop()
		}
	}
	if c.tp != nil && c.s.opts.PerConn > 0 && c.used >= c.s.opts.PerConn {
		_, _ = c.cmd(221, "QUIT")
		c.drop()
	}
	return out
}

func (c *smtpSender) transaction(seq int64) Outcome {
	raw := c.s.raws[seq%int64(len(c.s.raws))]
	rcpt := c.s.opts.Message.rcpt(seq)
	if c.s.opts.Pipelining {
		if err := c.pipelined(rcpt); err != nil {
			return outcome(err)
		}
	} else {
		if _, err := c.cmd(250, "MAIL FROM:<%s>", c.s.from); err != nil {
			return outcome(err)
		}
		if _, err := c.cmd(250, "RCPT TO:<%s>", rcpt); err != nil {
			return outcome(err)
		}
		if _, err := c.cmd(354, "DATA"); err != nil {
			return outcome(err)
		}
	}
	w := c.tp.W
	if _, err := w.Write(raw); err != nil {
		return outcome(err)
	}
	if _, err := w.WriteString(".\r\n"); err != nil {
		return outcome(err)
	}
	if err := w.Flush(); err != nil {
		return outcome(err)
	}
	msg, err := c.read(250)
	if err != nil {
		return outcome(err)
	}
	out := Outcome{Code: "250"}
	out.SESID = sesID(msg)
	return out
}

// pipelined sends MAIL, RCPT and DATA at once and reads the three replies;
// it returns the first refusal (after reading every reply, so the
// connection stays in step) or the first I/O error.
func (c *smtpSender) pipelined(rcpt string) error {
	w := c.tp.W
	if _, err := fmt.Fprintf(w, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", c.s.from, rcpt); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var first error
	for i, code := range []int{250, 250, 354} {
		_, err := c.read(code)
		var re *replyError
		switch {
		case err == nil && i == 2 && first != nil:
			// DATA accepted after a refusal: end the empty message.
			if _, err := c.cmd(250, "."); err != nil && !errors.As(err, &re) {
				return err
			}
		case err == nil:
		case errors.As(err, &re):
			if first == nil {
				first = err
			}
		default:
			return err
		}
	}
	return first
}

// sesID returns the SES MessageId of a 250 reply: the gateway's "2.0.0
// Ok: queued as <gateway id> ses=<SES MessageId>", or the thin relay's
// "2.0.0 Ok: queued as <SES MessageId>".
func sesID(msg string) string {
	if _, after, ok := strings.Cut(msg, "ses="); ok {
		id, _, _ := strings.Cut(after, " ")
		return id
	}
	if _, after, ok := strings.Cut(msg, "queued as "); ok {
		id, _, _ := strings.Cut(after, " ")
		return id
	}
	return ""
}

func (c *smtpSender) connect(ctx context.Context) error {
	o := &c.s.opts
	d := net.Dialer{Timeout: o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c.setConn(conn)
	c.used = 0
	if _, err := c.read(220); err != nil {
		return err
	}
	ext, err := c.cmd(250, "EHLO %s", o.Helo)
	if err != nil {
		return err
	}
	if o.StartTLS {
		if !strings.Contains(ext, "STARTTLS") {
			return errors.New("server does not offer STARTTLS")
		}
		if _, err := c.cmd(220, "STARTTLS"); err != nil {
			return err
		}
		tc := tls.Client(conn, o.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		c.setConn(tc)
		if _, err := c.cmd(250, "EHLO %s", o.Helo); err != nil {
			return err
		}
	}
	if o.Pipelining && !strings.Contains(ext, "PIPELINING") {
		return errors.New("server does not offer PIPELINING")
	}
	if o.NoAuth {
		return nil
	}
	_, err = c.cmd(235, "AUTH PLAIN %s", c.s.auth)
	return err
}

func (c *smtpSender) setConn(conn net.Conn) {
	c.conn = conn
	c.tp = &textproto.Conn{
		Reader: *textproto.NewReader(bufio.NewReaderSize(conn, 4096)),
		Writer: *textproto.NewWriter(bufio.NewWriterSize(conn, 64<<10)),
	}
}

// cmd sends a command and reads its reply, expecting code.
func (c *smtpSender) cmd(code int, format string, args ...any) (string, error) {
	if err := c.tp.PrintfLine(format, args...); err != nil {
		return "", err
	}
	return c.read(code)
}

func (c *smtpSender) read(code int) (string, error) {
	got, msg, err := c.tp.ReadResponse(0) // 0: any code, checked below
	if err != nil {
		return "", err
	}
	if got != code {
		return "", &replyError{code: got, msg: msg}
	}
	return msg, nil
}

func (c *smtpSender) drop() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.conn, c.tp = nil, nil
}

func (c *smtpSender) Close() error {
	if c.tp != nil {
		_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.cmd(221, "QUIT")
	}
	c.drop()
	return nil
}
