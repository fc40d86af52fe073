package gateway

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// TestPrepareMessageSESHeaders: the three X-SES-* fields SES's SMTP
// interface reads are consumed into PreparedMessage.SES (any case, folded,
// spaces around names and values) and never forwarded; every other X-SES-*
// field, a repeated one and a malformed one are refused naming the field.
func TestPrepareMessageSESHeaders(t *testing.T) {
	const from = "From: a@example.com\r\n"
	for _, tc := range []struct {
		name, hdr string
		want      SESParams
		err       string // "" accepts; else the exact refusal text
	}{
		{name: "all three", hdr: "X-SES-CONFIGURATION-SET: marketing\r\nX-SES-MESSAGE-TAGS: campaign=spring-2026, kind=receipt_1\r\nX-SES-LIST-MANAGEMENT-OPTIONS: news; topic=weekly\r\n",
			want: SESParams{ConfigurationSet: "marketing", Tags: []MessageTag{{"campaign", "spring-2026"}, {"kind", "receipt_1"}}, ListManagement: &ListManagement{ContactListName: "news", TopicName: "weekly"}}},
		{name: "lower case, folded", hdr: "x-ses-message-tags: a=1,\r\n  b = 2\r\nx-ses-list-management-options:  news \r\n",
			want: SESParams{Tags: []MessageTag{{"a", "1"}, {"b", "2"}}, ListManagement: &ListManagement{ContactListName: "news"}}},
		{name: "source arn", hdr: "X-SES-SOURCE-ARN: arn:aws:ses:eu-west-1:123456789012:identity/example.com\r\n",
			err: "bad_parameter: X-SES-SOURCE-ARN header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
		{name: "from arn", hdr: "X-SES-FROM-ARN: arn:x\r\n", err: "bad_parameter: X-SES-FROM-ARN header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
		{name: "return-path arn", hdr: "x-ses-return-path-arn: arn:x\r\n", err: "bad_parameter: X-SES-RETURN-PATH-ARN header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
		{name: "unknown", hdr: "X-SES-TENANT: other\r\n", err: "bad_parameter: X-SES-TENANT header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
		{name: "set twice", hdr: "X-SES-CONFIGURATION-SET: a\r\nX-Ses-Configuration-Set: a\r\n", err: "bad_parameter: X-SES-CONFIGURATION-SET header given more than once"},
		{name: "empty", hdr: "X-SES-MESSAGE-TAGS:\r\n", err: "bad_parameter: X-SES-MESSAGE-TAGS header is empty"},
		{name: "bad set", hdr: "X-SES-CONFIGURATION-SET: two words\r\n", err: "bad_parameter: X-SES-CONFIGURATION-SET header: not a configuration set name (1 to 256 characters of A-Z, a-z, 0-9, '_' and '-')"},
		{name: "tag without value", hdr: "X-SES-MESSAGE-TAGS: a=1, b\r\n", err: `bad_parameter: X-SES-MESSAGE-TAGS header: want name1=value1, name2=value2, got "b"`},
		{name: "tag semicolon", hdr: "X-SES-MESSAGE-TAGS: a=1; b=2\r\n", err: ""},
		{name: "list two topics", hdr: "X-SES-LIST-MANAGEMENT-OPTIONS: news; topic=a; topic=b\r\n", err: `bad_parameter: X-SES-LIST-MANAGEMENT-OPTIONS header: want contactListName or contactListName; topic=topicName, got "news; topic=a; topic=b"`},
		{name: "list bad key", hdr: "X-SES-LIST-MANAGEMENT-OPTIONS: news; subject=a\r\n", err: `bad_parameter: X-SES-LIST-MANAGEMENT-OPTIONS header: want contactListName or contactListName; topic=topicName, got "news; subject=a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := PrepareMessage([]byte(from+tc.hdr+"Subject: s\r\n\r\nbody\r\n"), false)
			if tc.name == "tag semicolon" { // parses as one tag "a" = "1; b=2", which CheckSESParams refuses
				if err != nil {
					t.Fatal(err)
				}
				e := (&Tenant{}).CheckSESParams(&m.SES)
				if e == nil || e.Error() != `bad_parameter: message tag "a" value: 1 to 256 characters of A-Z, a-z, 0-9, '_' and '-'` {
					t.Fatalf("CheckSESParams = %v", e)
				}
				return
			}
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.SES, tc.want) {
				t.Fatalf("SES = %+v (%+v); want %+v", m.SES, m.SES.ListManagement, tc.want)
			}
			if strings.Contains(strings.ToLower(string(m.Data)), "x-ses-") {
				t.Fatalf("X-SES field forwarded: %q", m.Data)
			}
			if !strings.HasSuffix(string(m.Data), "Subject: s\r\n\r\nbody\r\n") {
				t.Fatalf("message = %q", m.Data)
			}
		})
	}
}

func TestMergeSESParams(t *testing.T) {
	lm := func(c, tp string) *ListManagement { return &ListManagement{ContactListName: c, TopicName: tp} }
	for _, tc := range []struct {
		name      string
		req, hdrs SESParams
		want      SESParams
		err       string
	}{
		{name: "request only", req: SESParams{ConfigurationSet: "a"}, want: SESParams{ConfigurationSet: "a"}},
		{name: "headers only", hdrs: SESParams{ConfigurationSet: "a", ListManagement: lm("l", "")}, want: SESParams{ConfigurationSet: "a", ListManagement: lm("l", "")}},
		{name: "same set", req: SESParams{ConfigurationSet: "a"}, hdrs: SESParams{ConfigurationSet: "a"}, want: SESParams{ConfigurationSet: "a"}},
		{name: "sets differ", req: SESParams{ConfigurationSet: "a"}, hdrs: SESParams{ConfigurationSet: "b"},
			err: `bad_parameter: configuration set: the X-SES-CONFIGURATION-SET header ("b") and the request's configuration_set ("a") differ`},
		{name: "lists differ", req: SESParams{ListManagement: lm("l", "x")}, hdrs: SESParams{ListManagement: lm("l", "y")},
			err: "bad_parameter: list management: the X-SES-LIST-MANAGEMENT-OPTIONS header and the request's list_management differ"},
		{name: "tags joined", req: SESParams{Tags: []MessageTag{{"a", "1"}}}, hdrs: SESParams{Tags: []MessageTag{{"a", "1"}, {"b", "2"}}},
			want: SESParams{Tags: []MessageTag{{"a", "1"}, {"b", "2"}}}},
		{name: "tag differs", req: SESParams{Tags: []MessageTag{{"a", "1"}}}, hdrs: SESParams{Tags: []MessageTag{{"a", "2"}}},
			err: `bad_parameter: message tag "a": the X-SES-MESSAGE-TAGS header ("2") and the request's tags ("1") differ`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeSESParams(tc.req, tc.hdrs)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestSubmitSESHeaders: Submit merges and checks the header parameters
// after PrepareMessage and before the limiter; the sink gets them.
func TestSubmitSESHeaders(t *testing.T) {
	ten := &Tenant{ID: "app", Identities: []string{"@example.com"}, SES: SESOptions{ConfigurationSet: "events", ConfigurationSets: []string{"events", "marketing"}}}
	msg := func(h string) []byte { return []byte("From: a@example.com\r\n" + h + "Subject: s\r\n\r\nx\r\n") }
	sink := &recordingSink{}
	lim := &countingLimiter{}
	p := NewPipeline(Options{Auth: nil, Sink: sink, Limiter: lim})
	res, err := p.Submit(context.Background(), &Envelope{Tenant: ten, From: "a@example.com", Recipients: []string{"b@example.org"},
		Data: msg("X-SES-CONFIGURATION-SET: marketing\r\nX-SES-MESSAGE-TAGS: c=d\r\n"), SES: SESParams{Tags: []MessageTag{{"k", "v"}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := sink.got[0].SES
	if res == nil || got.ConfigurationSet != "marketing" || !reflect.DeepEqual(got.Tags, []MessageTag{{"k", "v"}, {"c", "d"}}) {
		t.Fatalf("sink got %+v", got)
	}
	for _, tc := range []struct{ hdr, err string }{
		{"X-SES-CONFIGURATION-SET: ops\r\n", `bad_parameter: configuration set "ops" is not allowed for this tenant`},
		{"X-SES-MESSAGE-TAGS: sesgate-tenant=other\r\n", `bad_parameter: message tag name "sesgate-tenant" is reserved (names starting "sesgate-" are sesgate's)`},
		{"X-SES-SOURCE-ARN: arn:x\r\n", "bad_parameter: X-SES-SOURCE-ARN header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
	} {
		_, err := p.Submit(context.Background(), &Envelope{Tenant: ten, From: "a@example.com", Recipients: []string{"b@example.org"}, Data: msg(tc.hdr)})
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: err = %v\nwant %s", tc.hdr, err, tc.err)
		}
	}
	if lim.n != 1 || len(sink.got) != 1 {
		t.Fatalf("limiter called %d times, sink %d; want 1 and 1 (refusals before the limiter)", lim.n, len(sink.got))
	}
}

type countingLimiter struct{ n int }

func (l *countingLimiter) Admit(context.Context, *Tenant, []string) ([]*Error, error) {
	l.n++
	return nil, nil
}
