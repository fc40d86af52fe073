// Package thinrelay is the thin relay sesgate-bench measures the gateway
// against: "the same stack without the gateway". An SMTP server on
// emersion/go-smtp that takes any MAIL FROM and RCPT TO without AUTH,
// reads DATA into memory and sends it with one aws-sdk-go-v2 sesv2 client
// (SendEmail, Raw content, the envelope's recipients as the Destination),
// answering 250 with SES's MessageId, or 451 when SES answered an error.
//
// It is written the way a typical small open-source relay is: one SES
// client with the SDK's default settings (HTTP client, retryer) but for
// the endpoint, region and credentials; no policy, no authentication, no
// queue. It is a benchmark baseline, not a product: it listens on
// loopback only (Listen refuses any other address).
//
// Invariants:
//   - 250 only after SES returned a MessageId; any SES error is 451 4.4.2.
//   - Bounded: a message by MaxMessageBytes, recipients by MaxRecipients,
//     every command by ReadTimeout/WriteTimeout, every SES call by
//     SendTimeout.
package thinrelay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/emersion/go-smtp"
)

// Bounds of the relay.
const (
	MaxMessageBytes = 40 << 20 // SES v2's raw message limit
	MaxRecipients   = 50       // SES's per-message limit
	ReadTimeout     = time.Minute
	WriteTimeout    = time.Minute
	SendTimeout     = time.Minute
)

// Options configure a Relay.
type Options struct {
	Endpoint    string // SES base URL, e.g. http://127.0.0.1:port
	Region      string
	Credentials aws.CredentialsProvider
	// Domain is the name the SMTP server greets with; default localhost.
	Domain string
}

// Relay is the thin relay: an SMTP server and one SES client.
type Relay struct {
	ses *sesv2.Client
	srv *smtp.Server
}

// New makes the relay; Serve or ListenAndServe runs it.
func New(o Options) (*Relay, error) {
	if o.Endpoint == "" || o.Region == "" || o.Credentials == nil {
		return nil, errors.New("thinrelay: SES endpoint, region and credentials required")
	}
	r := &Relay{ses: sesv2.New(sesv2.Options{
		Region: o.Region, BaseEndpoint: aws.String(o.Endpoint), Credentials: o.Credentials,
	})}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{r: r}, nil }))
	s.Domain = o.Domain
	if s.Domain == "" {
		s.Domain = "localhost"
	}
	s.MaxMessageBytes, s.MaxRecipients = MaxMessageBytes, MaxRecipients
	s.ReadTimeout, s.WriteTimeout = ReadTimeout, WriteTimeout
	r.srv = s
	return r, nil
}

// Listen opens a loopback listener at addr (host:port, port 0 for any).
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("thinrelay: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("thinrelay: %s is not a loopback address: the relay has no authentication", addr)
	}
	return net.Listen("tcp", addr)
}

// Serve answers SMTP on ln until Close.
func (r *Relay) Serve(ln net.Listener) error {
	err := r.srv.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and closes every connection.
func (r *Relay) Close() error { return r.srv.Close() }

// session is one SMTP connection's transaction.
type session struct {
	r     *Relay
	from  string
	rcpts []string
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data reads the message into memory and sends it; the answer is SES's.
func (s *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return err // go-smtp answers a message over MaxMessageBytes itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), SendTimeout)
	defer cancel()
	in := &sesv2.SendEmailInput{
		Destination: &types.Destination{ToAddresses: s.rcpts},
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: buf.Bytes()}},
	}
	if s.from != "" {
		in.FromEmailAddress = aws.String(s.from)
	}
	out, err := s.r.ses.SendEmail(ctx, in)
	if err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "SES: " + oneLine(err.Error())}
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + aws.ToString(out.MessageId)}
}

// oneLine keeps an SES error to one bounded reply line.
func oneLine(s string) string {
	s = string(bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, []byte(s)))
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
