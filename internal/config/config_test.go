package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
)

func TestLoadGood(t *testing.T) {
	p, err := Load(filepath.Join("testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.SES.Region != "eu-west-1" || p.SES.Timeout.Seconds() != 20 || p.SES.MaxAttempts != 3 {
		t.Fatalf("ses = %+v", p.SES)
	}
	tenants, entries := p.Build()
	if len(tenants) != 2 || len(entries) != 1 {
		t.Fatalf("%d tenants, %d entries", len(tenants), len(entries))
	}
	b := tenants[0]
	if b.Limits.MaxMessageBytes != 10_000_000 || b.Limits.Rate != 10 || b.Limits.Burst != 20 || b.MaxRecipients() != 20 {
		t.Fatalf("limits = %+v", b.Limits)
	}
	if b.SES.ConfigurationSet != "billing-events" || b.SES.TenantName != "billing" ||
		!b.AllowsConfigurationSet("billing-marketing") || b.AllowsConfigurationSet("other") ||
		!b.SES.DeliveryEvents || !b.WindowActive() || tenants[1].WindowActive() {
		t.Fatalf("ses = %+v", b.SES)
	}
	if !b.AllowsSource(netip.MustParseAddr("10.2.3.4")) || b.AllowsSource(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("source nets not built")
	}
	if entries[0].Tenant != b || !entries[0].Record.Hash.Matches("test") {
		t.Fatal("token entry not bound to its tenant / wrong hash")
	}
	if tenants[1].MaxMessageBytes() != 40<<20 {
		t.Fatal("default size limit not applied")
	}
	want := gateway.Limits{Rate: 10, Burst: 20, MaxRecipients: 20, MaxMessageBytes: 10_000_000, RatePerRecipient: true,
		PerHour: 1000, PerDay: 5000, FirstContactPerHour: 100, FirstContactPerDay: 300, PerDomainRate: 2, PerDomainBurst: 20,
		FirstContactWindow: gateway.FirstContactWindow{Initial: 20, Min: 5, Max: 500, Threshold: 1000, OutstandingTimeout: 5 * time.Minute, Sample: 50, ShrinkBounceRate: 0.05},
		Shadow:             []string{"per_day"}}
	if !reflect.DeepEqual(b.Limits, want) {
		t.Fatalf("limits = %+v\nwant %+v", b.Limits, want)
	}
	if b.Frozen || !tenants[1].Frozen {
		t.Fatal("frozen flag not built")
	}
	st := p.Store
	if st.Redis == nil || st.Redis.URL != "redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001" || st.CallTimeout != 40*time.Millisecond ||
		st.DegradedWindow != 30*time.Second || st.DegradedFraction != 0.25 || st.Replicas != 3 || st.KnownRecipientTTL != 720*time.Hour ||
		p.SES.MaxSendRate != 14 {
		t.Fatalf("store = %+v, ses = %+v", st, p.SES)
	}
}

// badFiles maps each testdata/*.bad.yml to the whole error that Load
// returns for it (after "testdata/NAME: ").
var badFiles = []struct {
	file, err string
}{
	{"comments-only.bad.yml", `the policy file is empty (no keys, only blank lines or comments)`},
	{"deep.bad.yml", `4 problem(s):
  tenants[1].limits.burst (line 6, not set): with rate_per: recipient the burst (10) must be at least max_recipients (30), or large messages never pass
  tenants[1].limits.shadow[1] (line 10): "per_week" is not a limit (want one of rate, per_hour, per_day, first_contact_per_hour, first_contact_per_day, per_domain_rate, first_contact_window)
  tenants[1].breaker.fast_window (line 13): 3h must be whole minutes within [1m, 2h]
  tenants[2].limits.per_domain_burst (line 17): must be >= 0`},
	{"duration.bad.yml", `4 problem(s):
  ses.timeout (line 4): want a duration like 30s, 5m or 1h30m, got "20 seconds"
  store.call_timeout (line 6): want a duration like 30s, 5m or 1h30m, got 30
  tenants[0].breaker.open_for (line 12): want a duration like 30s, 5m or 1h30m, got "soon"
  tenants[0].breaker.window (line 13): 1m30s must be whole minutes within [1m, 24h]`},
	{"empty.bad.yml", `the policy file is empty (no keys, only blank lines or comments)`},
	{"negative.bad.yml", `7 problem(s):
  ses.max_attempts (line 2): must be between 0 and 10
  store.max_cache (line 5): must be between 0 and 1h
  tenants[0].limits.burst (line 10): must be >= 0
  tenants[0].limits.max_message_size (line 11): want a size like 10MB or 512KiB (or a number of bytes), got -1
  tenants[0].limits.first_contact_per_day (line 12): must be >= 0
  tenants[0].breaker.min_sent (line 13): must not be negative
  tenants[0].breaker.probe_max_bounces (line 13): must not be negative`},
	{"sesparams.bad.yml", `4 problem(s):
  tenants[0].ses.configuration_set (line 5): "events" must be one of configuration_sets (the default must be a set the tenant may use)
  tenants[0].ses.configuration_sets[1] (line 6): must be 1 to 64 letters, digits, - or _
  tenants[0].ses.configuration_sets[2] (line 6): "marketing" is listed twice
  tenants[1].ses.configuration_sets (line 10): want a list, got "events"`},
	{"store.bad.yml", `13 problem(s):
  ses.max_send_rate (line 2): must be between 0 and 100000
  store.redis (line 4): set url or addrs (one of them)
  store.redis.url (line 5): scheme must be redis, rediss, redis+cluster or rediss+cluster
  store.redis.addrs[0] (line 6): "nohost" is not host:port
  store.redis.pool_size (line 7): must be between 0 and 10000
  store.call_timeout (line 8): must be between 0 and 5s
  store.degraded_fraction (line 9): must be between 0 and 1
  store.known_recipient_ttl (line 10): must be between 0 and 26280h (3 years)
  tenants[0].limits.rate_per (line 16): must be message or recipient
  tenants[0].limits.per_hour (line 17): must be >= 0
  tenants[0].limits.per_domain_rate (line 18): must be >= 0
  tenants[0].limits.shadow[1] (line 19): "speed" is not a limit (want one of rate, per_hour, per_day, first_contact_per_hour, first_contact_per_day, per_domain_rate, first_contact_window)
  tenants[1].limits.burst (line 22, not set): with rate_per: recipient the burst (5) must be at least max_recipients (50), or large messages never pass`},
	{"window.bad.yml", `11 problem(s):
  tenants[0].ses.delivery_events (line 4): needs an event input to receive them (events.sns.topic_arns or events.sqs.queue_url)
  tenants[0].limits.first_contact_window.initial (line 7): initial (20) must be between min (-1) and max (10)
  tenants[0].limits.first_contact_window.min (line 8): must be between 1 and 1000000 (or left out for the default)
  tenants[0].limits.first_contact_window.outstanding_timeout (line 10): must be between 10s and 24h
  tenants[0].limits.first_contact_window.sample (line 11): must be between 5 and 10000
  tenants[0].limits.first_contact_window.shrink_bounce_rate (line 12): must be between 0.001 and 1
  tenants[1].limits.first_contact_window.initial (line 17): initial (45) must be between min (50) and max (40)
  tenants[1].limits.first_contact_window.min (line 18): min (50) must not exceed max (40)
  tenants[1].limits.first_contact_window.intial (line 20): unknown key (want one of: initial, min, max, threshold, outstanding_timeout, sample, shrink_bounce_rate)
  tenants[1].limits.first_contact_window.sample (line 21): must be between 5 and 10000
  tenants[1].limits.first_contact_window.shrink_bounce_rate (line 22): must be between 0.001 and 1`},
	{"types.bad.yml", `11 problem(s):
  ses (line 1): want key: value pairs, got "eu-west-1"
  store.redis.url (line 3): want text, got a list
  store.redis.pool_size (line 3): want a whole number, got "ten"
  tenants[0].identities (line 6): want a list, got "*"
  tenants[0].limits (line 7): want key: value pairs, got "fast"
  tenants[0].frozen (line 8): want true or false, got "maybe"
  tenants[1].identities[1] (line 10): want text, got key: value pairs
  tenants[1].limits.rate (line 13): set twice (first on line 12)
  tenants[1].limits.burst (line 14): want a whole number, got 2.5e99
  tenants[1].limits.max_message_size (line 15): want a size like 10MB or 512KiB (or a number of bytes), got "5TB"
  metrics (line 16): want key: value pairs, got a list`},
	{"unknown-and-types.bad.yml", `3 problem(s):
  ses.regoin (line 2): unknown key (want one of: region, endpoint, max_attempts, timeout, max_send_rate)
  tenants[0].limits.rate (line 7): want a number, got "fast"
  tenants[0].colour (line 9): unknown key (want one of: id, tokens, identities, recipient_domains, source_cidrs, limits, ses, frozen, breaker, webhooks, plan)`},
	{"unknown.bad.yml", `4 problem(s):
  ses.regoin (line 2): unknown key (want one of: region, endpoint, max_attempts, timeout, max_send_rate)
  tenants[0].limits.rat_per (line 6): unknown key (want one of: rate, burst, max_recipients, max_message_size, rate_per, per_hour, per_day, first_contact_per_hour, first_contact_per_day, per_domain_rate, per_domain_burst, first_contact_window, shadow)
  tenants[0].colour (line 7): unknown key (want one of: id, tokens, identities, recipient_domains, source_cidrs, limits, ses, frozen, breaker, webhooks, plan)
  account_guard.bounce_rat (line 8): unknown key (want one of: enabled, window, min_sent, bounce_rate, warn_bounce_rate, fast_window, fast_bounce_rate, fast_min_bounces, complaint_window, complaint_min_sent, complaint_rate, warn_complaint_rate, complaint_burst, complaint_burst_window, open_for, max_open_for, force_after, force_window, probe_recipients, probe_hold, probe_max_bounces)`},
	{"values.bad.yml", `12 problem(s):
  ses.max_attempts (line 2): must be between 0 and 10
  tenants[0].id (line 4): must be 1 to 63 lower-case letters, digits, - or _, the first a letter or digit
  tenants[0].identities (line 5): at least one identity is required
  tenants[0].tokens[0].key_id (line 7): not a key id (use ` + "`sesgate token new`" + `)
  tenants[0].tokens[0].sha256 (line 7): want 64 hex characters (SHA-256)
  tenants[0].source_cidrs[0] (line 8): "10.0.0.0/33" is not a CIDR
  tenants[0].limits.rate (line 10): must be >= 0
  tenants[0].limits.max_recipients (line 11): must be between 0 and 50 (SES's limit)
  tenants[0].limits.max_message_size (line 12): must be between 0 and 41943040 bytes (SES's limit)
  tenants[1].identities[0] (line 14): "not an address" is not an address, @domain or *
  tenants[1].recipient_domains[0] (line 15): "bad_domain" is not a domain or *.domain
  tenants[2].id (line 16): duplicate of tenants[1]`},
}

func TestLoadBad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.bad.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(badFiles) {
		t.Errorf("%d testdata/*.bad.yml files, %d in badFiles", len(files), len(badFiles))
	}
	for _, tc := range badFiles {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			_, err := Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			if want := path + ": " + tc.err; err.Error() != want {
				t.Errorf("error:\n%s\nwant:\n%s", err, want)
			}
			var ce *Error
			if empty := errors.Is(err, ErrEmpty); empty == errors.As(err, &ce) {
				t.Errorf("err = %#v: want either ErrEmpty or a *config.Error", err)
			}
		})
	}
}

func TestParseAliasesAndMerges(t *testing.T) {
	doc := `
tenants:
  - id: a
    identities: &all ["*"]
    limits: &std {rate: 5, burst: 10, per_hour: 100}
  - id: b
    identities: *all
    limits:
      <<: *std
      burst: 20
`
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Tenants[0], p.Tenants[1]
	if len(b.Identities) != 1 || b.Identities[0] != "*" || b.Limits.Rate != 5 || b.Limits.PerHour != 100 {
		t.Fatalf("alias or merge not followed: b = %+v", b)
	}
	if b.Limits.Burst != 20 || a.Limits.Burst != 10 {
		t.Fatalf("merge key overrode an explicit key: a %+v, b %+v", a.Limits, b.Limits)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// 1,000 tenants, each an alias of one with 1,000 tokens: aliases
	// expand a 12 KB file into millions of values.
	doc := "tenants:\n  - &t {id: a, identities: ['*'], tokens: [&k {key_id: abcdefghij, sha256: x}" +
		strings.Repeat(", *k", 999) + "]}\n" + strings.Repeat("  - *t\n", 999)
	// Merge keys: each level merges the one before ten times.
	merges := "tenants:\n  - id: a\n    identities: ['*']\n    limits: &m0 {rate: 1}\n"
	for i := 1; i <= 12; i++ {
		merges += fmt.Sprintf("  - {id: a%d, identities: ['*'], limits: &m%d {<<: [%s]}}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d, ", i-1), 10), ", "))
	}
	for _, doc := range []string{doc, merges} {
		start := time.Now()
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "aliases") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v", d)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     ByteSize
		ok       bool
	}{
		{"bytes", "1024", 1024, true},
		{"MB", "40MB", 40_000_000, true},
		{"MiB", "40MiB", 40 << 20, true},
		{"KiB space", "512 KiB", 512 << 10, true},
		{"negative", "-1", 0, false},
		{"unit only", "MB", 0, false},
		{"bad unit", "5TB", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v", tc.in, got, err)
			}
		})
	}
}

func TestTokenLineRoundTrip(t *testing.T) {
	m := auth.NewToken("billing")
	doc := "tenants:\n  - id: billing\n    identities: ['*']\n    tokens:\n      - " + m.Record.PolicyLine() + "\n"
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, entries := p.Build()
	if len(entries) != 1 || !entries[0].Record.Hash.Matches(m.Token) {
		t.Fatal("minted token's policy line does not verify the token")
	}
}

func TestInvalidYAML(t *testing.T) {
	if _, err := Parse([]byte("tenants: [\n")); err == nil || !strings.Contains(err.Error(), "invalid YAML") {
		t.Fatalf("err = %v", err)
	}
}
