package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// Limits of the composer. They keep every header line within 998
// characters: a printable-ASCII subject or header value fits one line as it
// is, and encoded values are folded between their encoded words.
const (
	MaxSubjectBytes     = 989 // len("Subject: ") + 989 = 998
	MaxDisplayNameBytes = 256
	MaxCustomHeaders    = 50
	MaxHeaderNameBytes  = 126 // as SES's own Simple-content limit
	MaxHeaderValueBytes = 998 // a non-ASCII (encoded) value; an ASCII one must fit "Name: value" in 998
	MaxReplyTo          = 50
	MaxAttachments      = 100
	MaxFilenameBytes    = 255
	MaxContentTypeBytes = 255
	MaxContentIDBytes   = 250
)

// foldWidth is where header lines are folded when a fold point exists
// (RFC 5322 2.1.1 "SHOULD" limit); gateway.MaxLineLength is the hard one.
const foldWidth = 78

// Message is a message to compose. Compose validates every field itself, so
// a Message built from untrusted input is safe to pass.
type Message struct {
	ID      string       // gateway message id: Message-ID is <ID@domain of From>
	Date    time.Time    // the Date header
	From    mail.Address // one mailbox
	To      []mail.Address
	Cc      []mail.Address
	ReplyTo []mail.Address
	Subject string  // may be empty; encoded (RFC 2047 Q) when not printable ASCII
	Text    *string // text/plain part; nil for none
	HTML    *string // text/html part; nil for none. At least one of Text, HTML.
	Headers []Header
	// Attachments with Disposition "inline" go into multipart/related next to
	// the HTML part (or into multipart/mixed when there is no HTML).
	Attachments []Attachment
}

// Header is one extra header field. Names that the composer writes itself
// (see structuralHeader) are refused.
type Header struct {
	Name  string
	Value string // encoded (RFC 2047 Q) when not printable ASCII
}

// Attachment is one file, written base64 in 76-character lines.
type Attachment struct {
	Filename    string // required
	ContentType string // default application/octet-stream; multipart/* and message/* refused
	Disposition string // "attachment" (default) or "inline"
	ContentID   string // optional; with or without angle brackets
	Content     []byte
}

// Compose validates m and writes it as an RFC 5322 / MIME message: CRLF line
// endings, 7-bit, every line at most 998 characters, no Bcc header. Errors
// are *gateway.Error (CodeMalformed, or CodeInvalidAddress with Recipient
// set) whose message names the offending field.
//
// It is written on the standard library on purpose: go-message's writer
// refuses a part labelled with a charset other than UTF-8 or US-ASCII (an
// attachment "text/csv; charset=windows-1252"), and its header writer
// canonicalizes field names and folds where Go's net/mail does not unfold
// back the same value; with the headers kept here, it composed 1.5 to 2
// times slower (BenchmarkCompose).
func Compose(m *Message) ([]byte, error) {
	c, err := m.prepare()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(m.sizeHint())
	for _, f := range c.fields {
		if err := writeField(&b, f.name, f.value); err != nil {
			return nil, err
		}
	}
	boundary := ""
	if c.root.children != nil {
		boundary = randomBoundary()
	}
	for _, f := range c.root.header(boundary) {
		if err := writeField(&b, f.name, f.value); err != nil {
			return nil, err
		}
	}
	b.WriteString("\r\n")
	if err := c.root.writeBody(&b, boundary); err != nil {
		return nil, gateway.Wrap(gateway.CodeInternal, err, "composing the message failed")
	}
	if err := check7bit(b.Bytes()); err != nil {
		return nil, gateway.Wrap(gateway.CodeInternal, err, "composing the message failed")
	}
	return b.Bytes(), nil
}

// field is one header field before folding.
type field struct{ name, value string }

// composed is a validated message: its top header fields and its MIME tree.
type composed struct {
	fields []field
	root   *entity
}

// prepare validates m and builds its header fields and MIME tree.
func (m *Message) prepare() (*composed, error) {
	if !validID(m.ID) {
		return nil, gateway.Errorf(gateway.CodeMalformed, "message id is missing or invalid")
	}
	if m.Text == nil && m.HTML == nil {
		return nil, gateway.Errorf(gateway.CodeMalformed, "text or html is required")
	}
	from, err := mailbox("from", m.From)
	if err != nil {
		return nil, err
	}
	fromDomain := m.From.Address[strings.LastIndexByte(m.From.Address, '@')+1:]
	c := &composed{fields: []field{
		{"Date", m.Date.Format(time.RFC1123Z)},
		{"From", from},
	}}
	if len(m.ReplyTo) > MaxReplyTo {
		return nil, gateway.Errorf(gateway.CodeMalformed, "reply_to: more than %d addresses", MaxReplyTo)
	}
	for _, l := range []struct {
		header, name string
		list         []mail.Address
	}{{"Reply-To", "reply_to", m.ReplyTo}, {"To", "to", m.To}, {"Cc", "cc", m.Cc}} {
		if len(l.list) == 0 {
			continue
		}
		v, err := addressList(l.name, l.list)
		if err != nil {
			return nil, err
		}
		c.fields = append(c.fields, field{l.header, v})
	}
	subject, err := headerValue("subject", m.Subject, MaxSubjectBytes)
	if err != nil {
		return nil, err
	}
	c.fields = append(c.fields,
		field{"Subject", subject},
		field{"Message-ID", "<" + m.ID + "@" + strings.ToLower(fromDomain) + ">"},
		field{"MIME-Version", "1.0"},
	)
	if len(m.Headers) > MaxCustomHeaders {
		return nil, gateway.Errorf(gateway.CodeMalformed, "headers: more than %d", MaxCustomHeaders)
	}
	for _, h := range m.Headers {
		f, err := customHeader(h)
		if err != nil {
			return nil, err
		}
		c.fields = append(c.fields, f)
	}
	if c.root, err = m.tree(); err != nil {
		return nil, err
	}
	return c, nil
}

// tree builds the MIME structure: alternative(text, related(html, inline...))
// inside mixed(..., attachments...), with single-child levels left out.
func (m *Message) tree() (*entity, error) {
	if len(m.Attachments) > MaxAttachments {
		return nil, gateway.Errorf(gateway.CodeMalformed, "attachments: more than %d", MaxAttachments)
	}
	var inline, attached []*entity
	for i, a := range m.Attachments {
		e, isInline, err := attachmentEntity(fmt.Sprintf("attachments[%d]", i), a)
		if err != nil {
			return nil, err
		}
		if isInline && m.HTML != nil {
			inline = append(inline, e)
		} else {
			attached = append(attached, e)
		}
	}
	var body *entity
	var html *entity
	if m.HTML != nil {
		html = textEntity("text/html", *m.HTML)
		if len(inline) > 0 {
			html = &entity{contentType: "multipart/related", children: append([]*entity{html}, inline...)}
		}
	}
	switch {
	case m.Text != nil && html != nil:
		body = &entity{contentType: "multipart/alternative", children: []*entity{textEntity("text/plain", *m.Text), html}}
	case m.Text != nil:
		body = textEntity("text/plain", *m.Text)
	default:
		body = html
	}
	if len(attached) > 0 {
		body = &entity{contentType: "multipart/mixed", children: append([]*entity{body}, attached...)}
	}
	return body, nil
}

// entity is one MIME entity: a leaf with a body writer, or a multipart.
type entity struct {
	contentType string // full Content-Type of a leaf; the media type of a multipart
	fields      []field
	children    []*entity // non-nil for a multipart
	body        func(io.Writer) error
}

// header returns the entity's header fields; boundary is used by multiparts.
func (e *entity) header(boundary string) []field {
	ct := e.contentType
	if e.children != nil {
		ct = mime.FormatMediaType(e.contentType, map[string]string{"boundary": boundary})
	}
	return append([]field{{"Content-Type", ct}}, e.fields...)
}

// writeBody writes the body of e: a leaf's content, or a multipart's parts.
func (e *entity) writeBody(w io.Writer, boundary string) error {
	if e.children == nil {
		return e.body(w)
	}
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	for _, child := range e.children {
		cb := ""
		if child.children != nil {
			cb = randomBoundary()
		}
		h := textproto.MIMEHeader{}
		for _, f := range child.header(cb) {
			v, err := foldValue(f.name, f.value)
			if err != nil {
				return err
			}
			h[f.name] = append(h[f.name], v) // names as written, not canonicalized
		}
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if err := child.writeBody(pw, cb); err != nil {
			return err
		}
	}
	return mw.Close()
}

// textEntity is a UTF-8 text part in quoted-printable.
func textEntity(mediaType, text string) *entity {
	return &entity{
		contentType: mime.FormatMediaType(mediaType, map[string]string{"charset": "utf-8"}),
		fields:      []field{{"Content-Transfer-Encoding", "quoted-printable"}},
		body: func(w io.Writer) error {
			qp := quotedprintable.NewWriter(w)
			if _, err := io.WriteString(qp, text); err != nil {
				return err
			}
			return qp.Close()
		},
	}
}

// attachmentEntity validates a and builds its part. name is the field path
// for error messages.
func attachmentEntity(name string, a Attachment) (*entity, bool, error) {
	if a.Filename == "" {
		return nil, false, gateway.Errorf(gateway.CodeMalformed, "%s.filename is required", name)
	}
	if err := checkHeaderInput(name+".filename", a.Filename, MaxFilenameBytes); err != nil {
		return nil, false, err
	}
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	if err := checkHeaderInput(name+".content_type", ct, MaxContentTypeBytes); err != nil {
		return nil, false, err
	}
	mt, params, err := mime.ParseMediaType(ct)
	if typ, sub, ok := strings.Cut(mt, "/"); err != nil || !ok || typ == "" || sub == "" {
		return nil, false, gateway.Errorf(gateway.CodeMalformed, "%s.content_type is not a valid media type", name)
	}
	if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
		return nil, false, gateway.Errorf(gateway.CodeMalformed, "%s.content_type: %s is not allowed for an attachment", name, mt)
	}
	params["name"] = a.Filename
	ctValue := mime.FormatMediaType(mt, params)
	if ctValue == "" {
		return nil, false, gateway.Errorf(gateway.CodeMalformed, "%s.content_type is not a valid media type", name)
	}
	disp := a.Disposition
	switch disp {
	case "":
		disp = "attachment"
	case "attachment", "inline":
	default:
		return nil, false, gateway.Errorf(gateway.CodeMalformed, "%s.disposition must be attachment or inline", name)
	}
	e := &entity{
		contentType: ctValue,
		fields: []field{
			{"Content-Transfer-Encoding", "base64"},
			{"Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": a.Filename})},
		},
		body: func(w io.Writer) error { return writeBase64(w, a.Content) },
	}
	if a.ContentID != "" {
		cid := strings.TrimSuffix(strings.TrimPrefix(a.ContentID, "<"), ">")
		if !validContentID(cid) {
			return nil, false, gateway.Errorf(gateway.CodeMalformed,
				"%s.content_id must be 1 to %d characters of letters, digits and !#$%%&'*+-/=?^_`{|}~.@", name, MaxContentIDBytes)
		}
		e.fields = append(e.fields, field{"Content-ID", "<" + cid + ">"})
	}
	return e, disp == "inline", nil
}

// writeBase64 writes data in base64, 76 characters a line, CRLF between lines.
func writeBase64(w io.Writer, data []byte) error {
	const in, out = 57, 76 // 57 bytes make exactly 76 base64 characters
	var line [out + 2]byte
	for i := 0; i < len(data); i += in {
		chunk := data[i:min(i+in, len(data))]
		n := base64.StdEncoding.EncodedLen(len(chunk))
		base64.StdEncoding.Encode(line[:], chunk)
		if i+in < len(data) {
			line[n], line[n+1] = '\r', '\n'
			n += 2
		}
		if _, err := w.Write(line[:n]); err != nil {
			return err
		}
	}
	return nil
}

// mailbox validates one address and returns it formatted for a header.
func mailbox(name string, a mail.Address) (string, error) {
	if !gateway.HeaderValueOK(a.Address) {
		return "", injection(name)
	}
	addr, err := gateway.ParseAddress(a.Address)
	if err != nil {
		ge := gateway.AsError(err)
		return "", &gateway.Error{Code: gateway.CodeInvalidAddress, Msg: name + ": " + ge.Msg, Recipient: a.Address}
	}
	if err := checkHeaderInput(name+" display name", a.Name, MaxDisplayNameBytes); err != nil {
		return "", err
	}
	if needsEncoding(a.Name) && strings.ContainsRune(a.Name, '\\') {
		// net/mail Q-encodes a backslash as itself, which no address
		// parser (net/mail's, so the gateway's own) reads back
		// (golang/go#80592); B-encode such a name.
		return mime.BEncoding.Encode("utf-8", a.Name) + " <" + addr + ">", nil
	}
	return (&mail.Address{Name: a.Name, Address: addr}).String(), nil
}

// addressList formats a list of mailboxes for an address header.
func addressList(name string, list []mail.Address) (string, error) {
	parts := make([]string, len(list))
	for i, a := range list {
		s, err := mailbox(fmt.Sprintf("%s[%d]", name, i), a)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return strings.Join(parts, ", "), nil
}

// structuralHeader reports whether a header field (lowercase name) is one
// that the composer, SES or the gateway owns, so a client may not set it.
// X-SES-* fields pass: the pipeline consumes them like a raw message's
// (gateway.PrepareMessage), merges them with the JSON fields (a
// disagreement is refused) and checks them against the tenant; they never
// reach SES as header fields.
func structuralHeader(lower string) bool {
	switch lower {
	case "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date",
		"message-id", "mime-version", "return-path", "received":
		return true
	}
	return strings.HasPrefix(lower, "content-") || strings.HasPrefix(lower, "resent-")
}

// customHeader validates one extra header field.
func customHeader(h Header) (field, error) {
	if len(h.Name) == 0 || len(h.Name) > MaxHeaderNameBytes || !validFieldName(h.Name) {
		return field{}, gateway.Errorf(gateway.CodeMalformed,
			"headers: %q is not a valid header name (1 to %d printable ASCII characters, no colon or space)",
			truncate(h.Name, 64), MaxHeaderNameBytes)
	}
	if structuralHeader(strings.ToLower(h.Name)) {
		return field{}, gateway.Errorf(gateway.CodeMalformed, "headers: %s may not be set as a custom header", h.Name)
	}
	limit := MaxHeaderValueBytes
	if !needsEncoding(h.Value) {
		limit = gateway.MaxLineLength - len(h.Name) - 2
	}
	v, err := headerValue("headers["+h.Name+"]", h.Value, limit)
	if err != nil {
		return field{}, err
	}
	return field{h.Name, v}, nil
}

// headerValue validates an unstructured value and encodes it (RFC 2047 Q)
// when it is not printable ASCII.
func headerValue(name, v string, limit int) (string, error) {
	if err := checkHeaderInput(name, v, limit); err != nil {
		return "", err
	}
	return mime.QEncoding.Encode("utf-8", v), nil
}

// checkHeaderInput refuses a value that could inject a header (CR, LF, NUL)
// or that is longer than limit bytes.
func checkHeaderInput(name, v string, limit int) error {
	if !gateway.HeaderValueOK(v) {
		return injection(name)
	}
	if len(v) > limit {
		return gateway.Errorf(gateway.CodeMalformed, "%s is longer than %d bytes", name, limit)
	}
	return nil
}

// injection is the error for CR, LF or NUL in a header value.
func injection(name string) *gateway.Error {
	return gateway.Errorf(gateway.CodeMalformed, "header_injection: %s contains CR, LF or NUL", name)
}

// needsEncoding mirrors mime.WordEncoder: anything but printable ASCII and tab.
func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c > '~') && c != '\t' {
			return true
		}
	}
	return false
}

// validFieldName accepts RFC 5322 ftext: printable ASCII without colon.
func validFieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// validID accepts the gateway id (and anything else safe as a msg-id left part).
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validContentID accepts a msg-id without brackets made of atext, '.' and '@'.
func validContentID(s string) bool {
	if s == "" || len(s) > MaxContentIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~.@", c) >= 0) {
			return false
		}
	}
	return true
}

// writeField writes one folded header field.
func writeField(b *bytes.Buffer, name, value string) error {
	v, err := foldValue(name, value)
	if err != nil {
		return err
	}
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(v)
	b.WriteString("\r\n")
	return nil
}

// foldValue folds the value of "name: value" so lines stay within foldWidth
// where possible. It folds only before a single space that has non-blank
// characters on both sides, so unfolding (RFC 5322 2.2.3, or Go's textproto
// that joins with one space) gives back exactly the value, and no line is
// blank. It fails when a line would still exceed 998 characters.
func foldValue(name, value string) (string, error) {
	if len(name)+2+len(value) <= foldWidth {
		return value, nil
	}
	var b strings.Builder
	b.Grow(len(value) + len(value)/foldWidth*2 + 2)
	lineLen := len(name) + 2
	lineHasText := false
	start := 0
	emit := func(seg string) {
		if lineHasText && lineLen+len(seg) > foldWidth {
			b.WriteString("\r\n")
			lineLen = 0
		}
		b.WriteString(seg)
		lineLen += len(seg)
		lineHasText = true
	}
	for i := 1; i < len(value)-1; i++ {
		if value[i] == ' ' && !isBlank(value[i-1]) && !isBlank(value[i+1]) {
			emit(value[start:i])
			if lineLen > gateway.MaxLineLength {
				return "", gateway.Errorf(gateway.CodeMalformed, "%s header is too long to fold", name)
			}
			start = i
		}
	}
	emit(value[start:])
	if lineLen > gateway.MaxLineLength {
		return "", gateway.Errorf(gateway.CodeMalformed, "%s header is too long to fold", name)
	}
	return b.String(), nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// check7bit verifies the composer's promise: only 7-bit bytes, no NUL, CRLF
// line endings only, every line at most 998 characters.
func check7bit(msg []byte) error {
	lineStart := 0
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; {
		case c == 0 || c >= 0x80:
			return fmt.Errorf("byte %#x at offset %d", c, i)
		case c == '\r':
			if i+1 >= len(msg) || msg[i+1] != '\n' {
				return fmt.Errorf("bare CR at offset %d", i)
			}
		case c == '\n':
			if i == 0 || msg[i-1] != '\r' {
				return fmt.Errorf("bare LF at offset %d", i)
			}
			if i-1-lineStart > gateway.MaxLineLength {
				return fmt.Errorf("line of %d characters at offset %d", i-1-lineStart, lineStart)
			}
			lineStart = i + 1
		}
	}
	if len(msg)-lineStart > gateway.MaxLineLength {
		return fmt.Errorf("line of %d characters at offset %d", len(msg)-lineStart, lineStart)
	}
	return nil
}

// randomBoundary returns a 60-hex-digit multipart boundary, as mime/multipart
// does; it cannot occur in base64 or quoted-printable content by chance.
func randomBoundary() string {
	var b [30]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// sizeHint estimates the composed size, to allocate once.
func (m *Message) sizeHint() int {
	n := 4096
	if m.Text != nil {
		n += len(*m.Text) * 11 / 10
	}
	if m.HTML != nil {
		n += len(*m.HTML) * 11 / 10
	}
	for _, a := range m.Attachments {
		n += base64.StdEncoding.EncodedLen(len(a.Content))*78/76 + 512
	}
	return n
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
