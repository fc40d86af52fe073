package sesapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
)

// serveV2 routes the SES v2 operations sesgate implements.
func (h *Handler) serveV2(w http.ResponseWriter, r *http.Request, c *call) {
	var (
		out any
		err error
	)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails":
		out, err = h.sendEmailV2(r.Context(), c)
	case r.Method == http.MethodGet && r.URL.Path == "/v2/email/account":
		out, err = h.getAccountV2(r.Context(), c)
	case r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-bulk-emails":
		out, err = h.sendBulkEmailV2(r.Context(), c)
	default:
		err = unknownOperation(r)
	}
	if err != nil {
		h.o.Pipeline.Refused(c.tenant, err)
		writeV2Error(w, c.id, fromError(err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Amzn-RequestId", c.id)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(out)
}

func unknownOperation(r *http.Request) *sesError {
	return &sesError{code: gateway.CodeMalformed, Status: http.StatusNotFound, V2: "UnknownOperationException", V1: "InvalidAction", V1Status: http.StatusBadRequest,
		Msg: fmt.Sprintf("sesgate implements SendEmail, SendBulkEmail and GetAccount only; %s %s is not one of them", r.Method, clip(r.URL.Path))}
}

// The SES v2 request shapes sesgate reads. Decoding is strict: a field
// sesgate does not know is refused, never ignored.
type (
	v2Destination struct {
		ToAddresses, CcAddresses, BccAddresses []string
	}
	v2Content struct {
		Data    string
		Charset string
	}
	v2Header struct{ Name, Value string }
	v2Tag    struct{ Name, Value string }
	v2Attach struct {
		RawContent              []byte
		ContentDisposition      string
		FileName                string
		ContentDescription      string
		ContentId               string //nolint:revive // SES's spelling
		ContentTransferEncoding string
		ContentType             string
	}
	v2Simple struct {
		Subject     *v2Content
		Body        *struct{ Text, Html *v2Content } //nolint:revive // SES's spelling
		Headers     []v2Header
		Attachments []v2Attach
	}
	v2Template struct {
		TemplateName    *string
		TemplateArn     *string
		TemplateData    *string
		TemplateContent *struct{ Subject, Text, Html *string } //nolint:revive // SES's spelling
		Headers         []v2Header
		Attachments     []v2Attach
	}
	v2EmailContent struct {
		Simple   *v2Simple
		Raw      *struct{ Data []byte }
		Template *v2Template
	}
	v2ListManagement struct {
		ContactListName string
		TopicName       string
	}
	// v2Policy are the parameters that are the policy's: refused when set.
	v2Policy struct {
		FromEmailAddressIdentityArn               *string
		FeedbackForwardingEmailAddress            *string
		FeedbackForwardingEmailAddressIdentityArn *string
		EndpointId                                *string //nolint:revive // SES's spelling
		TenantName                                *string
	}
	v2SendEmail struct {
		FromEmailAddress      *string
		Destination           *v2Destination
		ReplyToAddresses      []string
		Content               *v2EmailContent
		EmailTags             []v2Tag
		ConfigurationSetName  *string
		ListManagementOptions *v2ListManagement
		v2Policy
	}
)

// refusePolicy names the first policy parameter set.
func (p *v2Policy) refuse() error {
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"FromEmailAddressIdentityArn", p.FromEmailAddressIdentityArn},
		{"FeedbackForwardingEmailAddress", p.FeedbackForwardingEmailAddress},
		{"FeedbackForwardingEmailAddressIdentityArn", p.FeedbackForwardingEmailAddressIdentityArn},
		{"EndpointId", p.EndpointId},
		{"TenantName", p.TenantName},
	} {
		if f.v != nil {
			return gateway.Errorf(gateway.CodeBadParameter, "%s is set by sesgate's policy, not by the app: remove it", f.name)
		}
	}
	return nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// trailing data.
func decodeStrict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return gateway.Errorf(gateway.CodeMalformed, "invalid request body: %s", clip(err.Error()))
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return gateway.Errorf(gateway.CodeMalformed, "invalid request body: data after the JSON object")
	}
	return nil
}

type v2SendResult struct {
	MessageId string //nolint:revive // SES's spelling
}

func (h *Handler) sendEmailV2(ctx context.Context, c *call) (any, error) {
	var in v2SendEmail
	if err := decodeStrict(c.body, &in); err != nil {
		return nil, err
	}
	c.body = nil // what is needed was decoded
	if err := in.refuse(); err != nil {
		return nil, err
	}
	env := &gateway.Envelope{Tenant: c.tenant, Source: c.src, Via: "ses-v2", ID: c.id}
	env.SES.ConfigurationSet = deref(in.ConfigurationSetName)
	for _, t := range in.EmailTags {
		env.SES.Tags = append(env.SES.Tags, gateway.MessageTag{Name: t.Name, Value: t.Value})
	}
	if lm := in.ListManagementOptions; lm != nil {
		env.SES.ListManagement = &gateway.ListManagement{ContactListName: lm.ContactListName, TopicName: lm.TopicName}
	}
	var dest v2Destination
	if in.Destination != nil {
		dest = *in.Destination
	}
	if in.Content == nil {
		return nil, gateway.Errorf(gateway.CodeMalformed, "Content is required")
	}
	if err := h.content(env, in.Content, deref(in.FromEmailAddress), dest, in.ReplyToAddresses); err != nil {
		return nil, err
	}
	res, err := h.submit(ctx, env)
	if err != nil {
		return nil, err
	}
	return v2SendResult{MessageId: res.ProviderID}, nil
}

// content fills env's sender, recipients and message from one EmailContent.
func (h *Handler) content(env *gateway.Envelope, ct *v2EmailContent, from string, dest v2Destination, replyTo []string) error {
	n := 0
	for _, x := range []bool{ct.Simple != nil, ct.Raw != nil, ct.Template != nil} {
		if x {
			n++
		}
	}
	if n != 1 {
		return gateway.Errorf(gateway.CodeMalformed, "Content must hold exactly one of Simple, Raw and Template")
	}
	rcpts := append(append(append([]string(nil), dest.ToAddresses...), dest.CcAddresses...), dest.BccAddresses...)
	switch {
	case ct.Template != nil:
		tpl, err := templateOf(ct.Template, dest, replyTo)
		if err != nil {
			return err
		}
		if from == "" {
			return gateway.Errorf(gateway.CodeMalformed, "FromEmailAddress is required with Template content")
		}
		fa, err := parseMailbox("FromEmailAddress", from)
		if err != nil {
			return err
		}
		tpl.From = fa.String() // the display name too, safely encoded
		env.From, env.Recipients, env.Template = fa.Address, rcpts, tpl
		return nil
	case ct.Raw != nil:
		if len(replyTo) > 0 {
			return gateway.Errorf(gateway.CodeBadParameter, "ReplyToAddresses goes with Simple content; a Raw message carries its own Reply-To header")
		}
		if len(ct.Raw.Data) == 0 {
			return gateway.Errorf(gateway.CodeMalformed, "Content.Raw.Data is empty")
		}
		hfrom, hrcpts, err := rawAddresses(ct.Raw.Data, env.Tenant.MaxRecipients())
		if err != nil {
			return err
		}
		if from == "" {
			from = hfrom
		}
		if from == "" {
			return gateway.Errorf(gateway.CodeMalformed, "no sender: set FromEmailAddress (v1: Source) or one From header address in the message")
		}
		if len(rcpts) == 0 {
			rcpts = hrcpts
		}
		env.From, env.Recipients, env.Data, env.EightBit = from, rcpts, ct.Raw.Data, true
		return nil
	default:
		if from == "" {
			return gateway.Errorf(gateway.CodeMalformed, "FromEmailAddress is required with Simple content")
		}
		msg, sender, err := simpleMessage(env.ID, h.o.Now, from, dest, replyTo, ct.Simple)
		if err != nil {
			return err
		}
		if _, err := h.o.Pipeline.CheckSender(env.Tenant, sender); err != nil {
			return err // cheap, so before composing
		}
		data, err := httpapi.Compose(msg)
		if err != nil {
			return err
		}
		env.From, env.Recipients, env.Data = sender, rcpts, data
		return nil
	}
}

// templateOf maps Template content and its destination to the envelope's
// template. TemplateArn is the policy's (a template of another account or
// identity) and refused; attachments are refused (not supported).
func templateOf(t *v2Template, dest v2Destination, replyTo []string) (*gateway.Template, error) {
	if t.TemplateArn != nil {
		return nil, gateway.Errorf(gateway.CodeBadParameter, "TemplateArn is set by sesgate's policy, not by the app: name the template with TemplateName")
	}
	if len(t.Attachments) > 0 {
		return nil, gateway.Errorf(gateway.CodeBadParameter, "Template attachments are not supported by sesgate: send Simple or Raw content")
	}
	tpl := &gateway.Template{Name: deref(t.TemplateName), Data: deref(t.TemplateData)}
	if c := t.TemplateContent; c != nil {
		tpl.Subject, tpl.Text, tpl.HTML = c.Subject, c.Text, c.Html
	}
	for _, h := range t.Headers {
		tpl.Headers = append(tpl.Headers, gateway.TemplateHeader{Name: h.Name, Value: h.Value})
	}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]string
	}{{"Destination.ToAddresses", dest.ToAddresses, &tpl.To}, {"Destination.CcAddresses", dest.CcAddresses, &tpl.Cc},
		{"Destination.BccAddresses", dest.BccAddresses, &tpl.Bcc}, {"ReplyToAddresses", replyTo, &tpl.ReplyTo}} {
		for i, a := range l.in {
			ma, err := parseMailbox(fmt.Sprintf("%s[%d]", l.name, i), a)
			if err != nil {
				return nil, err
			}
			addr := ma.Address
			if l.out != &tpl.ReplyTo {
				if addr, err = gateway.ParseAddress(ma.Address); err != nil {
					return nil, err
				}
			} else {
				addr = a
			}
			*l.out = append(*l.out, addr)
		}
	}
	return tpl, nil
}

// simpleMessage builds the composer's message from Simple content.
func simpleMessage(id string, now func() time.Time, from string, dest v2Destination, replyTo []string, s *v2Simple) (*httpapi.Message, string, error) {
	fa, err := parseMailbox("FromEmailAddress", from)
	if err != nil {
		return nil, "", err
	}
	m := &httpapi.Message{ID: id, Date: now(), From: fa}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]mail.Address
	}{{"Destination.ToAddresses", dest.ToAddresses, &m.To}, {"Destination.CcAddresses", dest.CcAddresses, &m.Cc}, {"ReplyToAddresses", replyTo, &m.ReplyTo}} {
		for i, a := range l.in {
			ma, err := parseMailbox(fmt.Sprintf("%s[%d]", l.name, i), a)
			if err != nil {
				return nil, "", err
			}
			*l.out = append(*l.out, ma)
		}
	}
	for i, a := range dest.BccAddresses {
		if _, err := parseMailbox(fmt.Sprintf("Destination.BccAddresses[%d]", i), a); err != nil {
			return nil, "", err
		}
	}
	if s.Subject == nil {
		return nil, "", gateway.Errorf(gateway.CodeMalformed, "Content.Simple.Subject is required")
	}
	if s.Body == nil || (s.Body.Text == nil && s.Body.Html == nil) {
		return nil, "", gateway.Errorf(gateway.CodeMalformed, "Content.Simple.Body needs Text or Html")
	}
	for name, c := range map[string]*v2Content{"Subject": s.Subject, "Body.Text": s.Body.Text, "Body.Html": s.Body.Html} {
		if c != nil && c.Charset != "" && !strings.EqualFold(c.Charset, "UTF-8") && !strings.EqualFold(c.Charset, "US-ASCII") {
			return nil, "", gateway.Errorf(gateway.CodeBadParameter, "Content.Simple.%s.Charset %q: sesgate sends UTF-8 only", name, clip(c.Charset))
		}
	}
	m.Subject = s.Subject.Data
	if s.Body.Text != nil {
		m.Text = &s.Body.Text.Data
	}
	if s.Body.Html != nil {
		m.HTML = &s.Body.Html.Data
	}
	for _, hd := range s.Headers {
		m.Headers = append(m.Headers, httpapi.Header{Name: hd.Name, Value: hd.Value})
	}
	for i, a := range s.Attachments {
		disp := strings.ToLower(a.ContentDisposition)
		if disp != "" && disp != "attachment" && disp != "inline" {
			return nil, "", gateway.Errorf(gateway.CodeMalformed, "Content.Simple.Attachments[%d].ContentDisposition: ATTACHMENT or INLINE", i)
		}
		if a.ContentDescription != "" {
			return nil, "", gateway.Errorf(gateway.CodeBadParameter, "Content.Simple.Attachments[%d].ContentDescription is not supported by sesgate", i)
		}
		switch strings.ToUpper(a.ContentTransferEncoding) {
		case "", "BASE64":
		default:
			return nil, "", gateway.Errorf(gateway.CodeBadParameter, "Content.Simple.Attachments[%d].ContentTransferEncoding: sesgate writes attachments in BASE64 only", i)
		}
		m.Attachments = append(m.Attachments, httpapi.Attachment{Filename: a.FileName, ContentType: a.ContentType, Disposition: disp, ContentID: a.ContentId, Content: a.RawContent})
	}
	return m, fa.Address, nil
}

// parseMailbox reads "Name <a@b>" or "a@b".
func parseMailbox(field, s string) (mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return mail.Address{}, &gateway.Error{Code: gateway.CodeInvalidAddress, Msg: field + ": not an email address", Recipient: clip(s)}
	}
	return *a, nil
}

// rawAddresses reads the From address and the To, Cc and Bcc addresses of
// a raw message's header.
func rawAddresses(data []byte, maxRcpts int) (string, []string, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", nil, gateway.Errorf(gateway.CodeBadContent, "Content.Raw.Data is not a MIME message: %s", clip(err.Error()))
	}
	from := ""
	if l, err := msg.Header.AddressList("From"); err == nil && len(l) == 1 {
		from = l[0].Address
	}
	var rcpts []string
	for _, f := range []string{"To", "Cc", "Bcc"} {
		l, err := msg.Header.AddressList(f)
		if err != nil && !errors.Is(err, mail.ErrHeaderNotPresent) {
			return "", nil, gateway.Errorf(gateway.CodeInvalidAddress, "Content.Raw.Data: the %s header is not an address list", f)
		}
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
		if len(rcpts) > maxRcpts {
			return "", nil, gateway.Errorf(gateway.CodeTooManyRecipients, "more than %d recipients", maxRcpts)
		}
	}
	return from, rcpts, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// GetAccount: the tenant's own limits and usage in SES's shape.
type v2Account struct {
	SendQuota struct {
		Max24HourSend   float64
		MaxSendRate     float64
		SentLast24Hours float64
	}
	ProductionAccessEnabled      bool
	SendingEnabled               bool
	EnforcementStatus            string
	DedicatedIpAutoWarmupEnabled bool //nolint:revive // SES's spelling
}

func (h *Handler) getAccountV2(ctx context.Context, c *call) (any, error) {
	if len(c.body) > 0 {
		return nil, gateway.Errorf(gateway.CodeMalformed, "GetAccount takes no body")
	}
	q, err := h.quota(ctx, c.tenant)
	if err != nil {
		return nil, err
	}
	var out v2Account
	out.SendQuota.Max24HourSend, out.SendQuota.MaxSendRate, out.SendQuota.SentLast24Hours = q.max24, q.rate, q.sent
	out.ProductionAccessEnabled, out.SendingEnabled, out.EnforcementStatus = true, q.enabled, "HEALTHY"
	return out, nil
}

// SendBulkEmail: each entry is one SendEmail of the default template
// (replacement data and headers per entry) through the pipeline; the
// answer lists one result per entry, in order.
type (
	v2BulkEntry struct {
		Destination             *v2Destination
		ReplacementTags         []v2Tag
		ReplacementEmailContent *struct {
			ReplacementTemplate *struct{ ReplacementTemplateData *string }
		}
		ReplacementHeaders []v2Header
	}
	v2SendBulk struct {
		FromEmailAddress     *string
		ReplyToAddresses     []string
		DefaultEmailTags     []v2Tag
		DefaultContent       *struct{ Template *v2Template }
		BulkEmailEntries     []v2BulkEntry
		ConfigurationSetName *string
		v2Policy
	}
	v2BulkResult struct {
		Status    string
		Error     string `json:",omitempty"`
		MessageId string `json:",omitempty"` //nolint:revive // SES's spelling
	}
)

func (h *Handler) sendBulkEmailV2(ctx context.Context, c *call) (any, error) {
	var in v2SendBulk
	if err := decodeStrict(c.body, &in); err != nil {
		return nil, err
	}
	c.body = nil
	if err := in.refuse(); err != nil {
		return nil, err
	}
	switch {
	case in.DefaultContent == nil || in.DefaultContent.Template == nil:
		return nil, gateway.Errorf(gateway.CodeMalformed, "DefaultContent.Template is required")
	case len(in.BulkEmailEntries) == 0:
		return nil, gateway.Errorf(gateway.CodeMalformed, "BulkEmailEntries is required")
	case len(in.BulkEmailEntries) > DefaultMaxBulkEntries:
		return nil, gateway.Errorf(gateway.CodeTooManyRecipients, "more than %d BulkEmailEntries", DefaultMaxBulkEntries)
	}
	out := struct{ BulkEmailEntryResults []v2BulkResult }{}
	for i, e := range in.BulkEmailEntries {
		env := &gateway.Envelope{Tenant: c.tenant, Source: c.src, Via: "ses-v2-bulk"}
		if i == 0 {
			env.ID = c.id
		}
		res, err := h.bulkEntry(ctx, env, &in, &e)
		if err != nil {
			h.o.Pipeline.Refused(c.tenant, err)
			ge := gateway.AsError(err)
			out.BulkEmailEntryResults = append(out.BulkEmailEntryResults, v2BulkResult{Status: bulkStatus(ge.Code), Error: fromError(err).Msg})
			continue
		}
		out.BulkEmailEntryResults = append(out.BulkEmailEntryResults, v2BulkResult{Status: "SUCCESS", MessageId: res.ProviderID})
	}
	return out, nil
}

// bulkEntry sends one entry: the default template with the entry's
// replacement data, the default headers and tags overridden by the
// entry's of the same name.
func (h *Handler) bulkEntry(ctx context.Context, env *gateway.Envelope, in *v2SendBulk, e *v2BulkEntry) (*gateway.Result, error) {
	t := *in.DefaultContent.Template
	if rc := e.ReplacementEmailContent; rc != nil && rc.ReplacementTemplate != nil && rc.ReplacementTemplate.ReplacementTemplateData != nil {
		t.TemplateData = rc.ReplacementTemplate.ReplacementTemplateData
	}
	t.Headers = mergeNamed(t.Headers, e.ReplacementHeaders, func(x v2Header) string { return strings.ToLower(x.Name) })
	for _, tag := range mergeNamed(in.DefaultEmailTags, e.ReplacementTags, func(x v2Tag) string { return x.Name }) {
		env.SES.Tags = append(env.SES.Tags, gateway.MessageTag{Name: tag.Name, Value: tag.Value})
	}
	env.SES.ConfigurationSet = deref(in.ConfigurationSetName)
	var dest v2Destination
	if e.Destination != nil {
		dest = *e.Destination
	}
	if err := h.content(env, &v2EmailContent{Template: &t}, deref(in.FromEmailAddress), dest, in.ReplyToAddresses); err != nil {
		return nil, err
	}
	return h.submit(ctx, env)
}

// mergeNamed returns base with each of over replacing the one of the same
// name, or appended.
func mergeNamed[T any](base, over []T, name func(T) string) []T {
	out := append([]T(nil), base...)
	for _, o := range over {
		replaced := false
		for i := range out {
			if name(out[i]) == name(o) {
				out[i], replaced = o, true
			}
		}
		if !replaced {
			out = append(out, o)
		}
	}
	return out
}

// bulkStatus is SES's BulkEmailStatus of a refused entry.
func bulkStatus(c gateway.Code) string {
	switch c {
	case gateway.CodeSenderNotAllowed, gateway.CodeRecipientNotAllowed, gateway.CodeBadContent, gateway.CodeTooLarge,
		gateway.CodeSuppressed, gateway.CodeSuppressedBounce, gateway.CodeUpstreamRejected, gateway.CodeUpstreamNotAuthorized:
		return "MESSAGE_REJECTED"
	case gateway.CodeUpstreamSenderUnverified:
		return "MAIL_FROM_DOMAIN_NOT_VERIFIED"
	case gateway.CodeTemplateNotFound:
		return "TEMPLATE_NOT_FOUND"
	case gateway.CodeRateLimited, gateway.CodeUpstreamThrottled, gateway.CodeBreakerOpen, gateway.CodeFirstContactLimited, gateway.CodeAuthThrottled:
		return "ACCOUNT_THROTTLED"
	case gateway.CodeQuotaExceeded, gateway.CodeUpstreamQuota:
		return "ACCOUNT_DAILY_QUOTA_EXCEEDED"
	case gateway.CodeFrozen, gateway.CodeUpstreamPaused:
		return "ACCOUNT_SENDING_PAUSED"
	case gateway.CodeMalformed, gateway.CodeInvalidAddress, gateway.CodeNoRecipients, gateway.CodeTooManyRecipients,
		gateway.CodeBadParameter, gateway.CodeUpstreamBadRequest:
		return "INVALID_PARAMETER"
	case gateway.CodeUpstreamUnavailable, gateway.CodeShuttingDown, gateway.CodeStoreUnavailable, gateway.CodeInternal:
		return "TRANSIENT_FAILURE"
	}
	return "FAILED"
}
