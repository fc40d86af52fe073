package load

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/config"
)

// TestPolicyPassesTheGatewayDecoder: the generated policy is accepted by
// the gateway's strict decoder, gives tenant full every limit at the
// written values, and the token minted with it authenticates as full.
func TestPolicyPassesTheGatewayDecoder(t *testing.T) {
	dir := t.TempDir()
	others, _ := IdleTenants(3)
	path, token, err := WritePolicy(dir, PolicyOptions{Limits: FullLimits(), Others: others})
	if err != nil {
		t.Fatal(err)
	}
	p, err := config.Load(path)
	if err != nil {
		t.Fatalf("the gateway refuses the policy: %v", err)
	}
	if len(p.Tenants) != 4 || p.Tenants[0].ID != FullTenant || p.Tenants[3].ID != "idle-2" {
		t.Fatalf("tenants %d, first %s", len(p.Tenants), p.Tenants[0].ID)
	}
	want, got := FullLimits(), p.Tenants[0].Limits
	if got.Rate != want.Rate || got.Burst != want.Burst || got.PerHour != want.PerHour || got.PerDay != want.PerDay ||
		got.FirstContactPerHour != want.FirstContactPerHour || got.FirstContactPerDay != want.FirstContactPerDay ||
		got.PerDomainRate != want.PerDomainRate || got.PerDomainBurst != want.PerDomainBurst {
		t.Errorf("decoded limits %+v, want %+v", got, want)
	}
	// Every limit of the list is set (none left at its "no limit" zero).
	for name, v := range map[string]float64{"rate": got.Rate, "burst": float64(got.Burst), "per_hour": float64(got.PerHour),
		"per_day": float64(got.PerDay), "first_contact_per_hour": float64(got.FirstContactPerHour),
		"first_contact_per_day": float64(got.FirstContactPerDay), "per_domain_rate": got.PerDomainRate, "per_domain_burst": float64(got.PerDomainBurst)} {
		if v <= 0 {
			t.Errorf("%s not set", name)
		}
	}
	kid, ok := auth.KeyID(token)
	tok := p.Tenants[0].Tokens[0]
	if !ok || tok.KeyID != kid || tok.SHA256 != auth.HashToken(token).String() {
		t.Errorf("token %q does not match the policy's %+v", token, tok)
	}
	if !strings.Contains(FullLimits().String(), "per_domain_burst 1000000") {
		t.Errorf("limits text %q", FullLimits().String())
	}
}

// TestMix: the known share is honoured exactly over any prefix (to one
// send), first contacts never repeat, the seed mails the whole pool, and
// sends spread evenly over the domains.
func TestMix(t *testing.T) {
	for _, f := range []float64{0, 0.25, 0.5, 0.9, 1} {
		m := &Mix{KnownFraction: f, Domains: 7, Tag: "p1"}
		known, seen, perDomain := 0, map[string]bool{}, map[string]int{}
		const n = 7000
		for seq := range int64(n) {
			r := m.Recipient(seq)
			if m.Known(seq) {
				known++
				if !strings.HasPrefix(r, "known") {
					t.Fatalf("known send %d to %s", seq, r)
				}
			} else if seen[r] {
				t.Fatalf("first contact %s used twice", r)
			} else {
				seen[r] = true
			}
			_, dom, _ := strings.Cut(r, "@")
			perDomain[dom]++
			if seq == 999 && (known < int(999*f)-1 || known > int(1000*f)+1) {
				t.Errorf("f=%v: %d known of the first 1000", f, known)
			}
		}
		if want := int(n * f); known != want {
			t.Errorf("f=%v: %d known of %d, want %d", f, known, n, want)
		}
		if len(perDomain) != 7 {
			t.Errorf("f=%v: %d domains, want 7", f, len(perDomain))
		}
		for d, c := range perDomain {
			if c < n/7*9/10 || c > n/7*11/10 {
				t.Errorf("f=%v: domain %s got %d of %d", f, d, c, n)
			}
		}
	}
	// Another phase's first contacts differ; the seed is the pool.
	a, b := &Mix{Tag: "a", Domains: 2}, &Mix{Tag: "b", Domains: 2}
	if a.Recipient(3) == b.Recipient(3) {
		t.Error("two phases share a first contact")
	}
	seed, mixed := &Mix{Seed: true, Domains: 50}, &Mix{KnownFraction: 1, Domains: 50}
	pool := map[string]bool{}
	for seq := range int64(KnownPool) {
		pool[seed.Recipient(seq)] = true
	}
	for seq := range int64(3 * KnownPool) {
		if !pool[mixed.Recipient(seq)] {
			t.Fatalf("known recipient %s was not seeded", mixed.Recipient(seq))
		}
	}
	if len(pool) != KnownPool {
		t.Errorf("seed mailed %d addresses, want %d", len(pool), KnownPool)
	}
}

// TestMixedBodies: with a Mix, each HTTP body and SMTP envelope names the
// send's own recipient.
func TestMixedBodies(t *testing.T) {
	m := Message{Mix: &Mix{KnownFraction: 0.5, Domains: 3, Tag: "t"}}.withDefaults()
	bodies, err := m.jsonBodies()
	if err != nil {
		t.Fatal(err)
	}
	for seq := range int64(4) {
		var got struct {
			To   []string `json:"to"`
			From string   `json:"from"`
		}
		if err := json.Unmarshal(m.body(bodies, seq), &got); err != nil {
			t.Fatalf("body %d: %v", seq, err)
		}
		if len(got.To) != 1 || got.To[0] != m.Mix.Recipient(seq) || m.rcpt(seq) != got.To[0] || got.From != "bench@example.com" {
			t.Errorf("send %d: body to %v from %s, want %s", seq, got.To, got.From, m.Mix.Recipient(seq))
		}
	}
	if len(m.raw()) != 1 {
		t.Errorf("%d raw messages with a mix, want 1", len(m.raw()))
	}
}
