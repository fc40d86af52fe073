package ses

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/sesgate/sesgate/gateway"
)

// SES limits the sink checks before calling.
const (
	MaxRecipients   = 50       // To + Cc + Bcc per message
	MaxMessageBytes = 40 << 20 // raw message
	MaxTagLength    = gateway.MaxTagLength
	DefaultTimeout  = 30 * time.Second
	MaxTimeout      = 10 * time.Minute
)

// Tag names the sink puts on every message, for event attribution; they
// start with gateway.ReservedTagPrefix, so an app cannot set them.
const (
	TagTenant = "sesgate-tenant"
	TagID     = "sesgate-id"
)

// Client is the part of *sesv2.Client the sink uses.
type Client interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// Options configure a Sink. Client is required.
type Options struct {
	Client Client
	Logger *slog.Logger
	// Timeout bounds each Send, retries included (default 30 s).
	Timeout time.Duration
	// MaxAttempts bounds attempts per Send under the retry policy of the
	// package doc (default 3, at most 5; 1 disables retries).
	MaxAttempts int
	// DefaultConfigurationSet is used for tenants without one.
	DefaultConfigurationSet string
	// Observe, when set, is called after each SendEmail call (retries
	// included) with its duration and "" on success or the gateway code
	// the error maps to (a bounded set, e.g. ses_throttled). For
	// metrics; it must be quick.
	Observe func(took time.Duration, errType string)
}

// Sink sends messages through SES. It is safe for concurrent use.
type Sink struct {
	client     Client
	log        *slog.Logger
	timeout    time.Duration
	margin     time.Duration
	retryer    *retry.Standard
	defaultSet string
	observe    func(time.Duration, string)
}

var _ gateway.Sink = (*Sink)(nil)

// New returns a Sink built from opts.
func New(opts Options) (*Sink, error) {
	if opts.Client == nil {
		return nil, errors.New("ses: Options.Client is required")
	}
	attempts, err := maxAttempts(opts.MaxAttempts)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0 || timeout > MaxTimeout:
		return nil, fmt.Errorf("ses: timeout %v outside (0, %v]", timeout, MaxTimeout)
	}
	s := &Sink{
		client:     opts.Client,
		log:        opts.Logger,
		timeout:    timeout,
		margin:     min(maxRetryMargin, timeout/4),
		retryer:    newRetryer(attempts),
		defaultSet: opts.DefaultConfigurationSet,
		observe:    opts.Observe,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Send delivers env through SES and returns the SES MessageId.
func (s *Sink) Send(ctx context.Context, env *gateway.Envelope) (string, error) {
	in, err := s.input(env)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	rt := &deadlineRetryer{RetryerV2: s.retryer, deadline: deadline, margin: s.margin}
	opts := []func(*sesv2.Options){func(o *sesv2.Options) { o.Retryer = rt }}
	if _, sdk := s.client.(*sesv2.Client); sdk && in.Content.Raw != nil && len(in.Content.Raw.Data) >= streamMinBytes {
		// The message goes on the wire from env.Data, base64-encoded as
		// it is read (rawbody.go); the SDK serializes a placeholder.
		placeholder, marker := newPlaceholder()
		opts = append(opts, withRawStream(marker, in.Content.Raw.Data))
		in.Content.Raw = &types.RawMessage{Data: placeholder}
	}
	start := time.Now()
	out, err := s.client.SendEmail(ctx, in, opts...)
	if s.observe != nil {
		s.observe(time.Since(start), errType(err))
	}
	if err != nil {
		ge, alert := classify(err)
		level := slog.LevelDebug
		if alert {
			level = slog.LevelError
		}
		s.log.LogAttrs(ctx, level, "ses send failed",
			slog.String("id", env.ID),
			slog.String("tenant", env.Tenant.ID),
			slog.String("code", ge.Code.String()),
			slog.String("ses_error", sesCode(err)),
			slog.String("request_id", requestID(err)),
			slog.Duration("took", time.Since(start)),
			slog.String("error", err.Error()))
		return "", ge
	}
	if out == nil || aws.ToString(out.MessageId) == "" {
		return "", gateway.Wrap(gateway.CodeUpstreamUnavailable, errors.New("SES answered without a MessageId"), "upstream did not confirm the message")
	}
	return *out.MessageId, nil
}

// input builds the SendEmail request of env.
func (s *Sink) input(env *gateway.Envelope) (*sesv2.SendEmailInput, error) {
	switch {
	case env == nil || env.Tenant == nil:
		return nil, gateway.Wrap(gateway.CodeInternal, errors.New("ses: envelope without tenant"), "internal error")
	case len(env.Recipients) == 0:
		return nil, gateway.Errorf(gateway.CodeNoRecipients, "no recipients")
	case len(env.Recipients) > MaxRecipients:
		return nil, gateway.Errorf(gateway.CodeTooManyRecipients, "too many recipients")
	case len(env.Data) == 0 && env.Template == nil:
		return nil, gateway.Errorf(gateway.CodeBadContent, "empty message")
	case len(env.Data) > MaxMessageBytes:
		return nil, gateway.Errorf(gateway.CodeTooLarge, "message exceeds %d bytes", MaxMessageBytes)
	}
	in := &sesv2.SendEmailInput{
		// Destination, not the headers, is where SES sends: a Bcc
		// recipient is in the envelope and nowhere in the message.
		Destination: &types.Destination{ToAddresses: env.Recipients},
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: env.Data}},
	}
	if env.Template != nil {
		in.Destination, in.Content, in.ReplyToAddresses = templateContent(env)
	}
	if env.From != "" {
		in.FromEmailAddress = aws.String(env.From)
	}
	if env.Template != nil && env.Template.From != "" {
		in.FromEmailAddress = aws.String(env.Template.From)
	}
	t := env.Tenant
	if cs := env.SES.ConfigurationSet; cs != "" {
		in.ConfigurationSetName = aws.String(cs)
	} else if cs := t.SES.ConfigurationSet; cs != "" {
		in.ConfigurationSetName = aws.String(cs)
	} else if s.defaultSet != "" {
		in.ConfigurationSetName = aws.String(s.defaultSet)
	}
	if t.SES.TenantName != "" {
		in.TenantName = aws.String(t.SES.TenantName)
	}
	for _, tag := range [...][2]string{{TagTenant, t.ID}, {TagID, env.ID}} {
		if v := SanitizeTag(tag[1]); v != "" {
			in.EmailTags = append(in.EmailTags, types.MessageTag{Name: aws.String(tag[0]), Value: aws.String(v)})
		}
	}
	for _, tag := range env.SES.Tags { // checked by the pipeline (Tenant.CheckSESParams)
		in.EmailTags = append(in.EmailTags, types.MessageTag{Name: aws.String(tag.Name), Value: aws.String(tag.Value)})
	}
	if lm := env.SES.ListManagement; lm != nil {
		in.ListManagementOptions = &types.ListManagementOptions{ContactListName: aws.String(lm.ContactListName)}
		if lm.TopicName != "" {
			in.ListManagementOptions.TopicName = aws.String(lm.TopicName)
		}
	}
	return in, nil
}

// templateContent maps a template envelope: its To, Cc and Bcc layout,
// kept to the recipients the pipeline left (suppressed ones dropped), and
// its content.
func templateContent(env *gateway.Envelope) (*types.Destination, *types.EmailContent, []string) {
	tpl := env.Template
	left := make(map[string]bool, len(env.Recipients))
	for _, r := range env.Recipients {
		left[r] = true
	}
	keep := func(list []string) []string {
		var out []string
		for _, a := range list {
			if left[a] {
				out = append(out, a)
				delete(left, a)
			}
		}
		return out
	}
	d := &types.Destination{ToAddresses: keep(tpl.To), CcAddresses: keep(tpl.Cc), BccAddresses: keep(tpl.Bcc)}
	for _, r := range env.Recipients { // any not in the layout: envelope only
		if left[r] {
			d.BccAddresses = append(d.BccAddresses, r)
		}
	}
	t := &types.Template{}
	if tpl.Name != "" {
		t.TemplateName = aws.String(tpl.Name)
	} else {
		t.TemplateContent = &types.EmailTemplateContent{Subject: tpl.Subject, Text: tpl.Text, Html: tpl.HTML}
	}
	if tpl.Data != "" {
		t.TemplateData = aws.String(tpl.Data)
	} else {
		t.TemplateData = aws.String("{}")
	}
	for _, h := range tpl.Headers {
		t.Headers = append(t.Headers, types.MessageHeader{Name: aws.String(h.Name), Value: aws.String(h.Value)})
	}
	return d, &types.EmailContent{Template: t}, tpl.ReplyTo
}

// SanitizeTag makes v a valid SES tag value: every character outside
// [A-Za-z0-9_-] becomes '_', and it is cut to MaxTagLength bytes.
func SanitizeTag(v string) string {
	b := []byte(v)
	if len(b) > MaxTagLength {
		b = b[:MaxTagLength]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// errType is the Observe label of a SendEmail error.
func errType(err error) string {
	if err == nil {
		return ""
	}
	ge, _ := classify(err)
	return ge.Code.String()
}
