package httpapi

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
)

// leaf is one decoded non-multipart entity of a parsed message.
type leaf struct {
	mediaType string
	params    map[string]string
	header    textproto.MIMEHeader
	content   []byte
}

// parsedMessage is a message parsed back with net/mail and mime/multipart.
type parsedMessage struct {
	header    mail.Header
	structure string // e.g. multipart/mixed[text/plain,application/pdf]
	leaves    []leaf
}

// parseMessage parses data as a MIME message, failing the test when it is
// not one, and decodes every leaf.
func parseMessage(t testing.TB, data []byte) *parsedMessage {
	t.Helper()
	if err := check7bit(data); err != nil {
		t.Fatalf("composed message breaks the 7-bit/line rules: %v", err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v", err)
	}
	p := &parsedMessage{header: msg.Header}
	p.structure = p.walk(t, textproto.MIMEHeader(msg.Header), msg.Body)
	return p
}

func (p *parsedMessage) walk(t testing.TB, h textproto.MIMEHeader, body io.Reader) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("bad Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		var kids []string
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading %s: %v", mt, err)
			}
			kids = append(kids, p.walk(t, part.Header, part))
		}
		return mt + "[" + strings.Join(kids, ",") + "]"
	}
	var r io.Reader = body
	switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	case "", "7bit", "8bit":
	default:
		t.Fatalf("unexpected Content-Transfer-Encoding %q", cte)
	}
	content, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", mt, err)
	}
	p.leaves = append(p.leaves, leaf{mediaType: mt, params: params, header: h, content: content})
	return mt
}

// find returns the first leaf of the media type.
func (p *parsedMessage) find(t testing.TB, mediaType string) leaf {
	t.Helper()
	for _, l := range p.leaves {
		if l.mediaType == mediaType {
			return l
		}
	}
	t.Fatalf("no %s part in %s", mediaType, p.structure)
	return leaf{}
}

// decodeHeader decodes RFC 2047 words in a header value.
func decodeHeader(t testing.TB, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatalf("decoding header %q: %v", v, err)
	}
	return s
}

// headerLines returns the raw lines of the top header section.
func headerLines(data []byte) []string {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	return strings.Split(string(head), "\r\n")
}
