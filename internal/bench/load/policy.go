package load

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/bench/stack"
)

// FullTenant is the tenant of the realistic scenario: every limit set.
const FullTenant = "full"

// Limits are the limits written for the full tenant (the keys of the
// policy file's limits section).
type Limits struct {
	Rate                float64 `json:"rate"`
	Burst               int     `json:"burst"`
	PerHour             int64   `json:"per_hour"`
	PerDay              int64   `json:"per_day"`
	FirstContactPerHour int64   `json:"first_contact_per_hour"`
	FirstContactPerDay  int64   `json:"first_contact_per_day"`
	PerDomainRate       float64 `json:"per_domain_rate"`
	PerDomainBurst      int     `json:"per_domain_burst"`
}

// FullLimits are set far above what any run reaches (the flags bound a
// run to 10 million messages per phase, 20 runs, 512 workers, about
// 10,000 messages per second), so every limit is evaluated and counted
// and none refuses.
func FullLimits() Limits {
	return Limits{
		Rate: 1_000_000, Burst: 1_000_000,
		PerHour: 10_000_000_000, PerDay: 100_000_000_000,
		FirstContactPerHour: 10_000_000_000, FirstContactPerDay: 100_000_000_000,
		PerDomainRate: 1_000_000, PerDomainBurst: 1_000_000,
	}
}

// String is the limits as the report prints them.
func (l Limits) String() string {
	return fmt.Sprintf("rate %g/s burst %d, per_hour %d per_day %d, first_contact_per_hour %d first_contact_per_day %d, per_domain_rate %g/s per_domain_burst %d",
		l.Rate, l.Burst, l.PerHour, l.PerDay, l.FirstContactPerHour, l.FirstContactPerDay, l.PerDomainRate, l.PerDomainBurst)
}

// PolicyOptions shape the generated policy.
type PolicyOptions struct {
	Token  auth.Record // the measured tenant's stored token
	Tenant string      // its id; default FullTenant
	Limits Limits
	// Others are more tenants with the same limits (the policy file's
	// size), each by its token's record (Record.Tenant is the id); see
	// IdleTenants.
	Others []auth.Record
	// Admin, when set, is the stored admin token of the policy (the
	// bench reads the gateway's /metrics with it).
	Admin auth.Record
}

// IdleTenants mints n tenants idle-0 .. idle-<n-1> and returns their
// records and tokens.
func IdleTenants(n int) ([]auth.Record, []string) {
	recs, toks := make([]auth.Record, n), make([]string, n)
	for i := range n {
		m := auth.NewToken(fmt.Sprintf("idle-%d", i))
		recs[i], toks[i] = m.Record, m.Token
	}
	return recs, toks
}

// Policy renders the policy file.
func Policy(o PolicyOptions) string {
	id := o.Tenant
	if id == "" {
		id = FullTenant
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# written by sesgate-bench: tenant %s with every limit set, %d more tenants\ntenants:\n", id, len(o.Others))
	tenant := func(id string, rec auth.Record) {
		l := o.Limits
		fmt.Fprintf(&b, "  - id: %s\n    tokens:\n      - %s\n    identities: [\"*\"]\n", id, rec.PolicyLine())
		fmt.Fprintf(&b, "    limits: {rate: %g, burst: %d, per_hour: %d, per_day: %d, first_contact_per_hour: %d, first_contact_per_day: %d, per_domain_rate: %g, per_domain_burst: %d}\n",
			l.Rate, l.Burst, l.PerHour, l.PerDay, l.FirstContactPerHour, l.FirstContactPerDay, l.PerDomainRate, l.PerDomainBurst)
	}
	tenant(id, o.Token)
	for _, rec := range o.Others {
		tenant(rec.Tenant, rec)
	}
	if o.Admin.KeyID != "" {
		fmt.Fprintf(&b, "admin_tokens:\n  - {name: bench, key_id: %s, sha256: %s}\n", o.Admin.KeyID, o.Admin.Hash)
	}
	return b.String()
}

// WritePolicy mints the measured tenant's token and an admin token (to
// dir/stack.AdminTokenFile), writes the policy to dir/policy.yml and returns the
// file and the tenant's token.
func WritePolicy(dir string, o PolicyOptions) (path, token string, err error) {
	if o.Tenant == "" {
		o.Tenant = FullTenant
	}
	m := auth.NewToken(o.Tenant)
	o.Token = m.Record
	admin := auth.NewToken("")
	o.Admin = admin.Record
	if err := os.WriteFile(filepath.Join(dir, stack.AdminTokenFile), []byte(admin.Token+"\n"), 0o600); err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(path, []byte(Policy(o)), 0o600); err != nil {
		return "", "", err
	}
	return path, m.Token, nil
}
