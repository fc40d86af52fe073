package config

import (
	"strings"
	"testing"
	"time"
)

func TestFeedbackKeys(t *testing.T) {
	const tenant = `
tenants:
  - id: acme
    identities: ["@acme.example"]
`
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the problems; none: valid
	}{
		{name: "valid", doc: `
events:
  sns: {topic_arns: ["arn:aws:sns:us-east-1:123456789012:ses-events"], regions: [us-east-1]}
  suppression_scope: tenant
  suppression_ttl: 720h
alerts: {webhook_url: "https://hooks.example/x"}
account_guard: {enabled: true, bounce_rate: 0.02}
tenants:
  - id: acme
    identities: ["@acme.example"]
    breaker: {min_sent: 50, bounce_rate: 0.1, open_for: 2m, probe_hold: 0s}
`},
		{name: "bad values", doc: `
events:
  sns: {path: "relative", topic_arns: ["not-an-arn"], regions: [mars]}
  suppression_scope: world
  suppression_ttl: -1h
alerts: {webhook_url: "ftp://x"}
account_guard: {enabled: true, window: 30s}
tenants:
  - id: acme
    identities: ["@acme.example"]
    breaker: {bounce_rate: 2, open_for: 0s}
`, want: []string{
			"events.sns.path (line 3): must be an absolute path",
			`events.sns.topic_arns[0] (line 3): "not-an-arn" is not an SNS topic ARN`,
			`events.sns.regions[0] (line 3): "mars" is not an AWS region`,
			"events.suppression_scope (line 4): must be global or tenant",
			"events.suppression_ttl (line 5): must be >= 0",
			"alerts.webhook_url (line 6): must be an http(s) URL",
			"account_guard.window (line 7): 30s must be whole minutes within [1m, 24h]",
			"tenants[0].breaker.bounce_rate (line 11): 2 outside [0, 1]",
			"tenants[0].breaker.open_for (line 11): 0s must be > 0 and at most max_open_for 4h",
		}},
		{name: "unknown key", doc: tenant + "events: {sns: {topics: []}}\n", want: []string{"events.sns.topics (line 5): unknown key (want one of: path, topic_arns, regions)"}},
		{name: "sqs without topics", doc: tenant + "events: {sqs: {queue_url: \"https://sqs.us-east-1.amazonaws.com/123456789012/q\"}}\n", want: []string{"events.sqs.queue_url (line 5): needs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.doc))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				c := p.Tenants[0].BreakerConfig()
				if c.MinSent != 50 || c.TripBounceRate != 0.1 || c.OpenFor != 2*time.Minute || c.ProbeHold != 0 || c.Window != time.Hour {
					t.Fatalf("tenant breaker %+v", c)
				}
				if a := p.AccountConfig(); a == nil || a.TripBounceRate != 0.02 || a.TripComplaintRate != 0.0008 {
					t.Fatalf("account %+v", a)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if ce, ok := err.(*Error); !ok || len(ce.Problems) != len(tc.want) {
				t.Errorf("want %d problems, each once:\n%v", len(tc.want), err)
			}
		})
	}
}
