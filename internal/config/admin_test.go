package config

import (
	"errors"
	"slices"
	"testing"
)

func TestAdminTokensAndMetrics(t *testing.T) {
	const tenant = "tenants:\n  - id: a\n    identities: [\"*\"]\n"
	const good = "{name: alice, key_id: q7w2e4r5t6, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}"
	tests := []struct {
		name     string
		doc      string
		problems []string
	}{
		{"valid", "admin_tokens:\n  - " + good + "\nmetrics: {max_tenant_labels: 5}\n" + tenant, nil},
		{"bad entries", "admin_tokens:\n  - {name: Alice!, key_id: x, sha256: zz}\n  - " + good + "\n  - " + good + "\nmetrics: {max_tenant_labels: -1}\n" + tenant, []string{
			"admin_tokens[0].name (line 2): must be 1 to 63 lower-case letters, digits, - or _, the first a letter or digit",
			"admin_tokens[0].key_id (line 2): not a key id (use `sesgate token new --admin`)",
			"admin_tokens[0].sha256 (line 2): want 64 hex characters (SHA-256)",
			"admin_tokens[2].name (line 4): duplicate of admin_tokens[1]",
			"admin_tokens[2].key_id (line 4): already used by admin_tokens[1]",
			"metrics.max_tenant_labels (line 5): must be between 0 and 10000",
		}},
		{"admin key id reused by a tenant token", "admin_tokens:\n  - " + good + "\n" +
			"tenants:\n  - id: a\n    identities: [\"*\"]\n    tokens:\n      - {key_id: q7w2e4r5t6, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n",
			[]string{"tenants[0].tokens[0].key_id (line 7): already used by admin_tokens[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.doc))
			if tc.problems == nil {
				if err != nil || len(p.AdminTokens) != 1 || p.Metrics.MaxTenantLabels != 5 {
					t.Fatalf("got %+v, %v", p, err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || !slices.Equal(ce.Problems, tc.problems) {
				t.Fatalf("problems:\n%v\nwant\n%v", err, tc.problems)
			}
		})
	}
}
