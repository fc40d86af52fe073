package deploy

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

var promParser = parser.NewParser(parser.Options{})

// parseRules parses a rule file as Prometheus does (unknown fields are
// errors, every expression and template is checked).
func parseRules(t *testing.T, path string) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", path, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return groups
}

// alertCase is a set of series (promqltest load syntax, one sample a
// minute from 0) and whether the alert fires when evaluated every minute
// up to at, its `for` honoured.
type alertCase struct {
	series string
	at     time.Duration
	fires  bool
	labels map[string]string // on the firing alert
}

// alertCases: for every alert of rules.yaml, a bad series it fires on and
// a good (or not-bad-for-long-enough) one it stays silent on.
var alertCases = map[string][]alertCase{
	"SesgateDown": {
		{series: `up{job="sesgate",instance="a"} 0x20`, at: 10 * time.Minute, fires: true},
		{series: `up{job="sesgate",instance="a"} 1x20
			up{job="sesgate",instance="b"} 0x20`, at: 10 * time.Minute},
	},
	"SesgateReplicaDown": {
		{series: `up{job="sesgate",instance="a"} 1x20
			up{job="sesgate",instance="b"} 0x20`, at: 10 * time.Minute, fires: true, labels: map[string]string{"instance": "b"}},
		{series: `up{job="sesgate",instance="a"} 1 1 1 0 0 0 1 1 1 1 1`, at: 10 * time.Minute}, // a 3-minute blip
		{series: `up{job="other",instance="a"} 0x20`, at: 10 * time.Minute},
	},
	"SesgateNotReady": {
		{series: `kube_pod_container_status_ready{namespace="mail",pod="p1",container="sesgate"} 0x20`, at: 10 * time.Minute, fires: true,
			labels: map[string]string{"pod": "p1"}},
		{series: `kube_pod_container_status_ready{namespace="mail",pod="p1",container="sesgate"} 1x20
			kube_pod_container_status_ready{namespace="mail",pod="p1",container="app"} 0x20`, at: 10 * time.Minute},
	},
	"SesgateBreakerOpen": {
		{series: `sesgate_breaker_state{tenant="billing",instance="a"} 0 0 2x10
			sesgate_breaker_state{tenant="billing",instance="b"} 0x12`, at: 6 * time.Minute, fires: true, labels: map[string]string{"tenant": "billing"}},
		{series: `sesgate_breaker_state{tenant="billing"} 1x20
			sesgate_breaker_state{tenant="_account"} 2x20`, at: 10 * time.Minute},
	},
	"SesgateAccountGuardWarning": {
		{series: `sesgate_breaker_bounce_rate{tenant="_account"} 0.025x20`, at: 10 * time.Minute, fires: true},
		{series: `sesgate_breaker_complaint_rate{tenant="_account"} 0.0006x20`, at: 10 * time.Minute, fires: true},
		{series: `sesgate_breaker_bounce_rate{tenant="_account"} 0.01x20
			sesgate_breaker_complaint_rate{tenant="_account"} 0.0001x20
			sesgate_breaker_bounce_rate{tenant="billing"} 0.2x20`, at: 10 * time.Minute},
	},
	"SesgateAccountGuardTripped": {
		{series: `sesgate_breaker_state{tenant="_account"} 0 0 3x5`, at: 4 * time.Minute, fires: true},
		{series: `sesgate_breaker_state{tenant="_account"} 1x5
			sesgate_breaker_state{tenant="billing"} 3x5`, at: 4 * time.Minute},
	},
	"SesgateAccountBounceRateNearSESReview": {
		{series: `sesgate_breaker_bounce_rate{tenant="_account"} 0.045x5`, at: 3 * time.Minute, fires: true},
		{series: `sesgate_breaker_bounce_rate{tenant="_account"} 0.035x5
			sesgate_breaker_bounce_rate{tenant="billing"} 0.5x5`, at: 3 * time.Minute},
	},
	"SesgateAccountComplaintRateNearSESReview": {
		{series: `sesgate_breaker_complaint_rate{tenant="_account"} 0.0009x5`, at: 3 * time.Minute, fires: true},
		{series: `sesgate_breaker_complaint_rate{tenant="_account"} 0.0007x5`, at: 3 * time.Minute},
	},
	"SesgateSESSendingPaused": {
		{series: `sesgate_ses_errors_total{type="ses_sending_paused"} 0 0 0 1 1 1 1 1`, at: 5 * time.Minute, fires: true},
		{series: `sesgate_ses_errors_total{type="ses_sending_paused"} 0x10
			sesgate_ses_errors_total{type="ses_throttled"} 0+5x10`, at: 8 * time.Minute},
	},
	"SesgateSESThrottled": {
		{series: `sesgate_ses_errors_total{type="ses_throttled"} 0+60x30`, at: 25 * time.Minute, fires: true},
		{series: `sesgate_ses_errors_total{type="ses_quota_exceeded"} 0+60x30`, at: 25 * time.Minute, fires: true},
		{series: `sesgate_ses_errors_total{type="ses_throttled"} 0+1x30`, at: 25 * time.Minute},
		{series: `sesgate_ses_errors_total{type="ses_throttled"} 0+60x8 480x22`, at: 25 * time.Minute}, // stopped after 8 minutes
	},
	"SesgateSESErrors": {
		{series: `sesgate_ses_errors_total{type="ses_unavailable"} 0+30x20
			sesgate_ses_send_seconds_count 0+60x20`, at: 15 * time.Minute, fires: true},
		{series: `sesgate_ses_errors_total{type="ses_message_rejected"} 0+30x20
			sesgate_ses_errors_total{type="ses_unavailable"} 0+1x20
			sesgate_ses_send_seconds_count 0+60x20`, at: 15 * time.Minute},
	},
	"SesgateStoreDegraded": {
		{series: `sesgate_admission_degraded_total{outcome="admitted"} 0 0 5 10`, at: 3 * time.Minute, fires: true},
		{series: `sesgate_admission_degraded_total{outcome="admitted"} 0x10`, at: 8 * time.Minute},
	},
	"SesgateStoreErrors": {
		{series: `sesgate_redis_errors_total{op="evalsha",kind="timeout"} 0+60x20`, at: 15 * time.Minute, fires: true},
		{series: `sesgate_redis_errors_total{op="evalsha",kind="timeout"} 0+6x20`, at: 15 * time.Minute},
	},
	"SesgateWebhookBacklogGrowing": {
		{series: `sesgate_webhook_backlog{tenant="shop"} 0+10x60
			sesgate_webhook_oldest_age_seconds{tenant="shop"} 0+60x60`, at: 50 * time.Minute, fires: true, labels: map[string]string{"tenant": "shop"}},
		{series: `sesgate_webhook_backlog{tenant="shop"} 100x60
			sesgate_webhook_oldest_age_seconds{tenant="shop"} 0+60x60`, at: 50 * time.Minute}, // old but draining as fast as it fills
		{series: `sesgate_webhook_backlog{tenant="shop"} 0+10x60
			sesgate_webhook_oldest_age_seconds{tenant="shop"} 30x60`, at: 50 * time.Minute}, // growing, but delivered within seconds
	},
	"SesgateWebhookDeadLetters": {
		{series: `sesgate_webhook_deliveries_total{tenant="shop",outcome="dead"} 0 0 0 1 1 1`, at: 5 * time.Minute, fires: true, labels: map[string]string{"tenant": "shop"}},
		{series: `sesgate_webhook_deliveries_total{tenant="shop",outcome="dead"} 0x10
			sesgate_webhook_deliveries_total{tenant="shop",outcome="failed"} 0+3x10`, at: 8 * time.Minute},
	},
}

// TestRulesParse parses deploy/monitoring/rules.yaml with Prometheus's own
// rule parser and checks what every alert must carry.
func TestRulesParse(t *testing.T) {
	groups := parseRules(t, "monitoring/rules.yaml")
	names := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is not an alert", g.Name)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s twice", r.Alert)
			}
			names[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
		}
	}
	for _, want := range []string{"SesgateBreakerOpen", "SesgateAccountGuardWarning", "SesgateAccountGuardTripped",
		"SesgateAccountBounceRateNearSESReview", "SesgateAccountComplaintRateNearSESReview", "SesgateSESSendingPaused",
		"SesgateSESThrottled", "SesgateSESErrors", "SesgateStoreDegraded", "SesgateWebhookBacklogGrowing", "SesgateDown", "SesgateNotReady"} {
		if !names[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestAlertsFire evaluates every alert of rules.yaml, as Prometheus's rule
// manager does (every minute, `for` honoured), over its bad series (it must
// fire, with the expected labels) and its good ones (it must stay silent).
func TestAlertsFire(t *testing.T) {
	groups := parseRules(t, "monitoring/rules.yaml")
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			cases := alertCases[r.Alert]
			seen[r.Alert] = true
			if !slices.ContainsFunc(cases, func(c alertCase) bool { return c.fires }) || !slices.ContainsFunc(cases, func(c alertCase) bool { return !c.fires }) {
				t.Errorf("%s: want at least one firing and one silent case", r.Alert)
				continue
			}
			for i, c := range cases {
				t.Run(r.Alert, func(t *testing.T) {
					expr, err := promParser.ParseExpr(r.Expr)
					if err != nil {
						t.Fatal(err)
					}
					st := promqltest.LoadedStorage(t, "load 1m\n"+c.series)
					rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), 0, labels.FromMap(r.Labels),
						labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
					query := rules.EngineQueryFunc(engine, st)
					start := time.Unix(0, 0).UTC()
					for ts := time.Duration(0); ts <= c.at; ts += time.Minute {
						if _, err := rule.Eval(context.Background(), 0, start.Add(ts), query, nil, 0); err != nil {
							t.Fatalf("case %d at %v: %v", i, ts, err)
						}
					}
					var firing []*rules.Alert
					for _, a := range rule.ActiveAlerts() {
						if a.State == rules.StateFiring {
							firing = append(firing, a)
						}
					}
					if c.fires != (len(firing) > 0) {
						t.Fatalf("case %d: firing %d alerts at %v, want firing=%v\nseries:\n%s", i, len(firing), c.at, c.fires, c.series)
					}
					for _, a := range firing {
						for k, v := range c.labels {
							if got := a.Labels.Get(k); got != v {
								t.Errorf("case %d: label %s=%q, want %q", i, k, got, v)
							}
						}
						if a.Labels.Get("severity") != r.Labels["severity"] || a.Annotations.Get("summary") == "" ||
							strings.Contains(a.Annotations.Get("summary"), "<no value>") || strings.Contains(a.Annotations.Get("summary"), "error expanding") {
							t.Errorf("case %d: labels %v, summary %q", i, a.Labels, a.Annotations.Get("summary"))
						}
					}
				})
			}
		}
	}
	for name := range alertCases {
		if !seen[name] {
			t.Errorf("cases for %s, an alert rules.yaml does not have", name)
		}
	}
}
