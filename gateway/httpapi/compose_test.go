package httpapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

var composeDate = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))

func ptr(s string) *string { return &s }

// baseMessage is a valid message for the composer tests.
func baseMessage() *Message {
	return &Message{
		ID:      "01jabcdefghjkmnpqrstvwxyz0",
		Date:    composeDate,
		From:    mail.Address{Name: "Sender", Address: "s@Example.com"},
		To:      []mail.Address{{Address: "r@x.example"}},
		Subject: "hello",
		Text:    ptr("text body"),
	}
}

func TestComposeStructure(t *testing.T) {
	file := Attachment{Filename: "a.bin", Content: []byte{0, 1, 2, 0xff}}
	img := Attachment{Filename: "i.png", ContentType: "image/png", Disposition: "inline", ContentID: "img1", Content: []byte("png")}
	tests := []struct {
		name  string
		mod   func(m *Message)
		want  string
		check func(t *testing.T, p *parsedMessage)
	}{
		{"text only", func(m *Message) {}, "text/plain", nil},
		{"html only", func(m *Message) { m.Text, m.HTML = nil, ptr("<b>x</b>") }, "text/html", nil},
		{"alternative", func(m *Message) { m.HTML = ptr("<b>x</b>") }, "multipart/alternative[text/plain,text/html]", nil},
		{"mixed", func(m *Message) { m.Attachments = []Attachment{file} },
			"multipart/mixed[text/plain,application/octet-stream]",
			func(t *testing.T, p *parsedMessage) {
				if got := p.find(t, "application/octet-stream").content; !bytes.Equal(got, file.Content) {
					t.Errorf("attachment %x", got)
				}
			}},
		{"related inside alternative", func(m *Message) { m.HTML = ptr("<img src=cid:img1>"); m.Attachments = []Attachment{img, file} },
			"multipart/mixed[multipart/alternative[text/plain,multipart/related[text/html,image/png]],application/octet-stream]",
			func(t *testing.T, p *parsedMessage) {
				if got := p.find(t, "image/png").header.Get("Content-Id"); got != "<img1>" {
					t.Errorf("Content-ID %q", got)
				}
			}},
		{"inline without html goes to mixed", func(m *Message) { m.Attachments = []Attachment{img} },
			"multipart/mixed[text/plain,image/png]", nil},
		{"html with inline only", func(m *Message) { m.Text, m.HTML = nil, ptr("<img>"); m.Attachments = []Attachment{img} },
			"multipart/related[text/html,image/png]", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := baseMessage()
			tc.mod(m)
			out, err := Compose(m)
			if err != nil {
				t.Fatal(err)
			}
			p := parseMessage(t, out)
			if p.structure != tc.want {
				t.Errorf("structure %s, want %s", p.structure, tc.want)
			}
			if got := p.header.Get("Message-Id"); got != "<01jabcdefghjkmnpqrstvwxyz0@example.com>" {
				t.Errorf("Message-ID %q", got)
			}
			if got := p.header.Get("Date"); got != "Fri, 02 Jan 2026 03:04:05 +0100" {
				t.Errorf("Date %q", got)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestComposeRefuses(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(m *Message)
		wantCode gateway.Code
		wantMsg  string
	}{
		{"no id", func(m *Message) { m.ID = "" }, gateway.CodeMalformed, "message id"},
		{"id with space", func(m *Message) { m.ID = "a b" }, gateway.CodeMalformed, "message id"},
		{"no body", func(m *Message) { m.Text = nil }, gateway.CodeMalformed, "text or html"},
		{"bad from", func(m *Message) { m.From.Address = "x" }, gateway.CodeInvalidAddress, "from:"},
		{"CRLF in from address", func(m *Message) { m.From.Address = "s@example.com\r\nBcc: v@x.example" }, gateway.CodeMalformed, "header_injection: from"},
		{"LF in to name", func(m *Message) { m.To[0].Name = "a\nb" }, gateway.CodeMalformed, "header_injection: to[0] display name"},
		{"long name", func(m *Message) { m.Cc = []mail.Address{{Name: strings.Repeat("n", 257), Address: "c@x.example"}} }, gateway.CodeMalformed, "cc[0] display name is longer"},
		{"bad reply-to", func(m *Message) { m.ReplyTo = []mail.Address{{Address: "@x"}} }, gateway.CodeInvalidAddress, "reply_to[0]"},
		{"NUL in subject", func(m *Message) { m.Subject = "a\x00" }, gateway.CodeMalformed, "header_injection: subject"},
		{"header name with colon", func(m *Message) { m.Headers = []Header{{"X-A:", "v"}} }, gateway.CodeMalformed, "not a valid header name"},
		{"empty header name", func(m *Message) { m.Headers = []Header{{"", "v"}} }, gateway.CodeMalformed, "not a valid header name"},
		{"header name too long", func(m *Message) { m.Headers = []Header{{strings.Repeat("X", 127), "v"}} }, gateway.CodeMalformed, "not a valid header name"},
		{"Resent header", func(m *Message) { m.Headers = []Header{{"Resent-To", "v@x.example"}} }, gateway.CodeMalformed, "may not be set"},
		{"Sender header", func(m *Message) { m.Headers = []Header{{"SENDER", "v@x.example"}} }, gateway.CodeMalformed, "may not be set"},
		{"CR in header value", func(m *Message) { m.Headers = []Header{{"X-A", "a\rb"}} }, gateway.CodeMalformed, "header_injection: headers[X-A]"},
		{"ASCII header value over the line", func(m *Message) { m.Headers = []Header{{"X-A", strings.Repeat("v", 994)}} }, gateway.CodeMalformed, "headers[X-A] is longer than 993"},
		{"too many headers", func(m *Message) { m.Headers = make([]Header, 51) }, gateway.CodeMalformed, "more than 50"},
		{"CR in filename", func(m *Message) { m.Attachments = []Attachment{{Filename: "a\r"}} }, gateway.CodeMalformed, "header_injection: attachments[0].filename"},
		{"long filename", func(m *Message) { m.Attachments = []Attachment{{Filename: strings.Repeat("f", 256)}} }, gateway.CodeMalformed, "filename is longer"},
		{"bad media type", func(m *Message) { m.Attachments = []Attachment{{Filename: "a", ContentType: "text"}} }, gateway.CodeMalformed, "not a valid media type"},
		{"message attachment", func(m *Message) { m.Attachments = []Attachment{{Filename: "a", ContentType: "message/rfc822"}} }, gateway.CodeMalformed, "not allowed"},
		{"bad content id", func(m *Message) { m.Attachments = []Attachment{{Filename: "a", ContentID: "a b"}} }, gateway.CodeMalformed, "content_id"},
		{"too many attachments", func(m *Message) { m.Attachments = make([]Attachment, 101) }, gateway.CodeMalformed, "more than 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := baseMessage()
			tc.mod(m)
			out, err := Compose(m)
			var ge *gateway.Error
			if !errors.As(err, &ge) {
				t.Fatalf("got %v (%d bytes), want a *gateway.Error", err, len(out))
			}
			if ge.Code != tc.wantCode || !strings.Contains(ge.Msg, tc.wantMsg) {
				t.Errorf("got %v %q, want %v containing %q", ge.Code, ge.Msg, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestComposeLongHeaders(t *testing.T) {
	m := baseMessage()
	m.To = nil
	for i := range 50 {
		m.To = append(m.To, mail.Address{Name: fmt.Sprintf("Person %d, Esq.", i), Address: fmt.Sprintf("p%d@x.example", i)})
	}
	m.Subject = strings.Repeat("word ", 197) // 985 bytes of ASCII: fits without encoding
	m.Headers = []Header{
		{"X-Long-ASCII", strings.Repeat("v", 998-len("X-Long-ASCII: "))}, // exactly one 998-character line
		{"X-Long-UTF8", strings.Repeat("é", 499)},
	}
	m.Attachments = []Attachment{{Filename: strings.Repeat("é", 125) + ".txt", ContentType: "text/plain; charset=utf-8; format=flowed"}}
	out, err := Compose(m)
	if err != nil {
		t.Fatal(err)
	}
	p := parseMessage(t, out)
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 50 || to[7].Name != "Person 7, Esq." {
		t.Fatalf("To: %d addresses, %v", len(to), err)
	}
	if got := p.header.Get("Subject"); got != strings.TrimSpace(m.Subject) {
		t.Errorf("subject changed: %q", got)
	}
	if got := p.header.Get("X-Long-ASCII"); got != m.Headers[0].Value {
		t.Errorf("X-Long-ASCII changed")
	}
	if got := decodeHeader(t, p.header.Get("X-Long-UTF8")); got != m.Headers[1].Value {
		t.Errorf("X-Long-UTF8 changed: %q", got)
	}
	longest := slices.MaxFunc(headerLines(out), func(a, b string) int { return len(a) - len(b) })
	if len(longest) != 998 {
		t.Errorf("longest header line %d characters, want exactly 998 (X-Long-ASCII)", len(longest))
	}
}

// TestComposeKeepsWhatItIsGiven pins what a generic MIME writer (such as
// go-message's) would change: header names as written (not canonicalized),
// the header order, and an attachment labelled with a charset other than
// UTF-8 passed through as opaque bytes.
func TestComposeKeepsWhatItIsGiven(t *testing.T) {
	m := baseMessage()
	m.Headers = []Header{{"X-Campaign-ID", "spring"}, {"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"}}
	csv := []byte("Gr\xfc\xdfe;1\r\n")
	m.Attachments = []Attachment{{Filename: "a.csv", ContentType: "text/csv; charset=windows-1252", Content: csv}}
	out, err := Compose(m)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range headerLines(out) {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
			names = append(names, name)
		}
	}
	want := []string{"Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "X-Campaign-ID", "List-Unsubscribe-Post", "Content-Type"}
	if !slices.Equal(names, want) {
		t.Errorf("header fields %q, want %q", names, want)
	}
	a := parseMessage(t, out).find(t, "text/csv")
	if a.params["charset"] != "windows-1252" || !bytes.Equal(a.content, csv) {
		t.Errorf("attachment %q %q, want windows-1252 %q", a.params, a.content, csv)
	}
}

func TestFoldValue(t *testing.T) {
	tests := []struct {
		name, header, value, want string
		wantErr                   bool
	}{
		{"short", "Subject", "a b c", "a b c", false},
		{"folds at a single space", "X", strings.Repeat("a", 70) + " " + strings.Repeat("b", 10),
			strings.Repeat("a", 70) + "\r\n " + strings.Repeat("b", 10), false},
		{"never at a double space", "X", strings.Repeat("a", 70) + "  " + strings.Repeat("b", 10),
			strings.Repeat("a", 70) + "  " + strings.Repeat("b", 10), false},
		{"never before trailing space", "X", strings.Repeat("a", 80) + " ", strings.Repeat("a", 80) + " ", false},
		{"unfoldable over 998", "X", strings.Repeat("a", 997), "", true},
		{"folded pieces under 998", "X", strings.Repeat("a", 900) + " " + strings.Repeat("b", 900),
			strings.Repeat("a", 900) + "\r\n " + strings.Repeat("b", 900), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := foldValue(tc.header, tc.value)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
			if err == nil && strings.ReplaceAll(got, "\r\n", "") != tc.value {
				t.Errorf("unfolding does not give the value back")
			}
		})
	}
}

func TestWriteBase64(t *testing.T) {
	for _, n := range []int{0, 1, 56, 57, 58, 114, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := bytes.Repeat([]byte{0xfb, 0x01, 0x7f}, n)[:n]
			var b bytes.Buffer
			if err := writeBase64(&b, data); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(b.String(), "\r\n")
			for i, l := range lines {
				if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) {
					t.Errorf("line %d has %d characters", i, len(l))
				}
			}
			got, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("round trip failed: %v", err)
			}
		})
	}
}

func TestCheck7bit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"fine", "a: b\r\n\r\nc\r\n", true},
		{"no final newline", "a: b\r\n\r\nc", true},
		{"bare LF", "a: b\n", false},
		{"bare CR", "a: b\rc\r\n", false},
		{"8-bit", "a: \xc3\xa9\r\n", false},
		{"NUL", "a: \x00\r\n", false},
		{"998 is fine", strings.Repeat("x", 998) + "\r\n", true},
		{"999 is not", strings.Repeat("x", 999) + "\r\n", false},
		{"999 at the end", "\r\n" + strings.Repeat("x", 999), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := check7bit([]byte(tc.in)); (err == nil) != tc.ok {
				t.Errorf("check7bit = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// checkComposed asserts what Compose promises of any output, and that the
// header section holds exactly the wanted field names, once each.
func checkComposed(t *testing.T, out []byte, wantFields []string) *parsedMessage {
	t.Helper()
	p := parseMessage(t, out) // checks 7-bit, CRLF, 998
	var got []string
	for k, v := range p.header {
		if len(v) != 1 {
			t.Fatalf("header %s appears %d times", k, len(v))
		}
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Clone(wantFields)
	for i := range want {
		want[i] = textproto.CanonicalMIMEHeaderKey(want[i])
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("header fields %v, want %v", got, want)
	}
	return p
}

func FuzzCompose(f *testing.F) {
	f.Add("hello", "Ann", "X-Tag", "value", "a.pdf", "application/pdf", "text", []byte("data"))
	f.Add("Grüße\tzusammen", "Jürgen \"J\" Groß", "X-Ü", "ünï", "résumé.pdf", "text/plain; charset=utf-8", "Привет\r\n.\r\n", []byte{0, 0xff})
	f.Add("a\r\nBcc: x@y.z", "n\nm", "X-A", "v\rw", "f\n", "a/b\r\nX: y", "", []byte{})
	f.Add(strings.Repeat("long ", 300), strings.Repeat("n", 300), "X-Long", strings.Repeat("v", 990), strings.Repeat("f", 300), "a/b", strings.Repeat("x", 2000), []byte(nil))
	f.Add("=?utf-8?q?x?=", "=?utf-8?q?a=0D=0A?=", "Content-Type", "text/html", "x", "multipart/mixed; boundary=a", "--a\r\n", []byte("--a--"))
	f.Add(strings.Repeat("a", 60)+"  "+strings.Repeat("b", 30)+"\t"+strings.Repeat("c", 40), "N", "X-Campaign-ID", strings.Repeat("w", 1200), "a.csv", "text/csv; charset=windows-1252", "x", []byte("Gr\xfc\xdfe"))
	f.Fuzz(func(t *testing.T, subject, name, hName, hValue, filename, ctype, text string, data []byte) {
		m := &Message{
			ID:          "01fuzz",
			Date:        composeDate,
			From:        mail.Address{Name: name, Address: "s@example.com"},
			To:          []mail.Address{{Name: name, Address: "t@example.com"}},
			Subject:     subject,
			Text:        &text,
			HTML:        &text,
			Headers:     []Header{{hName, hValue}},
			Attachments: []Attachment{{Filename: filename, ContentType: ctype, Content: data}},
		}
		out, err := Compose(m)
		if err != nil {
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Code == gateway.CodeInternal {
				t.Fatalf("Compose failed with %v; want a client error", err)
			}
			return
		}
		p := checkComposed(t, out, []string{"Date", "From", "To", "Subject", "Message-Id", "Mime-Version",
			"Content-Type", hName})
		if !strings.Contains(subject, "=?") {
			if got := decodeHeader(t, p.header.Get("Subject")); strings.Trim(got, " \t") != strings.Trim(subject, " \t") {
				t.Errorf("subject %q came back as %q", subject, got)
			}
		}
		if ctype == "" {
			if got := p.find(t, "application/octet-stream"); !bytes.Equal(got.content, data) {
				t.Errorf("attachment changed")
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"from":"s@example.com","to":["r@x.example"],"subject":"","text":""}`))
	f.Add([]byte(`{"from":"A <s@example.com>","to":["B <r@x.example>"],"cc":["c@x.example"],"bcc":["d@x.example"],` +
		`"reply_to":["e@x.example"],"subject":"hi\u00e9","html":"<p>x</p>","text":"x","headers":{"X-A":"b"},` +
		`"attachments":[{"filename":"a","content_type":"image/png","content":"AAEC","disposition":"inline","content_id":"c1"}],` +
		`"tags":{"a":"b"}}`))
	f.Add([]byte(`{"from":"s@example.com","subject":"a\r\nBcc: x@y.z","text":""}`))
	f.Add([]byte(`{"to":5}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeJSON(bytes.NewReader(data))
		if err != nil {
			if ge := gateway.AsError(err); ge.Code != gateway.CodeMalformed {
				t.Fatalf("decode error %v, want malformed", err)
			}
			return
		}
		b, err := req.build("01fuzz", composeDate, 50)
		if err != nil {
			if ge := gateway.AsError(err); ge.Code == gateway.CodeInternal {
				t.Fatalf("build error %v", err)
			}
			return
		}
		out, err := Compose(b.msg)
		if err != nil {
			if ge := gateway.AsError(err); ge.Code == gateway.CodeInternal {
				t.Fatalf("compose error %v", err)
			}
			return
		}
		p := parseMessage(t, out)
		if _, ok := p.header["Bcc"]; ok {
			t.Fatal("Bcc header in composed message")
		}
		for _, r := range req.Bcc {
			a, _ := parseMailbox("bcc", r)
			if !slices.Contains(b.rcpts, a.Address) {
				t.Fatalf("bcc %s missing from the envelope", a.Address)
			}
		}
	})
}
