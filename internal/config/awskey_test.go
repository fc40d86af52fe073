package config

import (
	"errors"
	"slices"
	"testing"

	"github.com/sesgate/sesgate/auth"
)

// TestAWSAccessKeys: a tenant's tokens may hold AWS keys as their access
// key id alone; each bad form is refused with its exact message, and Build
// turns a good one into an AWS key record.
func TestAWSAccessKeys(t *testing.T) {
	const head = "tenants:\n  - id: a\n    identities: [\"*\"]\n    tokens:\n"
	good := auth.AccessKeyID("q7w2e4r5t6")
	tests := []struct {
		name, doc string
		problems  []string
	}{
		{"bad forms", head +
			"      - {aws_access_key_id: AKIAIOSFODNN7EXAMPLE}\n" +
			"      - {aws_access_key_id: " + good + ", key_id: q7w2e4r5t6}\n" +
			"      - {aws_access_key_id: SGAWSKq7w2e4r5t6}\n" +
			"      - {aws_access_key_id: " + good + "}\n" +
			"      - {aws_access_key_id: " + good + "}\n" +
			"      - {key_id: q7w2e4r5t6, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n",
			[]string{
				"tenants[0].tokens[0].aws_access_key_id (line 5): not an access key id (use `sesgate token new --aws`)",
				"tenants[0].tokens[1] (line 6): aws_access_key_id goes without key_id and sha256",
				"tenants[0].tokens[2].aws_access_key_id (line 7): not an access key id (use `sesgate token new --aws`)",
				"tenants[0].tokens[4].aws_access_key_id (line 9): already used by tenants[0].tokens[3]",
				"tenants[0].tokens[5].key_id (line 10): already used by tenants[0].tokens[3]",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var ce *Error
			if !errors.As(err, &ce) || !slices.Equal(ce.Problems, tc.problems) {
				t.Fatalf("problems:\n%v\nwant\n%q", err, tc.problems)
			}
		})
	}
	p, err := Parse([]byte(head + "      - {aws_access_key_id: " + good + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasAWSKeys() {
		t.Fatal("HasAWSKeys false")
	}
	_, entries := p.Build()
	if len(entries) != 1 || !entries[0].Record.IsAWSKey() || entries[0].Record.KeyID != "q7w2e4r5t6" || entries[0].Tenant.ID != "a" {
		t.Fatalf("entries %+v", entries)
	}
}
