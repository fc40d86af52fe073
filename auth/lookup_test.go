package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// TestLookup: a credential reference holds no secret and resolves in the
// current table: the new tenant after Replace, nothing once the key id is
// gone, holds another hash, or its deadline passed.
func TestLookup(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewToken("acme")
	old, changed := &gateway.Tenant{ID: "acme"}, &gateway.Tenant{ID: "acme", Frozen: true}
	r := NewRegistry(RegistryOptions{Entries: []Entry{{Record: m.Record, Tenant: old}}, Now: func() time.Time { return now }})
	ref := r.CredentialRef(m.Token)
	if ref == "" || len(ref) > 100 || containsSecret(ref, m.Token) {
		t.Fatalf("ref %q", ref)
	}
	if r.CredentialRef("not a token") != "" || r.Lookup("garbage") != nil || r.Lookup("abc:zz") != nil {
		t.Fatal("malformed input resolved")
	}
	if got := r.Lookup(ref); got != old {
		t.Fatalf("Lookup = %v, want the tenant", got)
	}
	r.Replace([]Entry{{Record: m.Record, Tenant: changed}})
	if got := r.Lookup(ref); got != changed {
		t.Fatalf("after Replace: %v, want the new tenant", got)
	}
	other := NewToken("acme")
	r.Replace([]Entry{{Record: Record{KeyID: m.Record.KeyID, Hash: other.Record.Hash, Tenant: "acme"}, Tenant: changed}})
	if r.Lookup(ref) != nil {
		t.Fatal("resolved against another hash under the same key id")
	}
	r.Replace([]Entry{{Record: m.Record, Tenant: changed, Expires: now.Add(time.Second)}})
	if r.Lookup(ref) == nil {
		t.Fatal("refused before its deadline")
	}
	now = now.Add(time.Second)
	if r.Lookup(ref) != nil {
		t.Fatal("resolved at its deadline")
	}
	r.Replace(nil)
	if r.Lookup(ref) != nil {
		t.Fatal("resolved after revocation")
	}
	// Lookups count no failure: the source is not throttled afterwards.
	for range 100 {
		r.Lookup("abcdefghij:" + other.Record.Hash.String())
	}
	if len(r.failures) != 0 {
		t.Fatal("Lookup counted failures")
	}
}

func containsSecret(ref, token string) bool {
	return strings.Contains(ref, token[len(token)-39:]) // the secret part
}
