package gateway

import (
	"encoding/json"
	"net/mail"
	"slices"
	"strings"
)

// Limits of template content.
const (
	// MaxTemplateDataBytes bounds a template's replacement data (SES's
	// TemplateData limit).
	MaxTemplateDataBytes = 256 << 10
	// MaxTemplateHeaders bounds a template message's extra headers.
	MaxTemplateHeaders = 50
	// MaxTemplateNameLength is SES's limit on a template name.
	MaxTemplateNameLength = 64
)

// Template is SES template content: SES renders the message from a stored
// template (Name) or an inline one (Subject, Text, HTML), with Data, and
// writes its header itself from the envelope's From, To, Cc and ReplyTo.
// An envelope with a Template has no Data: the From identity check is on
// Envelope.From (FromEmailAddress), and Headers may not carry an
// originator, a destination or SES's own fields.
type Template struct {
	// From is the FromEmailAddress as the app gave it (with its display
	// name); its address is Envelope.From. Empty: Envelope.From.
	From string
	Name string // a template stored in SES; empty: inline content
	// Inline content, when Name is empty: Subject and at least one of
	// Text and HTML.
	Subject, Text, HTML *string
	Data                string // JSON object of replacement values; "" is {}
	Headers             []TemplateHeader
	// The header layout SES writes: To, Cc and Bcc are normalized
	// addresses among Envelope.Recipients (Bcc only in the envelope).
	To, Cc, Bcc []string
	ReplyTo     []string
}

// TemplateHeader is one extra header of a template message.
type TemplateHeader struct {
	Name, Value string
}

// Size is what the template content weighs, for the size limit.
func (t *Template) Size() int64 {
	n := len(t.Name) + len(t.Data)
	for _, s := range []*string{t.Subject, t.Text, t.HTML} {
		if s != nil {
			n += len(*s)
		}
	}
	for _, h := range t.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	return int64(n)
}

// reservedTemplateHeaders are the fields SES writes, the originator fields
// (identity checks) and the destination fields: never from the app.
var reservedTemplateHeaders = []string{"from", "sender", "reply-to", "return-path", "to", "cc", "bcc",
	"date", "message-id", "mime-version", "subject", "content-type", "content-transfer-encoding", "content-disposition"}

// Check refuses template content SES would refuse or that could get round
// the identity checks: a name or inline content missing or both set, data
// that is not a JSON object, a reserved, Resent-* or X-SES-* header, a
// header value with CR, LF or NUL.
func (t *Template) Check() error {
	inline := t.Subject != nil || t.Text != nil || t.HTML != nil
	switch {
	case t.Name == "" && !inline:
		return Errorf(CodeMalformed, "template: a TemplateName or inline TemplateContent is required")
	case t.Name != "" && inline:
		return Errorf(CodeMalformed, "template: TemplateName and TemplateContent go apart")
	case len(t.Name) > MaxTemplateNameLength || !validTagText(t.Name) && t.Name != "":
		return Errorf(CodeBadParameter, "template name: 1 to %d characters of A-Z, a-z, 0-9, '_' and '-'", MaxTemplateNameLength)
	case inline && (t.Subject == nil || t.Text == nil && t.HTML == nil):
		return Errorf(CodeMalformed, "template content needs a Subject and a Text or Html part")
	case len(t.Data) > MaxTemplateDataBytes:
		return Errorf(CodeTooLarge, "template data exceeds %d bytes", MaxTemplateDataBytes)
	case len(t.Headers) > MaxTemplateHeaders:
		return Errorf(CodeBadParameter, "more than %d template headers", MaxTemplateHeaders)
	}
	if t.Data != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(t.Data), &obj); err != nil {
			return Errorf(CodeMalformed, "template data must be a JSON object")
		}
	}
	for _, h := range t.Headers {
		lower := strings.ToLower(h.Name)
		switch {
		case !validFieldName([]byte(h.Name)) || strings.Contains(h.Name, ":") || len(h.Name) > 126:
			return Errorf(CodeMalformed, "template header name %q is not a valid field name", clip(h.Name))
		case slices.Contains(reservedTemplateHeaders, lower) || strings.HasPrefix(lower, "resent-") || strings.HasPrefix(lower, "x-ses-"):
			return Errorf(CodeBadParameter, "template header %q is written by SES or sesgate, not by the app", h.Name)
		case !HeaderValueOK(h.Value) || len(h.Value) > 870:
			return Errorf(CodeMalformed, "template header %q: at most 870 characters without CR, LF and NUL", h.Name)
		}
	}
	return nil
}

// CheckFrom refuses a From mailbox whose address is not from, the
// envelope sender that passed the identity check.
func (t *Template) CheckFrom(from string) error {
	if t.From == "" {
		return nil
	}
	a, err := mail.ParseAddress(t.From)
	if err != nil {
		return Errorf(CodeInvalidAddress, "template From is not a mailbox")
	}
	addr, err := ParseAddress(a.Address)
	if err != nil || addr != from {
		return Errorf(CodeSenderNotAllowed, "template From does not match the envelope sender")
	}
	return nil
}
