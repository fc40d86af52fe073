package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

const (
	tokenPrefix = "sg_"
	keyIDBytes  = 6  // 48 bits: a public locator, not a secret
	secretBytes = 24 // 192 bits
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// keyIDLen and secretLen are the encoded lengths.
var (
	keyIDLen  = b32.EncodedLen(keyIDBytes)
	secretLen = b32.EncodedLen(secretBytes)
)

// Hash is the SHA-256 of a whole token.
type Hash [sha256.Size]byte

// String returns the hash in hex, as written in the policy file.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hex SHA-256.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, errors.New("want 64 hex characters (SHA-256)")
	}
	copy(h[:], b)
	return h, nil
}

// Minted is a new token: Token is shown once, Record is what gets stored.
type Minted struct {
	Token  string
	Record Record
}

// Record is the stored form of a token: its key id and hash, never the token.
type Record struct {
	KeyID  string
	Hash   Hash
	Tenant string
}

// NewToken mints a token for tenant from crypto/rand.
func NewToken(tenant string) Minted {
	var k [keyIDBytes]byte
	var s [secretBytes]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (Go 1.24+)
	_, _ = rand.Read(s[:])
	tok := tokenPrefix + b32.EncodeToString(k[:]) + "_" + b32.EncodeToString(s[:])
	return Minted{Token: tok, Record: Record{KeyID: b32.EncodeToString(k[:]), Hash: HashToken(tok), Tenant: tenant}}
}

// HashToken returns the stored hash of tok.
func HashToken(tok string) Hash { return sha256.Sum256([]byte(tok)) }

// KeyID returns the key id of a well-formed token.
func KeyID(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(rest) != keyIDLen+1+secretLen || rest[keyIDLen] != '_' {
		return "", false
	}
	return rest[:keyIDLen], true
}

// ValidKeyID reports whether s has the shape of a key id.
func ValidKeyID(s string) bool {
	if len(s) != keyIDLen {
		return false
	}
	_, err := b32.DecodeString(s)
	return err == nil
}

// Matches reports in constant time whether tok hashes to h.
func (h Hash) Matches(tok string) bool {
	got := HashToken(tok)
	return subtle.ConstantTimeCompare(got[:], h[:]) == 1
}

// PolicyLine renders a record as the YAML entry for the policy file.
func (r Record) PolicyLine() string {
	return fmt.Sprintf("{key_id: %s, sha256: %s}", r.KeyID, r.Hash)
}
