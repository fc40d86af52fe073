package auth

import (
	"strings"

	"github.com/sesgate/sesgate/gateway"
)

var _ gateway.CredentialLookup = (*Registry)(nil)

// CredentialRef returns "<key id>:<hex SHA-256>" for a token of the right
// shape, "" otherwise: what a session keeps instead of the token to find
// its credential again (Lookup).
func (r *Registry) CredentialRef(token string) string {
	kid, ok := KeyID(token)
	if !ok {
		return ""
	}
	return kid + ":" + HashToken(token).String()
}

// Lookup returns the tenant of the credential ref (from CredentialRef) in
// the current token table, or nil when the key id is gone (revoked, its
// tenant removed), holds another hash, or its rotation deadline passed. It
// counts no failure and does no I/O.
func (r *Registry) Lookup(ref string) *gateway.Tenant {
	kid, hexHash, ok := strings.Cut(ref, ":")
	if !ok {
		return nil
	}
	h, err := ParseHash(hexHash)
	if err != nil {
		return nil
	}
	e, found := r.table.Load().get(kid)
	if !found || e.Record.Hash != h || (!e.Expires.IsZero() && !r.now().Before(e.Expires)) {
		return nil
	}
	return e.Tenant
}
