package drill

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sesgate/sesgate/auth"
)

// PolicyOptions are the parts of the gateway's policy file that are not in
// the scenario.
type PolicyOptions struct {
	// Tokens are the stored forms of each tenant's token, by tenant id.
	Tokens map[string]auth.Record
	// TopicArn and Region of the SNS notifications the gateway accepts;
	// without a TopicArn the policy has no events section.
	TopicArn, Region string
}

// Policy renders the gateway's policy file for s: every tenant with its
// token, limits and configuration set, the account's send rate and the SNS
// events section.
func Policy(s *Scenario, o PolicyOptions) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by sesgate-bench drill: %s\n", oneLine(s.Name))
	fmt.Fprintf(&b, "ses:\n  max_send_rate: %g\n", s.SESMaxSendRate)
	if o.TopicArn != "" {
		fmt.Fprintf(&b, "events:\n  sns:\n    topic_arns: [%q]\n    regions: [%q]\n", o.TopicArn, o.Region)
	}
	b.WriteString("tenants:\n")
	for _, t := range s.Tenants {
		rec, ok := o.Tokens[t.ID]
		if !ok {
			return "", fmt.Errorf("drill: no token for tenant %s", t.ID)
		}
		fmt.Fprintf(&b, "  - id: %s\n    tokens:\n      - %s\n    identities: [\"*\"]\n", t.ID, rec.PolicyLine())
		fmt.Fprintf(&b, "    ses:\n      configuration_set: %s\n", t.ConfigurationSet)
		if t.Limits.FirstContactWindow != nil && o.TopicArn != "" {
			b.WriteString("      delivery_events: true\n") // sestest publishes them
		}
		l := t.Limits
		var lim []string
		add := func(k string, v any, set bool) {
			if set {
				lim = append(lim, fmt.Sprintf("      %s: %v", k, v))
			}
		}
		add("rate", l.Rate, l.Rate > 0)
		add("burst", l.Burst, l.Burst > 0)
		add("per_hour", l.PerHour, l.PerHour > 0)
		add("per_day", l.PerDay, l.PerDay > 0)
		add("first_contact_per_hour", l.FirstContactPerHour, l.FirstContactPerHour > 0)
		add("first_contact_per_day", l.FirstContactPerDay, l.FirstContactPerDay > 0)
		if w := l.FirstContactWindow; w != nil {
			g := w.Resolved()
			add("first_contact_window", fmt.Sprintf("{initial: %d, min: %d, max: %d, threshold: %d, outstanding_timeout: %s}",
				g.Initial, g.Min, g.Max, g.Threshold, g.OutstandingTimeout), true)
		}
		if len(lim) > 0 {
			b.WriteString("    limits:\n" + strings.Join(lim, "\n") + "\n")
		}
		if t.Breaker != nil {
			y, err := yaml.Marshal(map[string]any{"breaker": t.Breaker})
			if err != nil {
				return "", err
			}
			for line := range strings.Lines(string(y)) {
				if !strings.HasSuffix(line, ": null\n") { // keys left out keep the default
					b.WriteString("    " + line)
				}
			}
		}
	}
	return b.String(), nil
}

func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
