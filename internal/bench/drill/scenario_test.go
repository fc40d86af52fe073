package drill

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultScenario(t *testing.T) {
	s := Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	v := s.Victim()
	if v == nil || v.ID != "newsletter" {
		t.Fatalf("victim %v", v)
	}
	// burst 20 + first contacts 150 per hour
	if got := s.Checks.MaxAttackerMessages; got != 170 {
		t.Errorf("bound %d, want 170", got)
	}
	total := s.Duration + s.Drain + s.EventDelay
	if total > 60*time.Second {
		t.Errorf("default run %v: must leave room for start-up within 90 s", total)
	}
	if s.Attacker.BounceFraction != 0.30 || s.Checks.MaxTripDelay != 5*time.Second || s.Checks.MaxAccountBounceRate != 0.02 {
		t.Errorf("defaults %+v %+v", s.Attacker, s.Checks)
	}
}

func TestParse(t *testing.T) {
	base := `
tenants:
  - id: a
    limits: {rate: 10, burst: 5, first_contact_per_hour: 50, first_contact_per_day: 30}
    traffic: {rate: 5}
  - id: b
attacker: {tenant: a}
`
	tests := []struct {
		name    string
		doc     string
		wantErr []string
		check   func(*Scenario) bool
	}{
		{name: "defaults filled", doc: base, check: func(s *Scenario) bool {
			return s.Duration == 40*time.Second && s.Store == "redis" && s.Tenants[0].ConfigurationSet == "drill-a" &&
				s.Tenants[0].Traffic.Workers == 2 && s.Tenants[0].Traffic.Recipients == 100 &&
				s.Attacker.Workers == 16 && s.Attacker.BounceFraction == 0.3 && *s.Checks.ExpectTrip &&
				s.Checks.MaxAttackerMessages == 35 // burst 5 + the smaller budget, 30 a day
		}},
		{name: "stated bound and durations", doc: base + "duration: 12s\nevent_delay: 500ms\nchecks: {max_attacker_messages: 7, expect_trip: false}\n",
			check: func(s *Scenario) bool {
				return s.Duration == 12*time.Second && s.EventDelay == 500*time.Millisecond && s.Checks.MaxAttackerMessages == 7 && !*s.Checks.ExpectTrip
			}},
		{name: "unknown key", doc: base + "attackers: 3\n", wantErr: []string{"field attackers not found"}},
		{name: "unknown nested key", doc: strings.Replace(base, "traffic: {rate: 5}", "traffic: {rate: 5, speed: 1}", 1), wantErr: []string{"field speed not found"}},
		{name: "every problem at once", doc: `
duration: 20m
store: etcd
tenants:
  - id: A
    limits: {rate: 3}
    traffic: {bounce_fraction: 1.5, workers: 1000}
  - id: b
  - id: b
attacker: {tenant: c, bounce_fraction: -1}
`, wantErr: []string{
			"duration: 20m0s outside [1s, 10m0s]",
			`store: "etcd": want redis or embedded`,
			`tenants[0].id: "A"`,
			"tenants[0].limits.burst: needed with a rate",
			"tenants[0].traffic.workers: outside [1, 256]",
			"tenants[0].traffic.bounce_fraction: 1.5 outside [0, 1]",
			`tenants[2].id: "b" appears twice`,
			`attacker.tenant: "c" is not a tenant`,
			"attacker.bounce_fraction: -1 outside [0, 1]",
		}},
		{name: "no bound", doc: "tenants: [{id: a}]\nattacker: {tenant: a}\n", wantErr: []string{"checks.max_attacker_messages: required"}},
		{name: "no attacker", doc: "tenants: [{id: a}]\n", check: func(s *Scenario) bool {
			return !s.HasAttacker() && s.Checks.MaxAttackerMessages == 0 && s.Checks.ExpectTrip == nil && s.Attacker == (Attacker{})
		}},
		{name: "empty", doc: "", wantErr: []string{"scenario is empty"}},
		{name: "two documents", doc: base + "---\nname: x\n", wantErr: []string{"one YAML document expected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.doc))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Fatalf("scenario %+v", s)
			}
		})
	}
}

func TestBound(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		want int64
	}{
		{"hour only", Limits{Burst: 10, FirstContactPerHour: 100}, 110},
		{"day smaller", Limits{Burst: 10, FirstContactPerHour: 100, FirstContactPerDay: 40}, 50},
		{"day only", Limits{Burst: 1, FirstContactPerDay: 40}, 41},
		{"no budget", Limits{Burst: 10}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Tenant{Limits: tt.l}).Bound(); got != tt.want {
				t.Fatalf("Bound = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		name                   string
		l                      List
		wantBounce, wantCompla int
	}{
		{"30% of 1000", List{Domain: "x.example", N: 1000, BounceFraction: 0.3}, 300, 0},
		{"1% of 1000, 0.5% complain", List{Domain: "x.example", N: 1000, BounceFraction: 0.01, ComplaintFraction: 0.005}, 10, 5},
		{"none", List{Domain: "x.example", N: 50}, 0, 0},
		{"all", List{Domain: "x.example", N: 7, BounceFraction: 1}, 7, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b, c int
			seen := map[string]bool{}
			for i := range int64(tt.l.N) {
				a := tt.l.Address(i)
				if seen[a] || !strings.HasSuffix(a, "@x.example") {
					t.Fatalf("address %d: %s (duplicate or wrong domain)", i, a)
				}
				seen[a] = true
				switch FateOf(a) {
				case Bounced:
					b++
				case Complained:
					c++
				}
			}
			if b != tt.wantBounce || c < tt.wantCompla-1 || c > tt.wantCompla {
				t.Fatalf("bounces %d complaints %d, want %d %d", b, c, tt.wantBounce, tt.wantCompla)
			}
			if tt.l.Address(int64(tt.l.N)) != tt.l.Address(0) {
				t.Fatal("the list does not cycle")
			}
		})
	}
	for addr, want := range map[string]Fate{"Bounce-1@x": Bounced, "complaint@x": Complained, "rcpt-bounce@x": Delivered, "bounce": Bounced} {
		if got := FateOf(addr); got != want {
			t.Errorf("FateOf(%q) = %v, want %v", addr, got, want)
		}
	}
}
