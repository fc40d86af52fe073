package gateway

import (
	"context"
	"strings"
	"testing"
)

func strp(s string) *string { return &s }

// TestTemplateSubmit: template content goes through Submit without data,
// the From identity check on the envelope sender and the template's From
// mailbox, and every refusal of Template.Check with its code.
func TestTemplateSubmit(t *testing.T) {
	ten := &Tenant{ID: "t", Identities: []string{"@example.com"}, Limits: Limits{MaxMessageBytes: 1000}}
	named := func() *Template {
		return &Template{Name: "welcome", Data: `{"name":"x"}`, To: []string{"x@example.org"}, From: "App <a@example.com>"}
	}
	tests := []struct {
		name   string
		from   string
		tpl    func(*Template)
		code   Code
		ok     bool
		noData bool
	}{
		{name: "stored template", from: "a@example.com", tpl: func(*Template) {}, ok: true},
		{name: "inline", from: "a@example.com", tpl: func(tp *Template) { tp.Name, tp.Subject, tp.HTML = "", strp("s {{name}}"), strp("<p>x</p>") }, ok: true},
		{name: "foreign sender", from: "a@evil.com", tpl: func(tp *Template) { tp.From = "" }, code: CodeSenderNotAllowed},
		{name: "From mailbox differs", from: "a@example.com", tpl: func(tp *Template) { tp.From = "ceo@evil.com" }, code: CodeSenderNotAllowed},
		{name: "neither", from: "a@example.com", tpl: func(tp *Template) { tp.Name = "" }, code: CodeMalformed},
		{name: "both", from: "a@example.com", tpl: func(tp *Template) { tp.Subject = strp("s") }, code: CodeMalformed},
		{name: "inline without subject", from: "a@example.com", tpl: func(tp *Template) { tp.Name, tp.Text = "", strp("x") }, code: CodeMalformed},
		{name: "bad name", from: "a@example.com", tpl: func(tp *Template) { tp.Name = "a b" }, code: CodeBadParameter},
		{name: "data not an object", from: "a@example.com", tpl: func(tp *Template) { tp.Data = "[1]" }, code: CodeMalformed},
		{name: "From header", from: "a@example.com", tpl: func(tp *Template) { tp.Headers = []TemplateHeader{{"From", "ceo@evil.com"}} }, code: CodeBadParameter},
		{name: "Resent header", from: "a@example.com", tpl: func(tp *Template) { tp.Headers = []TemplateHeader{{"Resent-Sender", "ceo@evil.com"}} }, code: CodeBadParameter},
		{name: "X-SES header", from: "a@example.com", tpl: func(tp *Template) { tp.Headers = []TemplateHeader{{"X-SES-CONFIGURATION-SET", "x"}} }, code: CodeBadParameter},
		{name: "header injection", from: "a@example.com", tpl: func(tp *Template) { tp.Headers = []TemplateHeader{{"X-A", "b\r\nFrom: ceo@evil.com"}} }, code: CodeMalformed},
		{name: "too large", from: "a@example.com", tpl: func(tp *Template) { tp.Data = `{"a":"` + strings.Repeat("x", 1000) + `"}` }, code: CodeTooLarge},
		{name: "data with the template", from: "a@example.com", tpl: func(*Template) {}, noData: true, code: CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			p := NewPipeline(Options{Auth: nil, Sink: sink})
			tpl := named()
			tc.tpl(tpl)
			env := &Envelope{Tenant: ten, From: tc.from, Recipients: []string{"x@example.org"}, Template: tpl}
			if tc.noData {
				env.Data = []byte("From: a@example.com\r\n\r\nx\r\n")
			}
			res, err := p.Submit(context.Background(), env)
			if tc.ok {
				if err != nil || res.ProviderID == "" || len(sink.got) != 1 || sink.got[0].Template != tpl {
					t.Fatalf("got %v, %v", res, err)
				}
				return
			}
			if AsError(err).Code != tc.code || len(sink.got) != 0 {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}
