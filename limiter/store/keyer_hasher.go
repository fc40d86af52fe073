package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
)

// HashLen is the length of Keyer.Hash's result.
const HashLen = 22

// Hasher computes Keyer.Hash for many addresses without allocating per
// address (it reuses one HMAC state). It is not safe for concurrent use:
// make one per batch or goroutine.
type Hasher struct {
	m   hash.Hash
	in  []byte
	sum []byte
}

// Hasher returns a Hasher with k's key.
func (k *Keyer) Hasher() *Hasher {
	return &Hasher{m: hmac.New(sha256.New, k.key), sum: make([]byte, 0, sha256.Size)}
}

// AppendHash appends Keyer.Hash(addr) to dst.
func (h *Hasher) AppendHash(dst []byte, addr string) []byte {
	h.in = h.in[:0]
	for i := 0; i < len(addr); i++ { // ASCII lowercase, as strings.ToLower
		c := addr[i]
		if c >= 0x80 {
			h.in = append(h.in[:0], strings.ToLower(addr)...)
			break
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.in = append(h.in, c)
	}
	h.m.Reset()
	h.m.Write(h.in)
	h.sum = h.m.Sum(h.sum[:0])
	return base64.RawURLEncoding.AppendEncode(dst, h.sum[:16])
}
