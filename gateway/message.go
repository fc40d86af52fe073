package gateway

import (
	"bytes"
	"net/mail"
	"strings"
)

// Limits on the header section, so a hostile message cannot make the parser
// do unbounded work. Bodies are bounded by the tenant's size limit.
const (
	MaxLineLength    = 998 // RFC 5322 2.1.1, excluding CRLF
	MaxHeaderFields  = 500
	MaxHeaderSection = 1 << 20
)

// PreparedMessage is a checked message ready for a sink.
type PreparedMessage struct {
	Data []byte   // CRLF line endings; Bcc, Resent-Bcc, Return-Path and X-SES-* fields removed
	From []string // addresses of the From header, validated
	// SES are the parameters of the message's X-SES-CONFIGURATION-SET,
	// X-SES-MESSAGE-TAGS and X-SES-LIST-MANAGEMENT-OPTIONS fields, parsed
	// but not yet checked against the tenant (MergeSESParams, then
	// Tenant.CheckSESParams).
	SES SESParams
	// Originators are the addresses of the other fields that name who sent
	// the message (Sender, Resent-From, Resent-Sender), validated, in order.
	Originators []Originator
}

// Originator is one address of an originator field other than From.
type Originator struct {
	Field string // canonical field name: "Sender", "Resent-From" or "Resent-Sender"
	Addr  string // validated, domain lowercased
}

// originatorField returns the canonical name of an originator field other
// than From, given its lowercased name. Sender may appear once; the Resent-*
// fields once per resent block, so any number of times.
func originatorField(lower string) (string, bool) {
	switch lower {
	case "sender":
		return "Sender", true
	case "resent-from":
		return "Resent-From", true
	case "resent-sender":
		return "Resent-Sender", true
	}
	return "", false
}

// CheckIdentities refuses (CodeSenderNotAllowed, naming the field) a message
// whose From, Sender, Resent-From or Resent-Sender names an address that is
// not one of t's identities: each of them is shown to recipients as the
// sender, so none may be a foreign address.
func (m *PreparedMessage) CheckIdentities(t *Tenant) error {
	for _, f := range m.From {
		if !t.AllowsSender(f) {
			return Errorf(CodeSenderNotAllowed, "From header address not allowed for this tenant")
		}
	}
	for _, o := range m.Originators {
		if !t.AllowsSender(o.Addr) {
			return Errorf(CodeSenderNotAllowed, "%s header address not allowed for this tenant", o.Field)
		}
	}
	return nil
}

// PrepareMessage checks a raw RFC 5322 message and returns the bytes to hand
// to the sink. It refuses (CodeBadContent) an empty message, a missing or
// malformed header section, a missing From header, lines over 998 characters,
// NUL bytes, and 8-bit bytes unless allow8bit (the client declared 8BITMIME),
// more than one From or Sender field, and a malformed address in From,
// Sender, Resent-From or Resent-Sender (whether those are identities of the
// tenant is CheckIdentities'). Bare LF line endings are turned into CRLF.
// Bcc and Resent-Bcc are removed (recipients come from the envelope), and
// Return-Path (SES sets its own from the envelope). X-SES-* header fields are
// consumed, never forwarded (SES would read them and bypass the policy):
// X-SES-CONFIGURATION-SET, X-SES-MESSAGE-TAGS and
// X-SES-LIST-MANAGEMENT-OPTIONS become PreparedMessage.SES; any other
// X-SES-* field (the identity ARNs among them), a repeated one or a
// malformed one is refused with CodeBadParameter naming the field.
func PrepareMessage(raw []byte, allow8bit bool) (*PreparedMessage, error) {
	return prepareMessage(raw, allow8bit, make([]byte, 0, len(raw)+len(raw)/64))
}

// PrepareMessageInPlace is PrepareMessage for a caller that owns raw and
// reads it no more: when every line of raw ends with CRLF (SMTP's, and most
// clients'), the result is written over raw and its Data shares raw's
// memory, so a large message is not held twice. raw's content is then
// overwritten, whether the message is accepted or refused. Otherwise
// (bare LF line endings, which grow the message, or no final line break)
// it copies, as PrepareMessage does. The result is the same either way.
func PrepareMessageInPlace(raw []byte, allow8bit bool) (*PreparedMessage, error) {
	if !crlfOnly(raw) {
		return PrepareMessage(raw, allow8bit)
	}
	// In place: every line's output (CRLF kept, header fields dropped or
	// consumed) is at most its input, and is written after the line was
	// read, so the writes never overtake the reads. The capacity stops an
	// append from reaching past raw; a header section without a body,
	// which gains a blank line, then grows into a copy.
	return prepareMessage(raw, allow8bit, raw[:0:len(raw)])
}

// crlfOnly reports whether b ends with a line break and every LF in it
// follows a CR.
func crlfOnly(b []byte) bool {
	if len(b) < 2 || b[len(b)-1] != '\n' {
		return false
	}
	return bytes.Count(b, []byte("\n")) == bytes.Count(b, []byte("\r\n"))
}

// prepareMessage is PrepareMessage writing the result into out (empty).
func prepareMessage(raw []byte, allow8bit bool, out []byte) (*PreparedMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, Errorf(CodeBadContent, "empty message")
	}
	inHeader, dropping := true, false
	var from []string
	var originators []Originator
	senders := 0
	fields := 0
	headerBytes := 0
	var field []byte   // current header field, unfolded lines included
	var scratch []byte // field's storage, reused from one field to the next
	var ses sesHeaders

	flushField := func() error {
		if field == nil {
			return nil
		}
		defer func() { scratch, field = field[:0], nil }()
		name, value, _ := bytes.Cut(field, []byte(":"))
		n := strings.ToLower(strings.TrimSpace(string(name)))
		if strings.HasPrefix(n, "x-ses-") {
			return ses.add(n, string(value)) // consumed, not forwarded
		}
		if n == "from" {
			if from != nil {
				return Errorf(CodeBadContent, "more than one From header")
			}
			addrs, err := parseAddressHeader("From", string(value))
			if err != nil {
				return err
			}
			from = addrs
		} else if canon, ok := originatorField(n); ok {
			if n == "sender" {
				if senders++; senders > 1 {
					return Errorf(CodeBadContent, "more than one Sender header")
				}
			}
			addrs, err := parseAddressHeader(canon, string(value))
			if err != nil {
				return err
			}
			for _, a := range addrs {
				originators = append(originators, Originator{Field: canon, Addr: a})
			}
		}
		out = append(out, field...)
		return nil
	}

	rest := raw
	for len(rest) > 0 {
		var line []byte
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i], rest[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > MaxLineLength {
			return nil, Errorf(CodeBadContent, "line longer than %d characters", MaxLineLength)
		}
		for _, c := range line {
			if c == 0 || c == '\r' {
				return nil, Errorf(CodeBadContent, "NUL or bare CR in message")
			}
			if c >= 0x80 && !allow8bit {
				return nil, Errorf(CodeBadContent, "8-bit data without 8BITMIME")
			}
		}
		if !inHeader {
			out = append(out, line...)
			out = append(out, '\r', '\n')
			continue
		}
		headerBytes += len(line) + 2
		if headerBytes > MaxHeaderSection {
			return nil, Errorf(CodeBadContent, "header section too large")
		}
		switch {
		case len(line) == 0: // end of header section
			if err := flushField(); err != nil {
				return nil, err
			}
			inHeader = false
			out = append(out, '\r', '\n')
		case line[0] == ' ' || line[0] == '\t': // folded continuation
			if field == nil && !dropping {
				return nil, Errorf(CodeBadContent, "header section starts with a continuation line")
			}
			if !dropping {
				field = append(append(field, line...), '\r', '\n')
			}
		default:
			if err := flushField(); err != nil {
				return nil, err
			}
			name, _, ok := bytes.Cut(line, []byte(":"))
			if !ok || !validFieldName(name) {
				return nil, Errorf(CodeBadContent, "malformed header line")
			}
			fields++
			if fields > MaxHeaderFields {
				return nil, Errorf(CodeBadContent, "too many header fields")
			}
			dropping = bytes.EqualFold(name, []byte("bcc")) || bytes.EqualFold(name, []byte("resent-bcc")) ||
				bytes.EqualFold(name, []byte("return-path"))
			if !dropping {
				field = append(append(scratch[:0], line...), '\r', '\n')
			}
		}
	}
	if inHeader {
		if err := flushField(); err != nil {
			return nil, err
		}
		// A message may end without a body; keep it well formed.
		out = append(out, '\r', '\n')
	}
	if len(from) == 0 {
		return nil, Errorf(CodeBadContent, "message has no From header")
	}
	return &PreparedMessage{Data: out, From: from, Originators: originators, SES: ses.p}, nil
}

// validFieldName accepts printable ASCII without colon or space (RFC 5322 ftext).
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// parseAddressHeader parses the value of the address-list header field
// (encoded words allowed) and validates every address.
func parseAddressHeader(field, v string) ([]string, error) {
	// Trimming first keeps the field's own CRLF from costing a Replacer;
	// the result equals removing the line breaks, then trimming (a break
	// never straddles the first or last non-space character).
	v = strings.TrimSpace(v)
	if strings.IndexByte(v, '\n') >= 0 {
		v = strings.TrimSpace(strings.NewReplacer("\r\n", "", "\n", "").Replace(v))
	}
	if plainAddrSpec(v) {
		// A bare local@domain of dot-atom characters: net/mail would
		// return it unchanged, so ParseAddress alone decides.
		if addr, err := ParseAddress(v); err == nil {
			return []string{addr}, nil
		}
	}
	return parseAddressList(field, v)
}

// parseAddressList parses an address list through net/mail and validates
// every address (the general path of parseAddressHeader).
func parseAddressList(field, v string) ([]string, error) {
	list, err := mail.ParseAddressList(v)
	if err != nil {
		return nil, Wrap(CodeBadContent, err, "malformed "+field+" header")
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		addr, err := ParseAddress(a.Address)
		if err != nil {
			return nil, Errorf(CodeBadContent, "invalid address in %s header", field)
		}
		out = append(out, addr)
	}
	return out, nil
}

// plainAddrSpec reports whether v holds only characters a dot-atom
// local@domain may have (RFC 5322 atext, '.', '@'): no display name,
// comment, group, quoting, list or folding white space.
func plainAddrSpec(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '@':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// HeaderValueOK reports whether s may be written as a header value: no CR, LF
// or NUL, so no header can be injected through it.
func HeaderValueOK(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}
