package drill

import (
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter/breaker"
)

// TestPolicy checks that the generated policy is one the gateway accepts,
// with every tenant's token, limits, configuration set and breaker.
func TestPolicy(t *testing.T) {
	s, err := Parse([]byte(`
tenants:
  - id: a
    limits: {rate: 10, burst: 5, per_hour: 1000, per_day: 5000, first_contact_per_hour: 50}
    breaker: {min_sent: 40, fast_window: 2m}
  - id: b
    configuration_set: custom-set
attacker: {tenant: a}
`))
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]auth.Record{}
	for _, ten := range s.Tenants {
		tokens[ten.ID] = auth.NewToken(ten.ID).Record
	}
	tests := []struct {
		name      string
		topic     string
		wantTopic []string
	}{
		{"with events", "arn:aws:sns:us-east-1:123456789012:sestest-events", []string{"arn:aws:sns:us-east-1:123456789012:sestest-events"}},
		{"without events", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Policy(s, PolicyOptions{Tokens: tokens, TopicArn: tt.topic, Region: "us-east-1"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := config.Parse([]byte(doc))
			if err != nil {
				t.Fatalf("the gateway refuses the policy: %v\n%s", err, doc)
			}
			if strings.Join(p.Events.SNS.TopicARNs, ",") != strings.Join(tt.wantTopic, ",") || p.SES.MaxSendRate != 1000 {
				t.Errorf("events %+v, ses %+v", p.Events, p.SES)
			}
			if len(p.Tenants) != 2 {
				t.Fatalf("%d tenants", len(p.Tenants))
			}
			a, b := p.Tenants[0], p.Tenants[1]
			if a.ID != "a" || len(a.Tokens) != 1 || a.Tokens[0].KeyID != tokens["a"].KeyID || a.Tokens[0].SHA256 != tokens["a"].Hash.String() {
				t.Errorf("tenant a tokens %+v", a.Tokens)
			}
			if l := a.Limits; l.Rate != 10 || l.Burst != 5 || l.PerHour != 1000 || l.PerDay != 5000 || l.FirstContactPerHour != 50 || l.FirstContactPerDay != 0 {
				t.Errorf("tenant a limits %+v", l)
			}
			want := breaker.TenantDefaults()
			want.MinSent, want.FastWindow = 40, 2*time.Minute
			if got := a.BreakerConfig(); got != want {
				t.Errorf("tenant a breaker %+v, want %+v", got, want)
			}
			if a.SES.ConfigurationSet != "drill-a" || b.SES.ConfigurationSet != "custom-set" || b.BreakerConfig() != breaker.TenantDefaults() {
				t.Errorf("tenant b %+v", b)
			}
		})
	}
	if _, err := Policy(s, PolicyOptions{Tokens: map[string]auth.Record{"a": tokens["a"]}}); err == nil || !strings.Contains(err.Error(), "no token for tenant b") {
		t.Errorf("missing token: err = %v", err)
	}
}
