package config

import (
	"errors"
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
	if b.SES.ConfigurationSet != "billing-events" || b.SES.TenantName != "billing" {
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
		Shadow: []string{"per_day"}}
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

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-and-types.bad.yml", []string{
			"ses.regoin (line 2): field regoin not found",
			"tenants[0].limits.rate (line 7): cannot unmarshal !!str `fast`",
			"tenants[0].colour (line 9): field colour not found",
		}},
		{"values.bad.yml", []string{
			"ses.max_attempts: must be between 0 and 10",
			"tenants[0].id: must match",
			"tenants[0].identities: at least one identity is required",
			"tenants[0].tokens[0].key_id: not a key id",
			"tenants[0].tokens[0].sha256: want 64 hex characters",
			`tenants[0].source_cidrs[0]: "10.0.0.0/33" is not a CIDR`,
			"tenants[0].limits.rate: must be >= 0",
			"tenants[0].limits.max_recipients: must be between 0 and 50",
			"tenants[0].limits.max_message_size: must be between 0 and 41943040",
			`tenants[1].identities[0]: "not an address" is not an address`,
			`tenants[1].recipient_domains[0]: "bad_domain" is not a domain`,
			"tenants[2].id: duplicate of tenants[1]",
		}},
		{"store.bad.yml", []string{
			"ses.max_send_rate: must be between 0 and 100000",
			"store.redis: set url or addrs (one of them)",
			"store.redis.url: scheme must be redis",
			`store.redis.addrs[0]: "nohost" is not host:port`,
			"store.redis.pool_size: must be between 0 and 10000",
			"store.call_timeout: must be between 0 and 5s",
			"store.degraded_fraction: must be between 0 and 1",
			"store.known_recipient_ttl: must be between 0 and 26280h",
			"tenants[0].limits.rate_per: must be message or recipient",
			"tenants[0].limits.per_hour: must be >= 0",
			"tenants[0].limits.per_domain_rate: must be >= 0",
			`tenants[0].limits.shadow[1]: "speed" is not a limit`,
			"tenants[1].limits.burst: with rate_per: recipient the burst (5) must be at least max_recipients (50)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v; want *config.Error", err)
			}
			if len(ce.Problems) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(ce.Problems), len(tc.want), err)
			}
			for _, w := range tc.want {
				found := false
				for _, p := range ce.Problems {
					found = found || strings.Contains(p, w)
				}
				if !found {
					t.Errorf("missing problem %q in:\n%s", w, err)
				}
			}
		})
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
