package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/mail"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// Limits on the request beyond the composer's. Tags follow
// gateway.MaxMessageTags and gateway.MaxTagLength (SES's rules).
const (
	maxMailboxInput  = gateway.MaxAddressLength + MaxDisplayNameBytes*4 + 16
	maxAuthTokenSize = 1024
)

// jsonMessage is the JSON body of POST /v1/messages. Subject, Text and HTML
// are pointers so that "present but empty" differs from "absent".
type jsonMessage struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc"`
	Bcc         []string          `json:"bcc"`
	ReplyTo     []string          `json:"reply_to"`
	Subject     *string           `json:"subject"`
	Text        *string           `json:"text"`
	HTML        *string           `json:"html"`
	Headers     map[string]string `json:"headers"`
	Attachments []jsonAttachment  `json:"attachments"`
	// Tags, ConfigurationSet and ListManagement are the message's SES
	// parameters (gateway.SESParams), checked by the pipeline.
	Tags             map[string]string   `json:"tags"`
	ConfigurationSet *string             `json:"configuration_set"`
	ListManagement   *jsonListManagement `json:"list_management"`
}

// jsonListManagement is SES's ListManagementOptions.
type jsonListManagement struct {
	ContactList string `json:"contact_list"`
	Topic       string `json:"topic"`
}

type jsonAttachment struct {
	Filename    string     `json:"filename"`
	ContentType string     `json:"content_type"`
	Content     b64Content `json:"content"` // base64 (standard alphabet, padding; line breaks ignored)
	Disposition string     `json:"disposition"`
	ContentID   string     `json:"content_id"`
}

// b64Content is an attachment's content, decoded from base64 straight out
// of the JSON decoder's buffer: the base64 text (a third larger than the
// file) is never held as a Go string of its own.
type b64Content struct {
	data []byte
	bad  bool // not valid base64: build refuses it, naming the attachment
}

// MarshalJSON writes the content as base64 (what the tests re-encode);
// content that was not valid base64 stays invalid.
func (c b64Content) MarshalJSON() ([]byte, error) {
	if c.bad {
		return []byte(`"!"`), nil
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(c.data))
}

// UnmarshalJSON decodes a JSON string of base64; null leaves it empty, as
// for a string field; another type is the decoder's usual type error.
func (c *b64Content) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) < 2 || b[0] != '"' {
		kind := "number"
		switch string(b[:min(len(b), 1)]) {
		case "{":
			kind = "object"
		case "[":
			kind = "array"
		case "t", "f":
			kind = "bool"
		}
		return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[string]()}
	}
	text := b[1 : len(b)-1]
	if bytes.IndexByte(text, '\\') >= 0 { // escapes (\n, \/, \u...): unquote first
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		text = []byte(s)
	}
	c.data = make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(c.data, text)
	if err != nil {
		c.data, c.bad = nil, true
		return nil
	}
	c.data = c.data[:n]
	if n == 0 {
		c.data = nil // as absent
	}
	return nil
}

// decodeJSON reads exactly one JSON object from r, strictly: unknown fields,
// wrong types and trailing data are errors naming what is wrong.
func decodeJSON(r io.Reader) (*jsonMessage, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m jsonMessage
	if err := dec.Decode(&m); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil && tooLarge(err) {
			return nil, jsonError(err)
		}
		return nil, gateway.Errorf(gateway.CodeMalformed, "unexpected data after the JSON object")
	}
	return &m, nil
}

// jsonError turns a decoding error into a client-visible *gateway.Error.
func jsonError(err error) *gateway.Error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		mbe    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return gateway.Wrap(gateway.CodeTooLarge, err, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
	case errors.Is(err, io.EOF):
		return gateway.Errorf(gateway.CodeMalformed, "empty request body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return gateway.Errorf(gateway.CodeMalformed, "truncated JSON")
	case errors.As(err, &syntax):
		return gateway.Wrap(gateway.CodeMalformed, err, fmt.Sprintf("malformed JSON at byte offset %d", syntax.Offset))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return gateway.Errorf(gateway.CodeMalformed, "request body must be a JSON object")
		}
		return gateway.Errorf(gateway.CodeMalformed, "field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.String()), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return gateway.Errorf(gateway.CodeMalformed, "unknown field %s", name)
	}
	return gateway.Wrap(gateway.CodeMalformed, err, "malformed JSON")
}

// jsonKind names a Go type of jsonMessage the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array of " + jsonKind(goType[2:]) + "s"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "an object"
	case goType == "string", goType == "*string":
		return "a string"
	}
	return goType
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// built is a JSON request turned into a message and its envelope.
type built struct {
	msg   *Message
	from  string   // envelope sender
	rcpts []string // to + cc + bcc, normalized, duplicates removed
	ses   gateway.SESParams
}

// build validates j and turns it into a message with the given gateway id
// and date. maxRcpts bounds the distinct envelope recipients.
func (j *jsonMessage) build(id string, now time.Time, maxRcpts int) (*built, error) {
	if j.From == "" {
		return nil, gateway.Errorf(gateway.CodeMalformed, "from is required")
	}
	if j.Subject == nil {
		return nil, gateway.Errorf(gateway.CodeMalformed, "subject is required (it may be empty)")
	}
	if j.Text == nil && j.HTML == nil {
		return nil, gateway.Errorf(gateway.CodeMalformed, "text or html is required")
	}
	from, err := parseMailbox("from", j.From)
	if err != nil {
		return nil, err
	}
	b := &built{from: from.Address}
	m := &Message{ID: id, Date: now, From: from, Subject: *j.Subject, Text: j.Text, HTML: j.HTML}
	seen := map[string]struct{}{}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]mail.Address
	}{{"to", j.To, &m.To}, {"cc", j.Cc, &m.Cc}, {"bcc", j.Bcc, nil}, {"reply_to", j.ReplyTo, &m.ReplyTo}} {
		if l.name == "reply_to" && len(l.in) > MaxReplyTo {
			return nil, gateway.Errorf(gateway.CodeMalformed, "reply_to: more than %d addresses", MaxReplyTo)
		}
		for i, s := range l.in {
			a, err := parseMailbox(fmt.Sprintf("%s[%d]", l.name, i), s)
			if err != nil {
				return nil, err
			}
			if l.out != nil {
				*l.out = append(*l.out, a)
			}
			if l.name == "reply_to" {
				continue
			}
			if _, dup := seen[a.Address]; dup {
				continue
			}
			if len(seen) == maxRcpts {
				return nil, &gateway.Error{Code: gateway.CodeTooManyRecipients,
					Msg: fmt.Sprintf("more than %d recipients in to, cc and bcc", maxRcpts), Recipient: a.Address}
			}
			seen[a.Address] = struct{}{}
			b.rcpts = append(b.rcpts, a.Address)
		}
	}
	if len(j.Headers) > MaxCustomHeaders {
		return nil, gateway.Errorf(gateway.CodeMalformed, "headers: more than %d", MaxCustomHeaders)
	}
	for _, name := range slices.Sorted(maps.Keys(j.Headers)) {
		m.Headers = append(m.Headers, Header{Name: name, Value: j.Headers[name]})
	}
	if len(j.Attachments) > MaxAttachments {
		return nil, gateway.Errorf(gateway.CodeMalformed, "attachments: more than %d", MaxAttachments)
	}
	for i, a := range j.Attachments {
		if a.Content.bad {
			return nil, gateway.Errorf(gateway.CodeMalformed, "attachments[%d].content is not valid base64", i)
		}
		m.Attachments = append(m.Attachments, Attachment{
			Filename: a.Filename, ContentType: a.ContentType, Disposition: a.Disposition,
			ContentID: a.ContentID, Content: a.Content.data,
		})
	}
	b.ses, err = j.sesParams()
	if err != nil {
		return nil, err
	}
	b.msg = m
	return b, nil
}

// parseMailbox parses "Name <addr>" or "addr" and validates the address.
// field names the JSON field for error messages.
func parseMailbox(field, s string) (mail.Address, error) {
	if !gateway.HeaderValueOK(s) {
		return mail.Address{}, injection(field)
	}
	if len(s) > maxMailboxInput {
		return mail.Address{}, &gateway.Error{Code: gateway.CodeInvalidAddress,
			Msg: field + ": too long", Recipient: truncate(s, 64)}
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return mail.Address{}, &gateway.Error{Code: gateway.CodeInvalidAddress, Cause: err,
			Msg: field + `: not a mailbox ("Name <local@domain>" or "local@domain")`, Recipient: s}
	}
	addr, err := gateway.ParseAddress(a.Address)
	if err != nil {
		return mail.Address{}, &gateway.Error{Code: gateway.CodeInvalidAddress,
			Msg: field + ": " + gateway.AsError(err).Msg, Recipient: s}
	}
	// An encoded-word name can decode to CR or LF; refuse it too.
	if err := checkHeaderInput(field+" display name", a.Name, MaxDisplayNameBytes); err != nil {
		return mail.Address{}, err
	}
	return mail.Address{Name: a.Name, Address: addr}, nil
}

// sesParams returns the request's SES parameters, tags sorted by name.
// Their rules (names, values, allowed configuration sets) are checked by
// gateway.Tenant.CheckSESParams in Submit, after the X-SES-* header fields
// of a raw message are merged in. Here: what only the JSON can get wrong
// (an empty configuration_set), and, ahead of Submit with the JSON field
// names in the message, more tags than the limit and a list_management
// without contact_list (CheckSESParams refuses those too).
func (j *jsonMessage) sesParams() (gateway.SESParams, error) {
	var p gateway.SESParams
	if cs := j.ConfigurationSet; cs != nil {
		if *cs == "" {
			return p, gateway.Errorf(gateway.CodeBadParameter, "configuration_set is empty (leave it out for the tenant's default)")
		}
		p.ConfigurationSet = *cs
	}
	if len(j.Tags) > gateway.MaxMessageTags {
		return p, gateway.Errorf(gateway.CodeBadParameter, "tags: more than %d", gateway.MaxMessageTags)
	}
	for _, k := range slices.Sorted(maps.Keys(j.Tags)) {
		p.Tags = append(p.Tags, gateway.MessageTag{Name: k, Value: j.Tags[k]})
	}
	if lm := j.ListManagement; lm != nil {
		if lm.ContactList == "" {
			return p, gateway.Errorf(gateway.CodeBadParameter, "list_management.contact_list is required")
		}
		p.ListManagement = &gateway.ListManagement{ContactListName: lm.ContactList, TopicName: lm.Topic}
	}
	return p, nil
}

// rawEnvelope finds the envelope of a raw message: recipients from the query
// parameters "to" when given, else from the To, Cc and Bcc headers; the
// sender from the query parameter "from", else the From header.
func rawEnvelope(q url.Values, body []byte, maxRcpts int) (from string, rcpts []string, err error) {
	for k := range q {
		if k != "to" && k != "from" {
			return "", nil, gateway.Errorf(gateway.CodeMalformed, "unknown query parameter %q (only to and from)", truncate(k, 64))
		}
	}
	if len(q["from"]) > 1 {
		return "", nil, gateway.Errorf(gateway.CodeMalformed, "query parameter from given more than once")
	}
	if len(q["to"]) > maxRcpts {
		return "", nil, &gateway.Error{Code: gateway.CodeTooManyRecipients,
			Msg: fmt.Sprintf("more than %d recipients", maxRcpts), Recipient: q["to"][maxRcpts]}
	}
	from, rcpts = q.Get("from"), q["to"]
	if from != "" && len(rcpts) > 0 {
		return from, rcpts, nil
	}
	msg, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		return "", nil, gateway.Wrap(gateway.CodeBadContent, err, "malformed message header section")
	}
	if from == "" {
		list, err := headerAddresses(msg.Header, "From")
		if err != nil {
			return "", nil, err
		}
		if len(list) == 0 {
			return "", nil, gateway.Errorf(gateway.CodeBadContent, "message has no From header")
		}
		from = list[0]
	}
	if len(rcpts) == 0 {
		for _, name := range []string{"To", "Cc", "Bcc"} {
			list, err := headerAddresses(msg.Header, name)
			if err != nil {
				return "", nil, err
			}
			rcpts = append(rcpts, list...)
		}
		if len(rcpts) > maxRcpts {
			return "", nil, &gateway.Error{Code: gateway.CodeTooManyRecipients,
				Msg: fmt.Sprintf("more than %d recipients in To, Cc and Bcc", maxRcpts), Recipient: rcpts[maxRcpts]}
		}
	}
	return from, rcpts, nil
}

// headerAddresses returns the addresses of every instance of an address
// header; validation of each address is the pipeline's.
func headerAddresses(h mail.Header, name string) ([]string, error) {
	var out []string
	for _, v := range h[name] {
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			return nil, gateway.Wrap(gateway.CodeInvalidAddress, err, name+" header: cannot parse the address list")
		}
		for _, a := range list {
			out = append(out, a.Address)
		}
	}
	return out, nil
}
