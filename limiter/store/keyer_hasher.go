package store

import (
	"crypto/hmac"
	"crypto/sha256"
)

// HashLen is the length of Keyer.Hash's result.
const HashLen = 22

// Hasher computes Keyer.Hash for many addresses without allocating per
// address (it holds one HMAC state). It is not safe for concurrent use:
// make one per batch or goroutine.
type Hasher struct{ h keyHasher }

// Hasher returns a Hasher with k's key.
func (k *Keyer) Hasher() *Hasher {
	return &Hasher{h: keyHasher{mac: hmac.New(sha256.New, k.key)}}
}

// AppendHash appends Keyer.Hash(addr) to dst.
func (h *Hasher) AppendHash(dst []byte, addr string) []byte { return h.h.appendHash(dst, addr) }
