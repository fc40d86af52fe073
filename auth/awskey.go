package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/sesgate/sesgate/gateway"
)

// AWS-style keys let an app written against the SES API authenticate with
// SigV4 (gateway/sesapi). An access key id is AccessKeyPrefix followed by a
// token key id in upper case (16 characters, like AWS's own); its secret
// access key is derived, never stored:
//
//	secret = base64(HMAC-SHA256(server key, access key id)[:30])  (40 characters)
//
// Why derivation: the store and the policy file hold only the access key
// id, so nothing at rest leaks a usable secret (not even a hash to attack),
// and rotating the server key revokes every derived key at once. The cost:
// every replica (and whoever mints keys) needs the server key, which is
// then the one secret that must be protected like a signing key; losing it
// exposes every AWS key of every tenant, and rotating it breaks them all
// (there is no per-key grace across a server-key rotation). SigV4 needs the
// secret itself on the verifying side, so a one-way hash could never have
// been enough anyway.
//
// An AWS key is a token record whose Hash is AWSKeyMarker(key id): a public
// value that no token hashes to (a SHA-256 preimage), so the token table,
// the store, revocation, rotation and their propagation to every replica are
// the tokens' own.
const (
	AccessKeyPrefix = "SGAWSK"
	// AWSKeySecretLen is the length of a secret access key.
	AWSKeySecretLen = 40
	// MinServerKeyBytes is the shortest server key accepted.
	MinServerKeyBytes = 32
)

// AccessKeyID returns the access key id of a token key id.
func AccessKeyID(keyID string) string { return AccessKeyPrefix + strings.ToUpper(keyID) }

// ParseAccessKeyID returns the token key id of an access key id.
func ParseAccessKeyID(akid string) (string, bool) {
	rest, ok := strings.CutPrefix(akid, AccessKeyPrefix)
	if !ok || rest != strings.ToUpper(rest) {
		return "", false
	}
	kid := strings.ToLower(rest)
	return kid, ValidKeyID(kid)
}

// AWSKeyMarker is the Hash of an AWS key's record.
func AWSKeyMarker(keyID string) Hash {
	return sha256.Sum256([]byte("sesgate aws access key " + keyID))
}

// IsAWSKey reports whether r is an AWS key's record.
func (r Record) IsAWSKey() bool { return r.Hash == AWSKeyMarker(r.KeyID) }

// AWSKeys derives secret access keys from the server key. The zero value
// is not usable; build one with NewAWSKeys or LoadAWSKeys.
type AWSKeys struct {
	key []byte
}

// NewAWSKeys returns the deriver of server key (at least MinServerKeyBytes).
func NewAWSKeys(serverKey []byte) (*AWSKeys, error) {
	if len(serverKey) < MinServerKeyBytes {
		return nil, fmt.Errorf("AWS key server key: at least %d bytes, got %d", MinServerKeyBytes, len(serverKey))
	}
	return &AWSKeys{key: append([]byte(nil), serverKey...)}, nil
}

// LoadAWSKeys reads the server key from path (surrounding white space
// trimmed).
func LoadAWSKeys(path string) (*AWSKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("AWS key server key: %w", err)
	}
	k, err := NewAWSKeys([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateAWSKeys reads the server key from path or, when the file does
// not exist, writes a new random one there (mode 0600): the laptop's.
func LoadOrCreateAWSKeys(path string) (*AWSKeys, error) {
	k, err := LoadAWSKeys(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(s + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return NewAWSKeys([]byte(s))
}

// Secret returns the secret access key of akid.
func (k *AWSKeys) Secret(akid string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(akid))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)[:30])
}

// MintedAWSKey is a new AWS key: the secret is shown once, Record stored.
type MintedAWSKey struct {
	AccessKeyID     string
	SecretAccessKey string
	Record          Record
}

// New mints an AWS key for tenant.
func (k *AWSKeys) New(tenant string) MintedAWSKey {
	kid, _ := KeyID(NewToken(tenant).Token) // a fresh random key id
	akid := AccessKeyID(kid)
	return MintedAWSKey{AccessKeyID: akid, SecretAccessKey: k.Secret(akid),
		Record: Record{KeyID: kid, Hash: AWSKeyMarker(kid), Tenant: tenant}}
}

// PolicyLine renders the key as the YAML entry for the policy file.
func (m MintedAWSKey) PolicyLine() string {
	return fmt.Sprintf("{aws_access_key_id: %s}", m.AccessKeyID)
}

// VerifyAWS resolves an AWS access key id for a request from src: when the
// key is in the table (not revoked, before its rotation deadline) and the
// server key is configured, check is called with its secret access key and
// must report whether the request's signature is right. A failure is
// charged to the same budgets as a token's (Authenticate): a known key's
// to (source, key id) and the source's, an unknown key's to the source's.
// The result is CodeBadCredentials or CodeAuthThrottled; check was not
// called when the key is unknown, which the caller may tell apart.
func (r *Registry) VerifyAWS(_ context.Context, akid string, src netip.Addr, check func(secret string) bool) (*gateway.Tenant, error) {
	var (
		e     Entry
		known bool
	)
	if kid, ok := ParseAccessKeyID(akid); ok && r.awsKeys != nil {
		e, known = r.table.Load().get(kid)
		known = known && e.Record.IsAWSKey() && (e.Expires.IsZero() || r.now().Before(e.Expires))
	}
	return r.attempt(src, e, known, func() bool {
		return check(r.awsKeys.Secret(AccessKeyID(e.Record.KeyID)))
	}, "unknown access key id", "signature does not match")
}
