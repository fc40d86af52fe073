package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sesgate/sesgate/gateway/logthrottle"
)

// Envelope is one message as a front end hands it to the pipeline.
type Envelope struct {
	ID         string // gateway message id, set by Submit when empty
	Tenant     *Tenant
	From       string   // envelope sender (MAIL FROM), validated; "" is the null sender
	Recipients []string // envelope recipients: the SES Destination
	Data       []byte   // raw RFC 5322 message as received
	EightBit   bool     // client declared 8-bit content (8BITMIME)
	Source     netip.Addr
	Via        string // "smtp" or "http", for the log
	// SES are the SES parameters the app chose through the front end
	// (JSON fields); Submit merges those of the message's X-SES-* header
	// fields (MergeSESParams) and refuses what the tenant may not use
	// (Tenant.CheckSESParams) before any shared state.
	SES SESParams
	// Template, when set, is SES template content and Data is empty: SES
	// renders the message (the SES API's Template content).
	Template *Template
	// DataOwned hands Data over to Submit, which may then prepare the
	// message in place (PrepareMessageInPlace) instead of copying it: the
	// caller must not read Data's old contents after Submit.
	DataOwned bool
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

// CredentialLookup is optionally implemented by an Authenticator: it finds
// a credential that authenticated earlier in the current credential table,
// in process (no I/O) and without counting a failure, so that a long
// session sees a revocation, an expiry or a policy reload (Pipeline.Recheck).
type CredentialLookup interface {
	// CredentialRef returns a reference to token's credential that holds
	// no secret, or "" for a token of the wrong shape.
	CredentialRef(token string) string
	// Lookup returns the tenant that ref names now (a policy reload builds
	// new Tenants), or nil when the credential was revoked, has expired or
	// its tenant was removed.
	Lookup(ref string) *Tenant
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

// RatePeeker is optionally implemented by a Limiter: an in-process look
// (no I/O, nothing taken) that refuses a tenant whose rate has no room for
// even one more message now. HTTP calls it before reading a body.
type RatePeeker interface {
	PeekRate(t *Tenant) error
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
	// Observe, when set, is called once per message outcome with the
	// tenant id ("" when unauthenticated) and nil (sent) or the refusal:
	// by Submit, after its audit line, and by Refused for a refusal a front
	// end answers before or outside Submit. It must be quick (metrics).
	Observe func(tenant string, err *Error)
	// Refusals bounds the log lines of refusals: Submit's refused audit
	// lines and the front ends' refusal lines. nil writes every line. The
	// audit line of an accepted message is never throttled.
	Refusals *logthrottle.Throttle
}

// Pipeline runs the policy stages and the sink. It is safe for concurrent use.
type Pipeline struct {
	auth     Authenticator
	limiter  Limiter
	sink     Sink
	log      *slog.Logger
	now      func() time.Time
	observe  func(string, *Error)
	refusals *logthrottle.Throttle
}

// NewPipeline builds a Pipeline from opts.
func NewPipeline(opts Options) *Pipeline {
	p := &Pipeline{auth: opts.Auth, limiter: opts.Limiter, sink: opts.Sink, log: opts.Logger, now: opts.Now, observe: opts.Observe, refusals: opts.Refusals}
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

// Refusals returns the throttle of refusal log lines (nil: none), for the
// front ends' one place where errors are logged.
func (p *Pipeline) Refusals() *logthrottle.Throttle {
	if p == nil {
		return nil
	}
	return p.refusals
}

// Refused counts a refusal that a front end answers (Options.Observe),
// with t the tenant (nil before authentication). A refusal Submit returned
// was counted by Submit and is not counted again, so each refusal counts
// once wherever it was decided.
func (p *Pipeline) Refused(t *Tenant, err error) {
	if p == nil || p.observe == nil || err == nil {
		return
	}
	ge := AsError(err)
	if ge.observed {
		return
	}
	id := ""
	if t != nil {
		id = t.ID
	}
	p.observe(id, ge)
}

// TenantOf returns the tenant token names now, or nil (unknown, revoked,
// or an Authenticator without CredentialLookup). It does no I/O and counts
// no failure: for log keys and metric labels, never for a decision.
func (p *Pipeline) TenantOf(token string) *Tenant {
	cl, ok := p.auth.(CredentialLookup)
	if !ok || token == "" {
		return nil
	}
	ref := cl.CredentialRef(token)
	if ref == "" {
		return nil
	}
	return cl.Lookup(ref)
}

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

// Login is a successful authentication that a session keeps for its
// lifetime and re-checks before each message (Recheck).
type Login struct {
	Tenant   *Tenant // as authenticated
	username string
	ref      string // the CredentialLookup's reference; "" without one
	src      netip.Addr
}

// Login authenticates like Authenticate and returns what Recheck needs to
// find the credential again; the token itself is not kept.
func (p *Pipeline) Login(ctx context.Context, username, token string, src netip.Addr) (*Login, error) {
	t, err := p.Authenticate(ctx, username, token, src)
	if err != nil {
		return nil, err
	}
	l := &Login{Tenant: t, username: username, src: src}
	if cl, ok := p.auth.(CredentialLookup); ok {
		l.ref = cl.CredentialRef(token)
	}
	return l, nil
}

// Recheck resolves l against the current credentials and policy, in
// process: it returns the tenant as it is now (new limits, identities, a
// freeze), or CodeBadCredentials when the token was revoked, has expired,
// or its tenant was removed or no longer holds it, or CodeSourceNotAllowed
// when the tenant's networks no longer include the client. With an
// Authenticator that is no CredentialLookup, it returns l.Tenant.
func (p *Pipeline) Recheck(l *Login) (*Tenant, error) {
	cl, ok := p.auth.(CredentialLookup)
	if !ok || l.ref == "" {
		return l.Tenant, nil
	}
	t := cl.Lookup(l.ref)
	if t == nil || (l.username != "" && l.username != t.ID) {
		return nil, Errorf(CodeBadCredentials, "credentials no longer valid (revoked, expired or tenant removed)")
	}
	if !t.AllowsSource(l.src) {
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

// PeekRate refuses a tenant whose rate has no room for one more message
// now, as far as the limiter knows without I/O (RatePeeker); nil when the
// limiter cannot tell. It takes nothing: Submit still decides.
func (p *Pipeline) PeekRate(t *Tenant) error {
	if rp, ok := p.limiter.(RatePeeker); ok {
		return rp.PeekRate(t)
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
	defer func() {
		if err != nil {
			// A copy marked as counted, so that the front end's Refused
			// does not count it again (a limiter may share its errors).
			c := *AsError(err)
			c.observed = true
			err = &c
		}
		p.audit(env, res, err, start)
	}()

	t := env.Tenant
	if t == nil {
		return nil, Errorf(CodeAuthRequired, "authentication required")
	}
	if err := p.CheckTenant(t); err != nil {
		return nil, err
	}
	// An empty envelope sender is the null sender (MAIL FROM:<>, for
	// auto-replies and notifications): SES then takes the sender from the
	// From header, which CheckIdentities below holds to the identities.
	if env.From != "" {
		if env.From, err = p.CheckSender(t, env.From); err != nil {
			return nil, err
		}
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
	if tpl := env.Template; tpl != nil {
		// SES writes the header from env.From (checked above) and the
		// template's destination: nothing else can name an originator.
		if len(env.Data) > 0 {
			return nil, Wrap(CodeInternal, errors.New("envelope with both a template and data"), "internal error")
		}
		if err := tpl.Check(); err != nil {
			return nil, err
		}
		if err := tpl.CheckFrom(env.From); err != nil {
			return nil, err
		}
		if err := p.CheckSize(t, tpl.Size()); err != nil {
			return nil, err
		}
	} else {
		if err := p.CheckSize(t, int64(len(env.Data))); err != nil {
			return nil, err
		}
		prepare := PrepareMessage
		if env.DataOwned {
			prepare = PrepareMessageInPlace
		}
		msg, err := prepare(env.Data, env.EightBit)
		if err != nil {
			return nil, err
		}
		if err := msg.CheckIdentities(t); err != nil {
			return nil, err
		}
		if env.SES, err = MergeSESParams(env.SES, msg.SES); err != nil {
			return nil, err
		}
		env.Data = msg.Data
	}
	// The SES parameters (the front end's, merged above with those of the
	// X-SES-* header fields), checked in process, before any shared state.
	if err := t.CheckSESParams(&env.SES); err != nil {
		return nil, err
	}
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
	who := logthrottle.Source(SourceKey(env.Source))
	if env.Tenant != nil {
		who = env.Tenant.ID
	}
	p.refusals.Log(context.Background(), p.log, level, who, ge.Code.String(), "message", attrs...)
}
