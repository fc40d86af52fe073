package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// Envelope is one message as a front end hands it to the pipeline.
type Envelope struct {
	ID         string // gateway message id, set by Submit when empty
	Tenant     *Tenant
	From       string   // envelope sender (MAIL FROM), validated
	Recipients []string // envelope recipients: the SES Destination
	Data       []byte   // raw RFC 5322 message as received
	EightBit   bool     // client declared 8-bit content (8BITMIME)
	Source     netip.Addr
	Via        string // "smtp" or "http", for the log
}

// Result is what a successful Submit returns.
type Result struct {
	ID         string // gateway message id
	ProviderID string // SES MessageId (or the outbox id)
	// Rejected lists recipients dropped from the message (suppressed), each
	// an *Error with Recipient set. The others were sent.
	Rejected []*Error
}

// Authenticator resolves credentials to a tenant. It returns an *Error with
// CodeBadCredentials or CodeAuthThrottled on failure.
type Authenticator interface {
	Authenticate(ctx context.Context, username, token string, src netip.Addr) (*Tenant, error)
}

// Limiter admits or refuses a message for a tenant, all its recipients at
// once: it never admits part of what a limit refuses. A refusal is an
// *Error (CodeRateLimited, CodeQuotaExceeded, CodeFirstContactLimited,
// CodeFrozen, CodeBreakerOpen, CodeStoreUnavailable, ...) with RetryAfter
// set when a later retry can succeed. rejected lists recipients dropped from
// an admitted message (suppressed), each an *Error with Recipient set; they
// are not counted. When no recipient is left, err is an *Error whose
// Rejected lists them. recipients are normalized (ParseAddress) and unique.
type Limiter interface {
	Admit(ctx context.Context, t *Tenant, recipients []string) (rejected []*Error, err error)
}

// TenantChecker is optionally implemented by a Limiter: an in-process check
// (no I/O) that refuses a tenant already known to be over a limit, frozen or
// with an open breaker, before any work is spent on its message.
type TenantChecker interface {
	CheckTenant(t *Tenant) error
}

// RecipientChecker is optionally implemented by a Limiter: the per-recipient
// part of its policy (suppression) that a front end runs as each recipient
// arrives (SMTP RCPT), so a suppressed address is refused there.
type RecipientChecker interface {
	CheckRecipient(ctx context.Context, t *Tenant, addr string) error
}

// Sink delivers an accepted message and returns the provider's message id.
// Failures are *Error values with an upstream code.
type Sink interface {
	Send(ctx context.Context, env *Envelope) (providerID string, err error)
}

// Options configure a Pipeline. Auth and Sink are required.
type Options struct {
	Auth    Authenticator
	Limiter Limiter // nil admits everything
	Sink    Sink
	Logger  *slog.Logger
	Now     func() time.Time
	// Observe, when set, is called once per Submit, after its audit line,
	// with the tenant id ("" when unauthenticated) and nil (sent) or the
	// refusal. It must be quick (metrics).
	Observe func(tenant string, err *Error)
}

// Pipeline runs the policy stages and the sink. It is safe for concurrent use.
type Pipeline struct {
	auth    Authenticator
	limiter Limiter
	sink    Sink
	log     *slog.Logger
	now     func() time.Time
	observe func(string, *Error)
}

// NewPipeline builds a Pipeline from opts.
func NewPipeline(opts Options) *Pipeline {
	p := &Pipeline{auth: opts.Auth, limiter: opts.Limiter, sink: opts.Sink, log: opts.Logger, now: opts.Now, observe: opts.Observe}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// Logger returns the pipeline's logger, for front ends.
func (p *Pipeline) Logger() *slog.Logger { return p.log }

// Authenticate resolves a token to its tenant and checks the client address
// against the tenant's source networks.
func (p *Pipeline) Authenticate(ctx context.Context, username, token string, src netip.Addr) (*Tenant, error) {
	if token == "" {
		return nil, Errorf(CodeAuthRequired, "authentication required")
	}
	t, err := p.auth.Authenticate(ctx, username, token, src)
	if err != nil {
		return nil, err
	}
	if !t.AllowsSource(src) {
		return nil, &Error{Code: CodeSourceNotAllowed, Msg: "client address not allowed for this tenant"}
	}
	return t, nil
}

// CheckSender validates the envelope sender and returns it normalized.
func (p *Pipeline) CheckSender(t *Tenant, from string) (string, error) {
	addr, err := ParseAddress(from)
	if err != nil {
		return "", err
	}
	if !t.AllowsSender(addr) {
		return "", &Error{Code: CodeSenderNotAllowed, Msg: "sender not allowed for this tenant", Recipient: ""}
	}
	return addr, nil
}

// CheckRecipient validates one recipient, the n-th of its message (1-based),
// and returns it normalized.
func (p *Pipeline) CheckRecipient(t *Tenant, rcpt string, n int) (string, error) {
	if n > t.MaxRecipients() {
		return "", &Error{Code: CodeTooManyRecipients, Msg: "too many recipients", Recipient: rcpt}
	}
	addr, err := ParseAddress(rcpt)
	if err != nil {
		ge := AsError(err)
		ge.Recipient = rcpt
		return "", ge
	}
	if !t.AllowsRecipient(addr) {
		return "", &Error{Code: CodeRecipientNotAllowed, Msg: "recipient domain not allowed for this tenant", Recipient: addr}
	}
	return addr, nil
}

// CheckTenant refuses a tenant frozen by the policy file or refused by the
// limiter's in-process cache. It does no I/O; front ends call it before
// reading a message (SMTP MAIL, HTTP before the body), and Submit again.
func (p *Pipeline) CheckTenant(t *Tenant) error {
	if t.Frozen {
		return Errorf(CodeFrozen, "tenant is frozen")
	}
	if tc, ok := p.limiter.(TenantChecker); ok {
		return tc.CheckTenant(t)
	}
	return nil
}

// CheckSuppression runs the limiter's per-recipient check (suppression) on a
// recipient already returned by CheckRecipient. It is nil when the limiter
// has no such check.
func (p *Pipeline) CheckSuppression(ctx context.Context, t *Tenant, addr string) error {
	rc, ok := p.limiter.(RecipientChecker)
	if !ok {
		return nil
	}
	return rc.CheckRecipient(ctx, t, addr)
}

// CheckSize refuses a message larger than the tenant allows.
func (p *Pipeline) CheckSize(t *Tenant, size int64) error {
	if size > t.MaxMessageBytes() {
		return Errorf(CodeTooLarge, "message exceeds %d bytes", t.MaxMessageBytes())
	}
	return nil
}

// Submit checks env completely (sender, every recipient, size, content, rate)
// and hands it to the sink. It returns a Result only once the sink returned a
// provider id. It writes exactly one audit line per call.
func (p *Pipeline) Submit(ctx context.Context, env *Envelope) (res *Result, err error) {
	start := p.now()
	if env.ID == "" {
		env.ID = NewID(start)
	}
	defer func() { p.audit(env, res, err, start) }()

	t := env.Tenant
	if t == nil {
		return nil, Errorf(CodeAuthRequired, "authentication required")
	}
	if err := p.CheckTenant(t); err != nil {
		return nil, err
	}
	if env.From, err = p.CheckSender(t, env.From); err != nil {
		return nil, err
	}
	if len(env.Recipients) == 0 {
		return nil, Errorf(CodeNoRecipients, "no recipients")
	}
	seen := make(map[string]struct{}, len(env.Recipients))
	rcpts := env.Recipients[:0:0]
	for _, r := range env.Recipients {
		addr, err := p.CheckRecipient(t, r, len(rcpts)+1)
		if err != nil {
			return nil, err
		}
		if _, dup := seen[addr]; dup {
			continue
		}
		seen[addr] = struct{}{}
		rcpts = append(rcpts, addr)
	}
	env.Recipients = rcpts
	if err := p.CheckSize(t, int64(len(env.Data))); err != nil {
		return nil, err
	}
	msg, err := PrepareMessage(env.Data, env.EightBit)
	if err != nil {
		return nil, err
	}
	if err := msg.CheckIdentities(t); err != nil {
		return nil, err
	}
	env.Data = msg.Data
	var rejected []*Error
	if p.limiter != nil {
		if rejected, err = p.limiter.Admit(ctx, t, env.Recipients); err != nil {
			return nil, err
		}
		if len(rejected) > 0 {
			env.Recipients = dropRecipients(env.Recipients, rejected)
			if len(env.Recipients) == 0 { // a Limiter breaking its contract
				return nil, &Error{Code: rejected[0].Code, Msg: "no recipient left", Rejected: rejected}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, Wrap(CodeShuttingDown, err, "request cancelled before sending")
	}
	id, err := p.sink.Send(ctx, env)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, Wrap(CodeUpstreamUnavailable, errors.New("sink returned no message id"), "upstream did not confirm the message")
	}
	return &Result{ID: env.ID, ProviderID: id, Rejected: rejected}, nil
}

// dropRecipients returns rcpts without the rejected ones.
func dropRecipients(rcpts []string, rejected []*Error) []string {
	out := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		drop := false
		for _, e := range rejected {
			drop = drop || e.Recipient == r
		}
		if !drop {
			out = append(out, r)
		}
	}
	return out
}

// audit writes the one structured line per message: never a token or a body.
func (p *Pipeline) audit(env *Envelope, res *Result, err error, start time.Time) {
	if p.observe != nil {
		tenant := ""
		if env.Tenant != nil {
			tenant = env.Tenant.ID
		}
		var ge *Error
		if err != nil {
			ge = AsError(err)
		}
		defer p.observe(tenant, ge)
	}
	attrs := []slog.Attr{
		slog.String("id", env.ID),
		slog.String("via", env.Via),
		slog.Int("rcpts", len(env.Recipients)),
		slog.Int("bytes", len(env.Data)),
		slog.Duration("took", p.now().Sub(start)),
	}
	if env.Tenant != nil {
		attrs = append(attrs, slog.String("tenant", env.Tenant.ID))
	}
	if env.Source.IsValid() {
		attrs = append(attrs, slog.String("src", env.Source.String()))
	}
	if err == nil {
		attrs = append(attrs, slog.String("outcome", "sent"), slog.String("ses_id", res.ProviderID))
		if len(res.Rejected) > 0 {
			attrs = append(attrs, slog.Int("rcpts_suppressed", len(res.Rejected)))
		}
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "message", attrs...)
		return
	}
	ge := AsError(err)
	attrs = append(attrs, slog.String("outcome", "refused"), slog.String("code", ge.Code.String()), slog.String("error", ge.Error()))
	level := slog.LevelWarn
	if ge.Code == CodeInternal || ge.Code == CodeUpstreamPaused || ge.Code == CodeUpstreamMisconfigured {
		level = slog.LevelError
	}
	p.log.LogAttrs(context.Background(), level, "message", attrs...)
}
