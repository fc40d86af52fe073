package httpapi

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestSendJSON(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	pdf := strings.Repeat("%PDF-1.4 binary \x00\xff\xfe data ", 40)
	png := "\x89PNG\r\n\x1a\n fake image"
	a := s.postJSON(t, map[string]any{
		"from":     "Sender Name <sender@Example.COM>",
		"to":       []string{"Ann <ann@a.example>", "bob@b.example"},
		"cc":       []string{"Carl Cc <carl@c.example>"},
		"bcc":      []string{"dan@d.example"},
		"reply_to": []string{"replies@example.com"},
		"subject":  "Quarterly report",
		"text":     "Hello Ann,\nthe report is attached.\n",
		"html":     `<p>Hello Ann,</p><img src="cid:logo@example.com">`,
		"headers":  map[string]string{"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
		"attachments": []map[string]string{
			{"filename": "report.pdf", "content_type": "application/pdf", "content": b64(pdf)},
			{"filename": "logo.png", "content_type": "image/png", "content": b64(png),
				"disposition": "inline", "content_id": "<logo@example.com>"},
		},
		"tags": map[string]string{"campaign": "spring-2026"},
	})
	if a.status != http.StatusOK {
		t.Fatalf("status %d, body %s", a.status, a.raw)
	}
	id, _ := a.body["id"].(string)
	if len(id) != 26 || a.body["message_id"] != "ses-"+id {
		t.Fatalf("answer %s: want a 26-char id and message_id ses-<id>", a.raw)
	}
	env := s.sink.only(t)
	if env.ID != id || env.From != "sender@example.com" || env.Via != "http" || env.EightBit {
		t.Errorf("envelope id=%q from=%q via=%q eightbit=%v", env.ID, env.From, env.Via, env.EightBit)
	}
	if env.Source != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("source %v, want 127.0.0.1", env.Source)
	}
	wantRcpts := []string{"ann@a.example", "bob@b.example", "carl@c.example", "dan@d.example"}
	if !slices.Equal(env.Recipients, wantRcpts) {
		t.Errorf("recipients %v, want %v", env.Recipients, wantRcpts)
	}
	head, _, _ := bytes.Cut(env.Data, []byte("\r\n\r\n"))
	// A Bcc field name at a line start (a random boundary may contain "bcc").
	if bytes.Contains(bytes.ToLower(append([]byte("\n"), head...)), []byte("\nbcc:")) || bytes.Contains(head, []byte("dan@d.example")) {
		t.Errorf("header section leaks Bcc:\n%s", head)
	}
	p := parseMessage(t, env.Data)
	wantHeaders := map[string]string{
		"From":             `"Sender Name" <sender@example.com>`,
		"To":               `"Ann" <ann@a.example>, <bob@b.example>`,
		"Cc":               `"Carl Cc" <carl@c.example>`,
		"Reply-To":         "<replies@example.com>",
		"Subject":          "Quarterly report",
		"Message-Id":       "<" + id + "@example.com>",
		"Mime-Version":     "1.0",
		"Date":             "Wed, 04 Mar 2026 05:06:07 +0000",
		"X-Campaign":       "spring",
		"List-Unsubscribe": "<mailto:u@example.com>",
	}
	for k, want := range wantHeaders {
		if got := p.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := p.header["Bcc"]; ok {
		t.Error("message has a Bcc header")
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Name != "Ann" || to[1].Address != "bob@b.example" {
		t.Errorf("To parses as %v, %v", to, err)
	}
	wantStructure := "multipart/mixed[multipart/alternative[text/plain,multipart/related[text/html,image/png]],application/pdf]"
	if p.structure != wantStructure {
		t.Errorf("structure %s, want %s", p.structure, wantStructure)
	}
	if got := string(p.find(t, "text/plain").content); got != "Hello Ann,\r\nthe report is attached.\r\n" {
		t.Errorf("text part %q", got)
	}
	if got := string(p.find(t, "application/pdf").content); got != pdf {
		t.Errorf("pdf attachment differs: %d bytes, want %d", len(got), len(pdf))
	}
	img := p.find(t, "image/png")
	if string(img.content) != png || img.header.Get("Content-Id") != "<logo@example.com>" ||
		!strings.HasPrefix(img.header.Get("Content-Disposition"), "inline;") {
		t.Errorf("inline image: %q, headers %v", img.content, img.header)
	}
}

func TestSendJSONNonASCII(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	subject := "  " + strings.Repeat("Grüße aus Köln — 日本語のテスト ", 6) + "end"
	text := "Привет, мир!\nZweite Zeile mit Umlauten: äöü ß\n" + strings.Repeat("长", 300)
	html := "<p>Ünïcödé ✓</p>"
	a := s.postJSON(t, map[string]any{
		"from":        "Jürgen Groß <j@example.com>",
		"to":          []string{"Zoë Ça <zoe@x.example>"},
		"subject":     subject,
		"text":        text,
		"html":        html,
		"headers":     map[string]string{"X-Note": "café"},
		"attachments": []map[string]string{{"filename": "résumé 2026.pdf", "content": b64("x")}},
	})
	if a.status != http.StatusOK {
		t.Fatalf("status %d, body %s", a.status, a.raw)
	}
	env := s.sink.only(t)
	p := parseMessage(t, env.Data)
	if got := decodeHeader(t, p.header.Get("Subject")); got != subject {
		t.Errorf("subject %q, want %q", got, subject)
	}
	for _, l := range headerLines(env.Data) {
		// The first line may hold a whole 75-character encoded word after the name.
		if len(l) > foldWidth && l[0] == ' ' || len(l) > 998 {
			t.Errorf("header line of %d characters: %q", len(l), l)
		}
	}
	from, err := p.header.AddressList("From")
	if err != nil || from[0].Name != "Jürgen Groß" {
		t.Errorf("From %v, %v", from, err)
	}
	to, err := p.header.AddressList("To")
	if err != nil || to[0].Name != "Zoë Ça" {
		t.Errorf("To %v, %v", to, err)
	}
	if got := decodeHeader(t, p.header.Get("X-Note")); got != "café" {
		t.Errorf("X-Note %q", got)
	}
	wantText := strings.ReplaceAll(text, "\n", "\r\n")
	if got := string(p.find(t, "text/plain").content); got != wantText {
		t.Errorf("text %q, want %q", got, wantText)
	}
	if got := string(p.find(t, "text/html").content); got != html {
		t.Errorf("html %q, want %q", got, html)
	}
	att := p.find(t, "application/octet-stream")
	_, params, err := mime.ParseMediaType(att.header.Get("Content-Disposition"))
	if err != nil || params["filename"] != "résumé 2026.pdf" {
		t.Errorf("filename %q, %v", params["filename"], err)
	}
}

func TestSendJSONFiftyRecipients(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	var to []string
	for i := range 50 {
		to = append(to, fmt.Sprintf("Recipient Number %d <r%d@x.example>", i, i))
	}
	a := s.postJSON(t, map[string]any{"from": "s@example.com", "to": to, "subject": "", "text": ""})
	if a.status != http.StatusOK {
		t.Fatalf("status %d, body %s", a.status, a.raw)
	}
	env := s.sink.only(t)
	p := parseMessage(t, env.Data)
	list, err := p.header.AddressList("To")
	if err != nil || len(list) != 50 || list[49].Address != "r49@x.example" || list[49].Name != "Recipient Number 49" {
		t.Fatalf("To has %d addresses, %v", len(list), err)
	}
	if len(env.Recipients) != 50 {
		t.Errorf("envelope has %d recipients", len(env.Recipients))
	}
	if p.structure != "text/plain" || len(p.leaves[0].content) != 0 {
		t.Errorf("structure %s content %q", p.structure, p.leaves[0].content)
	}
}

func TestSendRaw(t *testing.T) {
	msg := "From: Sender <sender@example.com>\r\n" +
		"To: a@x.example, \"Bee\" <b@x.example>\r\n" +
		"Cc: c@x.example\r\n" +
		"Bcc: hidden@x.example\r\n" +
		"Subject: raw\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Grüße\r\n"
	tests := []struct {
		name      string
		query     string
		wantFrom  string
		wantRcpts []string
	}{
		{"recipients from headers", "", "sender@example.com",
			[]string{"a@x.example", "b@x.example", "c@x.example", "hidden@x.example"}},
		{"recipients from query", "?to=q1@x.example&to=Q2@X.example", "sender@example.com",
			[]string{"q1@x.example", "Q2@x.example"}},
		{"sender from query", "?from=bounce@example.com", "bounce@example.com",
			[]string{"a@x.example", "b@x.example", "c@x.example", "hidden@x.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, serverConfig{})
			a := do(t, http.MethodPost, s.url+"/v1/messages"+tc.query, testToken, "message/rfc822", []byte(msg), nil)
			if a.status != http.StatusOK {
				t.Fatalf("status %d, body %s", a.status, a.raw)
			}
			env := s.sink.only(t)
			if env.From != tc.wantFrom || !slices.Equal(env.Recipients, tc.wantRcpts) || !env.EightBit {
				t.Errorf("envelope from=%q rcpts=%v eightbit=%v", env.From, env.Recipients, env.EightBit)
			}
			if bytes.Contains(env.Data, []byte("Bcc:")) || bytes.Contains(env.Data, []byte("hidden@")) {
				t.Errorf("Bcc reached the sink:\n%s", env.Data)
			}
			if !bytes.Contains(env.Data, []byte("\r\n\r\nGrüße\r\n")) {
				t.Errorf("8-bit body changed:\n%q", env.Data)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	body := []byte(`{"from":"s@example.com","to":["r@x.example"],"subject":"","text":""}`)
	tests := []struct {
		name     string
		auth     string
		wantCode string
		wantWWW  string
	}{
		{"no token", "", "auth_required", "Bearer"},
		{"wrong scheme", "Basic " + testToken, "auth_required", "Bearer"},
		{"empty bearer", "Bearer ", "auth_required", "Bearer"},
		{"wrong token", "Bearer nope", "bad_credentials", `Bearer error="invalid_token"`},
		{"huge token", "Bearer " + strings.Repeat("x", 2000), "bad_credentials", `Bearer error="invalid_token"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, http.MethodPost, s.url+"/v1/messages", "", "application/json", body,
				map[string]string{"Authorization": tc.auth})
			if a.status != http.StatusUnauthorized || a.errCode() != tc.wantCode {
				t.Fatalf("got %d %s, want 401 %s", a.status, a.raw, tc.wantCode)
			}
			if got := a.header.Get("WWW-Authenticate"); got != tc.wantWWW {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wantWWW)
			}
		})
	}
	if n := len(s.sink.sent()); n != 0 {
		t.Errorf("sink got %d messages", n)
	}
}

func TestRefusals(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	ok := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"from": "s@example.com", "to": []string{"r@x.example"}, "subject": "hi", "text": "body"}
		mod(m)
		return m
	}
	var many []string
	for i := range 51 {
		many = append(many, fmt.Sprintf("r%d@x.example", i))
	}
	manyHeaders := map[string]string{}
	for i := range 51 {
		manyHeaders[fmt.Sprintf("X-H%d", i)] = "v"
	}
	manyTags := map[string]string{}
	for i := range gateway.MaxMessageTags + 1 {
		manyTags[fmt.Sprintf("t%d", i)] = "v"
	}
	tests := []struct {
		name       string
		body       any // a string is sent verbatim
		wantStatus int
		wantCode   string
		wantInMsg  string
		wantRcpt   string
	}{
		{"sender not allowed", ok(func(m map[string]any) { m["from"] = "s@other.example" }), 403, "sender_not_allowed", "", ""},
		{"unknown field", `{"from":"s@example.com","to":["r@x.example"],"subject":"","text":"","frm":"x"}`, 400, "malformed", `"frm"`, ""},
		{"unknown nested field", ok(func(m map[string]any) { m["attachments"] = []map[string]string{{"filename": "a", "nam": "b"}} }), 400, "malformed", `"nam"`, ""},
		{"wrong type to", ok(func(m map[string]any) { m["to"] = "r@x.example" }), 400, "malformed", `"to"`, ""},
		{"wrong type subject", ok(func(m map[string]any) { m["subject"] = 5 }), 400, "malformed", `"subject"`, ""},
		{"wrong type nested", ok(func(m map[string]any) { m["attachments"] = []map[string]any{{"filename": "a", "content": 1}} }), 400, "malformed", `"attachments.content"`, ""},
		{"not an object", `["x"]`, 400, "malformed", "JSON object", ""},
		{"syntax error", `{"from":`, 400, "malformed", "truncated", ""},
		{"trailing data", `{"from":"s@example.com","to":["r@x.example"],"subject":"","text":""} {}`, 400, "malformed", "after the JSON object", ""},
		{"empty body", "", 400, "malformed", "empty request body", ""},
		{"missing from", ok(func(m map[string]any) { delete(m, "from") }), 400, "malformed", "from is required", ""},
		{"missing subject", ok(func(m map[string]any) { delete(m, "subject") }), 400, "malformed", "subject is required", ""},
		{"no text or html", ok(func(m map[string]any) { delete(m, "text") }), 400, "malformed", "text or html", ""},
		{"no recipients", ok(func(m map[string]any) { delete(m, "to") }), 400, "no_recipients", "", ""},
		{"CRLF in subject", ok(func(m map[string]any) { m["subject"] = "hi\r\nBcc: victim@x.example" }), 400, "malformed", "header_injection: subject", ""},
		{"LF in header value", ok(func(m map[string]any) { m["headers"] = map[string]string{"X-A": "v\nBcc: v@x.example"} }), 400, "malformed", "header_injection: headers[X-A]", ""},
		{"CR in display name", ok(func(m map[string]any) { m["to"] = []string{"\"Evil\rBcc: v@x.example\" <r@x.example>"} }), 400, "malformed", "header_injection: to[0]", ""},
		{"encoded CRLF in display name", ok(func(m map[string]any) { m["cc"] = []string{"=?utf-8?b?YQ0KQmNjOiB2QHguZXhhbXBsZQ==?= <r@x.example>"} }), 400, "malformed", "header_injection: cc[0] display name", ""},
		{"LF in filename", ok(func(m map[string]any) { m["attachments"] = []map[string]string{{"filename": "a\n.pdf"}} }), 400, "malformed", "header_injection: attachments[0].filename", ""},
		{"NUL in content type", ok(func(m map[string]any) {
			m["attachments"] = []map[string]string{{"filename": "a", "content_type": "text/plain\x00"}}
		}), 400, "malformed", "header_injection: attachments[0].content_type", ""},
		{"invalid address", ok(func(m map[string]any) { m["to"] = []string{"r@x.example", "bob@"} }), 422, "invalid_address", "to[1]", "bob@"},
		{"invalid from", ok(func(m map[string]any) { m["from"] = "not an address" }), 422, "invalid_address", "from", "not an address"},
		{"8-bit local part", ok(func(m map[string]any) { m["bcc"] = []string{"jürgen@x.example"} }), 422, "invalid_address", "bcc[0]", "jürgen@x.example"},
		{"51 recipients", ok(func(m map[string]any) { m["to"] = many }), 422, "too_many_recipients", "", "r50@x.example"},
		{"structural header", ok(func(m map[string]any) { m["headers"] = map[string]string{"Bcc": "v@x.example"} }), 400, "malformed", "Bcc may not be set", ""},
		{"content header", ok(func(m map[string]any) { m["headers"] = map[string]string{"content-type": "text/html"} }), 400, "malformed", "content-type may not be set", ""},
		{"SES header", ok(func(m map[string]any) { m["headers"] = map[string]string{"X-SES-CONFIGURATION-SET": "other"} }), 400, "bad_parameter", `configuration set "other" is not allowed for this tenant`, ""},
		{"SES ARN header", ok(func(m map[string]any) { m["headers"] = map[string]string{"X-SES-SOURCE-ARN": "arn:x"} }), 400, "bad_parameter", "X-SES-SOURCE-ARN header is not allowed", ""},
		{"SES header and field differ", ok(func(m map[string]any) {
			m["tags"] = map[string]string{"kind": "a"}
			m["headers"] = map[string]string{"X-SES-MESSAGE-TAGS": "kind=b"}
		}), 400, "bad_parameter", `message tag "kind": the X-SES-MESSAGE-TAGS header ("b") and the request's tags ("a") differ`, ""},
		{"bad header name", ok(func(m map[string]any) { m["headers"] = map[string]string{"X A": "v"} }), 400, "malformed", "not a valid header name", ""},
		{"51 headers", ok(func(m map[string]any) { m["headers"] = manyHeaders }), 400, "malformed", "more than 50", ""},
		{"bad tag value", ok(func(m map[string]any) { m["tags"] = map[string]string{"a": "b c"} }), 400, "bad_parameter", `message tag "a" value`, ""},
		{"reserved tag", ok(func(m map[string]any) { m["tags"] = map[string]string{"sesgate-tenant": "x"} }), 400, "bad_parameter", `message tag name "sesgate-tenant" is reserved`, ""},
		{"49 tags", ok(func(m map[string]any) { m["tags"] = manyTags }), 400, "bad_parameter", "tags: more than 48", ""},
		{"tags not an object", ok(func(m map[string]any) { m["tags"] = []string{"a=b"} }), 400, "malformed", `"tags"`, ""},
		{"configuration set not allowed", ok(func(m map[string]any) { m["configuration_set"] = "marketing" }), 400, "bad_parameter", `configuration set "marketing" is not allowed for this tenant`, ""},
		{"empty configuration set", ok(func(m map[string]any) { m["configuration_set"] = "" }), 400, "bad_parameter", "configuration_set is empty", ""},
		{"list management without list", ok(func(m map[string]any) { m["list_management"] = map[string]string{"topic": "weekly"} }), 400, "bad_parameter", "list_management.contact_list is required", ""},
		{"list management unknown field", ok(func(m map[string]any) { m["list_management"] = map[string]string{"contact_list": "a", "topik": "b"} }), 400, "malformed", `"topik"`, ""},
		{"bad base64", ok(func(m map[string]any) { m["attachments"] = []map[string]string{{"filename": "a", "content": "%%%"}} }), 400, "malformed", "attachments[0].content", ""},
		{"bad disposition", ok(func(m map[string]any) {
			m["attachments"] = []map[string]string{{"filename": "a", "disposition": "hidden"}}
		}), 400, "malformed", "attachments[0].disposition", ""},
		{"multipart attachment", ok(func(m map[string]any) {
			m["attachments"] = []map[string]string{{"filename": "a", "content_type": "multipart/mixed; boundary=x"}}
		}), 400, "malformed", "not allowed", ""},
		{"missing filename", ok(func(m map[string]any) { m["attachments"] = []map[string]string{{"content": ""}} }), 400, "malformed", "attachments[0].filename is required", ""},
		{"subject too long", ok(func(m map[string]any) { m["subject"] = strings.Repeat("a", MaxSubjectBytes+1) }), 400, "malformed", "subject is longer", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := s.postJSON(t, tc.body)
			if a.status != tc.wantStatus || a.errCode() != tc.wantCode {
				t.Fatalf("got %d %s, want %d %s", a.status, a.raw, tc.wantStatus, tc.wantCode)
			}
			if msg := a.errField("message"); !strings.Contains(msg, tc.wantInMsg) {
				t.Errorf("message %q does not contain %q", msg, tc.wantInMsg)
			}
			if got := a.errField("recipient"); got != tc.wantRcpt {
				t.Errorf("recipient %q, want %q", got, tc.wantRcpt)
			}
		})
	}
	if n := len(s.sink.sent()); n != 0 {
		t.Errorf("sink got %d messages", n)
	}
}

func TestRefusalsRaw(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	good := "From: s@example.com\r\nTo: r@x.example\r\nSubject: x\r\n\r\nbody\r\n"
	tests := []struct {
		name       string
		query      string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"empty body", "", "", 400, "malformed"},
		{"unknown query parameter", "?rcpt=r@x.example", good, 400, "malformed"},
		{"two from parameters", "?from=a@example.com&from=b@example.com", good, 400, "malformed"},
		{"no From header", "", "To: r@x.example\r\n\r\nbody\r\n", 422, "bad_content"},
		{"From not allowed", "", strings.Replace(good, "s@example.com", "s@other.example", 1), 403, "sender_not_allowed"},
		{"query from not allowed", "?from=x@other.example", good, 403, "sender_not_allowed"},
		{"no recipients", "", "From: s@example.com\r\nSubject: x\r\n\r\nbody\r\n", 400, "no_recipients"},
		{"bad To header", "", "From: s@example.com\r\nTo: <<<\r\n\r\nbody\r\n", 422, "invalid_address"},
		{"invalid query recipient", "?to=nope", good, 422, "invalid_address"},
		{"line too long", "", good + strings.Repeat("x", 999) + "\r\n", 422, "bad_content"},
		{"51 query recipients", "?" + strings.Repeat("to=r@x.example&", 51), good, 422, "too_many_recipients"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, http.MethodPost, s.url+"/v1/messages"+tc.query, testToken, "message/rfc822", []byte(tc.body), nil)
			if a.status != tc.wantStatus || a.errCode() != tc.wantCode {
				t.Fatalf("got %d %s, want %d %s", a.status, a.raw, tc.wantStatus, tc.wantCode)
			}
		})
	}
	if n := len(s.sink.sent()); n != 0 {
		t.Errorf("sink got %d messages", n)
	}
}

func TestTenantPolicy(t *testing.T) {
	tenant := &gateway.Tenant{
		ID:               "t2",
		Identities:       []string{"s@example.com"},
		RecipientDomains: []string{"allowed.example"},
		SourceNets:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Limits:           gateway.Limits{MaxMessageBytes: 600},
	}
	blocked := *tenant
	blocked.SourceNets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	raw := func(size int) string {
		h := "From: s@example.com\r\nTo: r@allowed.example\r\nSubject: x\r\n\r\n"
		return h + strings.Repeat("y", size-len(h))
	}
	tests := []struct {
		name       string
		tenant     *gateway.Tenant
		body       string
		xff        string
		wantStatus int
		wantCode   string
	}{
		{"allowed", tenant, raw(500), "", 200, ""},
		{"recipient domain not allowed", tenant, strings.Replace(raw(500), "allowed.example", "other.example", 1), "", 403, "recipient_not_allowed"},
		{"over the tenant size limit", tenant, raw(601), "", 413, "message_too_large"},
		{"source not allowed despite X-Forwarded-For", &blocked, raw(500), "10.1.2.3", 403, "source_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, serverConfig{tenant: tc.tenant})
			a := do(t, http.MethodPost, s.url+"/v1/messages", testToken, "message/rfc822", []byte(tc.body),
				map[string]string{"X-Forwarded-For": tc.xff})
			if a.status != tc.wantStatus || a.errCode() != tc.wantCode {
				t.Fatalf("got %d %s, want %d %q", a.status, a.raw, tc.wantStatus, tc.wantCode)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	s := newTestServer(t, serverConfig{maxBody: 1000})
	jsonLimit := 1000 + 1000/4 + 64<<10
	bigJSON := fmt.Sprintf(`{"from":"s@example.com","to":["r@x.example"],"subject":"","text":%q}`, strings.Repeat("a", jsonLimit))
	rawHead := "From: s@example.com\r\nTo: r@x.example\r\n\r\n"
	tests := []struct {
		name        string
		contentType string
		body        string
		chunked     bool
	}{
		{"raw with length", "message/rfc822", rawHead + strings.Repeat("b", 1000), false},
		{"raw chunked", "message/rfc822", rawHead + strings.Repeat("b", 1000), true},
		{"json with length", "application/json", bigJSON, false},
		{"json chunked", "application/json", bigJSON, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: chunked encoding
			}
			req, err := http.NewRequest(http.MethodPost, s.url+"/v1/messages", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), `"message_too_large"`) {
				t.Fatalf("got %d %s, want 413 message_too_large", resp.StatusCode, raw)
			}
		})
	}
}

// wantStatus is the HTTP status table of the brief, kept apart from
// statusFor so the test can fail.
var wantStatus = map[gateway.Code]int{
	gateway.CodeInternal: 500, gateway.CodeMalformed: 400, gateway.CodeAuthRequired: 401,
	gateway.CodeBadCredentials: 401, gateway.CodeAuthThrottled: 429, gateway.CodeTLSRequired: 403,
	gateway.CodeSourceNotAllowed: 403, gateway.CodeSenderNotAllowed: 403, gateway.CodeRecipientNotAllowed: 403,
	gateway.CodeInvalidAddress: 422, gateway.CodeTooManyRecipients: 422, gateway.CodeNoRecipients: 400,
	gateway.CodeTooLarge: 413, gateway.CodeBadContent: 422, gateway.CodeBadParameter: 400, gateway.CodeTemplateNotFound: 422, gateway.CodeRateLimited: 429,
	gateway.CodeFrozen: 503, gateway.CodeUpstreamThrottled: 429, gateway.CodeUpstreamQuota: 429,
	gateway.CodeUpstreamPaused: 503, gateway.CodeUpstreamRejected: 422, gateway.CodeUpstreamNotAuthorized: 403,
	gateway.CodeUpstreamSenderUnverified: 422, gateway.CodeUpstreamBadRequest: 422,
	gateway.CodeUpstreamMisconfigured: 503, gateway.CodeUpstreamUnavailable: 502, gateway.CodeShuttingDown: 503,
	gateway.CodeBreakerOpen: 429, gateway.CodeQuotaExceeded: 429, gateway.CodeFirstContactLimited: 429,
	gateway.CodeSuppressed: 422, gateway.CodeSuppressedBounce: 422, gateway.CodeStoreUnavailable: 503,
	gateway.CodeIdempotencyInFlight: 409, gateway.CodeIdempotencyKeyReused: 422,
}

func TestSinkErrors(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	raw := []byte("From: s@example.com\r\nTo: r@x.example\r\n\r\nbody\r\n")
	type row struct {
		name      string
		err       *gateway.Error
		wantRetry string // "" means no Retry-After header
	}
	var tests []row
	for _, c := range gateway.Codes() {
		status, ok := wantStatus[c]
		if !ok {
			t.Fatalf("code %v has no expected status in this test", c)
		}
		retry := ""
		switch status {
		case 429, 409:
			retry = "1"
		case 503:
			retry = "30"
		}
		tests = append(tests, row{c.String(), &gateway.Error{Code: c, Msg: "boom " + c.String()}, retry})
	}
	tests = append(tests,
		row{"retry after rounded up", &gateway.Error{Code: gateway.CodeRateLimited, Msg: "slow down", RetryAfter: 2500 * time.Millisecond}, "3"},
		row{"retry after whole seconds", &gateway.Error{Code: gateway.CodeFrozen, Msg: "frozen", RetryAfter: 90 * time.Second}, "90"},
		row{"retry after below a second", &gateway.Error{Code: gateway.CodeUpstreamThrottled, Msg: "x", RetryAfter: time.Millisecond}, "1"},
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.sink.setFail(tc.err)
			a := do(t, http.MethodPost, s.url+"/v1/messages", testToken, "message/rfc822", raw, nil)
			if a.status != wantStatus[tc.err.Code] || a.errCode() != tc.err.Code.String() || a.errField("message") != tc.err.Msg {
				t.Fatalf("got %d %s, want %d %s", a.status, a.raw, wantStatus[tc.err.Code], tc.err.Code)
			}
			if got := a.header.Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
			if a.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if len(wantStatus) != len(gateway.Codes()) {
		t.Errorf("test table has %d codes, gateway has %d", len(wantStatus), len(gateway.Codes()))
	}
}

func TestStatusForUnknownCode(t *testing.T) {
	if got := statusFor(gateway.Code(-1)); got != 500 {
		t.Errorf("unknown code maps to %d, want 500", got)
	}
}

func TestSubmitTimeout(t *testing.T) {
	s := newTestServer(t, serverConfig{submitTimeout: 200 * time.Millisecond})
	s.sink.mu.Lock()
	s.sink.block = true
	s.sink.mu.Unlock()
	start := time.Now()
	a := do(t, http.MethodPost, s.url+"/v1/messages", testToken, "message/rfc822",
		[]byte("From: s@example.com\r\nTo: r@x.example\r\n\r\nbody\r\n"), nil)
	if a.status != http.StatusBadGateway || a.errCode() != "ses_unavailable" {
		t.Fatalf("got %d %s, want 502 ses_unavailable", a.status, a.raw)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v; the submit timeout is 200ms", took)
	}
}

func TestRoutes(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		hdr         map[string]string
		wantStatus  int
		wantCode    string
		wantAllow   string
	}{
		{"healthz", "GET", "/healthz", "", nil, 200, "", ""},
		{"readyz", "GET", "/readyz", "", nil, 200, "", ""},
		{"unknown path", "GET", "/v2/nothing", "", nil, 404, "not_found", ""},
		{"GET messages", "GET", "/v1/messages", "", nil, 405, "method_not_allowed", "POST"},
		{"POST healthz", "POST", "/healthz", "", nil, 405, "method_not_allowed", "GET, HEAD"},
		{"text/plain", "POST", "/v1/messages", "text/plain", nil, 415, "unsupported_media_type", ""},
		{"no content type", "POST", "/v1/messages", "", nil, 415, "unsupported_media_type", ""},
		{"latin1 JSON", "POST", "/v1/messages", "application/json; charset=iso-8859-1", nil, 415, "unsupported_media_type", ""},
		{"gzip", "POST", "/v1/messages", "application/json", map[string]string{"Content-Encoding": "gzip"}, 415, "unsupported_media_type", ""},
		{"bad idempotency key", "POST", "/v1/messages", "application/json", map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "malformed", ""},
		{"empty idempotency key", "POST", "/v1/messages", "application/json", map[string]string{"Idempotency-Key": ""}, 400, "malformed", ""},
		{"non-ASCII idempotency key", "POST", "/v1/messages", "application/json", map[string]string{"Idempotency-Key": "k\u00e9"}, 400, "malformed", ""},
		{"query with JSON", "POST", "/v1/messages?to=r@x.example", "application/json", nil, 400, "malformed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(`{"from":"s@example.com","to":["r@x.example"],"subject":"","text":""}`)
			a := do(t, tc.method, s.url+tc.path, testToken, tc.contentType, body, tc.hdr)
			if a.status != tc.wantStatus || a.errCode() != tc.wantCode {
				t.Fatalf("got %d %s, want %d %q", a.status, a.raw, tc.wantStatus, tc.wantCode)
			}
			if got := a.header.Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
		})
	}
}

// TestIdempotencyKeyNeedsStore: without an idempotency store a keyed
// request is refused, not sent without the check (the stores' behaviour is
// proven in internal/integration).
func TestIdempotencyKeyNeedsStore(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	body := []byte(`{"from":"s@example.com","to":["r@x.example"],"subject":"","text":"x"}`)
	a := do(t, http.MethodPost, s.url+"/v1/messages", testToken, "application/json; charset=UTF-8", body,
		map[string]string{"Idempotency-Key": "order-42"})
	if a.status != http.StatusBadRequest || a.errField("message") != "Idempotency-Key is not supported: this gateway has no idempotency store" {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	if n := len(s.sink.sent()); n != 0 {
		t.Errorf("sink got %d messages, want 0", n)
	}
}

func TestReadyzFlips(t *testing.T) {
	s := newTestServer(t, serverConfig{})
	check := func(path string, want int) {
		t.Helper()
		if a := do(t, http.MethodGet, s.url+path, "", "", nil, nil); a.status != want {
			t.Fatalf("%s: %d %s, want %d", path, a.status, a.raw, want)
		}
	}
	check("/readyz", 200)
	s.setReady(false)
	check("/readyz", 503)
	check("/healthz", 200)
	s.setReady(true)
	check("/readyz", 200)
}

func TestNewServerLimits(t *testing.T) {
	srv := NewServer(ServerOptions{Addr: "127.0.0.1:0"})
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.ReadTimeout != DefaultReadTimeout ||
		srv.WriteTimeout != DefaultWriteTimeout || srv.IdleTimeout != DefaultIdleTimeout ||
		srv.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("defaults not applied: %+v", srv)
	}
	if srv.WriteTimeout <= srv.ReadTimeout+DefaultSubmitTimeout {
		t.Errorf("WriteTimeout %v must exceed ReadTimeout + SubmitTimeout", srv.WriteTimeout)
	}
	srv = NewServer(ServerOptions{ReadTimeout: time.Second, MaxHeaderBytes: 100})
	if srv.ReadTimeout != time.Second || srv.MaxHeaderBytes != 100 {
		t.Errorf("options not used: %+v", srv)
	}
}

func TestParseMailboxForms(t *testing.T) {
	tests := []struct {
		name, in, wantName, wantAddr string
	}{
		{"bare", "a@X.Example", "", "a@x.example"},
		{"angle", "<a@x.example>", "", "a@x.example"},
		{"named", "Ann Lee <a@x.example>", "Ann Lee", "a@x.example"},
		{"quoted", `"Lee, Ann" <a@x.example>`, "Lee, Ann", "a@x.example"},
		{"encoded", "=?utf-8?q?J=C3=BCrgen?= <a@x.example>", "Jürgen", "a@x.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseMailbox("to[0]", tc.in)
			if err != nil || a.Name != tc.wantName || a.Address != tc.wantAddr {
				t.Errorf("got %+v, %v; want %q <%s>", a, err, tc.wantName, tc.wantAddr)
			}
		})
	}
}
