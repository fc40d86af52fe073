package config

import (
	"strings"
	"testing"
	"time"
)

const plansDoc = `
plans:
  basic:
    limits: {rate: 5, per_day: 1000, first_contact_per_day: 50}
    breaker: {bounce_rate: 0.04, open_for: 10m}
  pro:
    limits: {rate: 50, per_day: 100000}
tenants:
  - id: a
    identities: ["*"]
    plan: basic
  - id: b
    identities: ["*"]
    plan: basic
    limits: {per_day: 0, burst: 7}
    breaker: {open_for: 1m}
  - id: c
    identities: ["*"]
    limits: {rate: 1}
`

// A plan gives its tenants its limits and breaker settings; a key the
// tenant writes wins, 0 included.
func TestPlansResolve(t *testing.T) {
	p, err := Parse([]byte(plansDoc))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := p.Tenants[0], p.Tenants[1], p.Tenants[2]
	if a.Limits.Rate != 5 || a.Limits.PerDay != 1000 || a.Limits.FirstContactPerDay != 50 {
		t.Errorf("a's limits %+v: want the plan's", a.Limits)
	}
	if cfg := a.BreakerConfig(); cfg.TripBounceRate != 0.04 || cfg.OpenFor != 10*time.Minute {
		t.Errorf("a's breaker %+v: want the plan's", cfg)
	}
	if b.Limits.Rate != 5 || b.Limits.PerDay != 0 || b.Limits.Burst != 7 || b.Limits.FirstContactPerDay != 50 {
		t.Errorf("b's limits %+v: want the plan's with per_day 0 and burst 7", b.Limits)
	}
	if cfg := b.BreakerConfig(); cfg.TripBounceRate != 0.04 || cfg.OpenFor != time.Minute {
		t.Errorf("b's breaker %+v: want the plan's with open_for 1m", cfg)
	}
	if c.Limits.Rate != 1 || c.Limits.PerDay != 0 {
		t.Errorf("c's limits %+v", c.Limits)
	}
	ts, _ := p.Build()
	if ts[1].Limits.Rate != 5 || ts[1].Limits.Burst != 7 {
		t.Errorf("built b: %+v", ts[1].Limits)
	}
}

func TestPlansBad(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"unknown plan", `
plans:
  basic: {limits: {rate: 1}}
  pro: {limits: {rate: 2}}
tenants:
  - id: a
    identities: ["*"]
    plan: gold
`, `1 problem(s):
  tenants[0].plan (line 8): unknown plan "gold" (want one of: basic, pro)`},
		{"no plans", `
tenants:
  - id: a
    identities: ["*"]
    plan: gold
`, `1 problem(s):
  tenants[0].plan (line 5): unknown plan "gold" (the policy file has no plans)`},
		{"bad plan values, reported once", `
plans:
  Bad Name:
    limits: {rate: -1, rate_per: byte, extra: 1}
    breaker: {bounce_rate: 2}
  ok: {limits: {burst: [1]}}
tenants:
  - id: a
    identities: ["*"]
    plan: Bad Name
  - id: b
    identities: ["*"]
    plan: Bad Name
    limits: {rate: -2}
`, `7 problem(s):
  plans.Bad Name (line 3): the name must be 1 to 63 lower-case letters, digits, - or _, the first a letter or digit
  plans.Bad Name.limits.rate (line 4): must be >= 0
  plans.Bad Name.limits.rate_per (line 4): must be message or recipient
  plans.Bad Name.limits.extra (line 4): unknown key (want one of: rate, burst, max_recipients, max_message_size, rate_per, per_hour, per_day, first_contact_per_hour, first_contact_per_day, per_domain_rate, per_domain_burst, first_contact_window, shadow)
  plans.Bad Name.breaker.bounce_rate (line 5): 2 outside [0, 1]
  plans.ok.limits.burst (line 6): want a whole number, got a list
  tenants[1].limits.rate (line 14): must be >= 0`},
		{"plans not a mapping", `
plans: [a, b]
tenants: [{id: a, identities: ["*"]}]
`, `1 problem(s):
  plans (line 2): want key: value pairs, got a list`},
		{"plan set twice", `
plans:
  a: {}
  a: {}
tenants: [{id: a, identities: ["*"]}]
`, `1 problem(s):
  plans.a (line 4): set twice (first on line 3)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// One tenant entry, as the admin API takes it, is decoded and checked by
// the file's code: the same keys, the same messages without the
// tenants[i] prefix, every problem at once; a plan of the file applies.
func TestParseTenant(t *testing.T) {
	file, err := Parse([]byte(plansDoc))
	if err != nil {
		t.Fatal(err)
	}
	tn, err := ParseTenant([]byte(`{"id": "api-1", "identities": ["@x.example"], "plan": "pro", "limits": {"burst": 9}, "ses": {"configuration_set": "cs"}}`), file)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Limits.Rate != 50 || tn.Limits.PerDay != 100000 || tn.Limits.Burst != 9 || tn.SES.ConfigurationSet != "cs" {
		t.Errorf("tenant %+v", tn)
	}
	gt, _ := tn.Build()
	if gt.ID != "api-1" || gt.Limits.Rate != 50 || gt.Limits.Burst != 9 {
		t.Errorf("built %+v", gt)
	}
	if _, err := ParseTenant([]byte("id: y\nidentities: ['*']\n"), nil); err != nil {
		t.Errorf("YAML: %v", err)
	}

	bad := []struct{ doc, want string }{
		{`{"id": "Bad", "limits": {"rate": -1, "nope": 1}, "plan": "gold", "tokens": [{"key_id": "x", "sha256": "y"}], "breaker": {"bounce_rate": 3}}`,
			`9 problem(s):
  identities (line 1, not set): at least one identity is required
  id (line 1): must be 1 to 63 lower-case letters, digits, - or _, the first a letter or digit
  limits.rate (line 1): must be >= 0
  limits.nope (line 1): unknown key (want one of: rate, burst, max_recipients, max_message_size, rate_per, per_hour, per_day, first_contact_per_hour, first_contact_per_day, per_domain_rate, per_domain_burst, first_contact_window, shadow)
  plan (line 1): unknown plan "gold" (want one of: basic, pro)
  tokens (line 1): not accepted through the API: mint a token with the tenant (mint_token) or with POST /v1/tokens
  tokens[0].key_id (line 1): not a key id (use ` + "`sesgate token new`" + `)
  tokens[0].sha256 (line 1): want 64 hex characters (SHA-256)
  breaker.bounce_rate (line 1): 3 outside [0, 1]`},
		{`[1, 2]`, `1 problem(s):
  the tenant (line 1): want key: value pairs, got a list`},
		{`{"id": "a", "identities": ["*"], "limits": {"rate": .nan}}`, `1 problem(s):
  limits.rate (line 1): must be a finite number`},
	}
	for _, tc := range bad {
		_, err := ParseTenant([]byte(tc.doc), file)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n%v\nwant:\n%s", tc.doc, err, tc.want)
		}
	}
	for _, tc := range []struct{ doc, want string }{
		{"", "the tenant is empty"},
		{"{", "invalid JSON or YAML: "},
		{strings.Repeat(" ", MaxTenantBytes+1), "larger than"},
	} {
		if _, err := ParseTenant([]byte(tc.doc), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// BenchmarkParseTenant is the cost of decoding one API tenant (a replica
// decodes each at start and at each change).
func BenchmarkParseTenant(b *testing.B) {
	file, err := Parse([]byte(plansDoc))
	if err != nil {
		b.Fatal(err)
	}
	spec := []byte(`{"id":"t1","identities":["*"],"plan":"basic","limits":{"max_recipients":10}}`)
	b.ReportAllocs()
	for b.Loop() {
		t, err := ParseTenant(spec, file)
		if err != nil {
			b.Fatal(err)
		}
		t.Build()
	}
}
