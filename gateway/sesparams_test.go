package gateway

import (
	"strings"
	"testing"
)

func TestCheckSESParams(t *testing.T) {
	tn := &Tenant{ID: "app", SES: SESOptions{ConfigurationSet: "default-set"}}
	listed := &Tenant{ID: "app", SES: SESOptions{ConfigurationSet: "default-set", ConfigurationSets: []string{"marketing", "default-set"}}}
	long := strings.Repeat("a", MaxTagLength+1)
	many := make([]MessageTag, MaxMessageTags+1)
	for i := range many {
		many[i] = MessageTag{Name: "t" + strings.Repeat("x", i), Value: "v"}
	}
	for _, tc := range []struct {
		name string
		t    *Tenant
		p    SESParams
		want string // "" accepts; else a fragment of the refusal
	}{
		{"zero", tn, SESParams{}, ""},
		{"default set named", tn, SESParams{ConfigurationSet: "default-set"}, ""},
		{"other set", tn, SESParams{ConfigurationSet: "marketing"}, `configuration set "marketing"`},
		{"listed set", listed, SESParams{ConfigurationSet: "marketing"}, ""},
		{"unlisted set", listed, SESParams{ConfigurationSet: "ops"}, `configuration set "ops"`},
		{"tags", tn, SESParams{Tags: []MessageTag{{"campaign", "spring-2026"}, {"kind", "receipt_1"}}}, ""},
		{"bad name", tn, SESParams{Tags: []MessageTag{{"cam paign", "x"}}}, "message tag name"},
		{"empty value", tn, SESParams{Tags: []MessageTag{{"campaign", ""}}}, `message tag "campaign" value`},
		{"bad value", tn, SESParams{Tags: []MessageTag{{"campaign", "a=b"}}}, `message tag "campaign" value`},
		{"long name", tn, SESParams{Tags: []MessageTag{{long, "x"}}}, "message tag name"},
		{"reserved", tn, SESParams{Tags: []MessageTag{{"SESGATE-tenant", "other"}}}, "reserved"},
		{"twice", tn, SESParams{Tags: []MessageTag{{"a", "1"}, {"a", "2"}}}, `"a" set twice`},
		{"too many", tn, SESParams{Tags: many}, "more than 48"},
		{"list", tn, SESParams{ListManagement: &ListManagement{ContactListName: "news", TopicName: "weekly"}}, ""},
		{"list without name", tn, SESParams{ListManagement: &ListManagement{TopicName: "weekly"}}, "contact list name"},
		{"bad topic", tn, SESParams{ListManagement: &ListManagement{ContactListName: "news", TopicName: "a b"}}, "topic name"},
	} {
		err := tc.t.CheckSESParams(&tc.p)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			continue
		}
		if err == nil || AsError(err).Code != CodeBadParameter || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want bad_parameter containing %q", tc.name, err, tc.want)
		}
	}
}
