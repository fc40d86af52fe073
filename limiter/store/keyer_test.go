package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func refHash(key []byte, addr string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.ToLower(addr)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// TestKeyerHashMatchesDefinition checks Hash against its documented
// definition (base64url(HMAC-SHA256(key, lowercase(addr)))[:22]) for ASCII,
// mixed-case and non-ASCII addresses, from many goroutines at once (the
// pooled HMAC state must never leak between calls).
func TestKeyerHashMatchesDefinition(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	k, err := NewKeyer(key)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{"", "a@b.example", "Bob.Smith@Example.COM", "ÉLODIE@Exämple.de", "ǅ@x.example", strings.Repeat("X", 300) + "@long.example"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				a := addrs[(g+i)%len(addrs)] + fmt.Sprint(i%3)
				if got, want := k.Hash(a), refHash(key, a); got != want {
					t.Errorf("Hash(%q) = %q, want %q", a, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if k.Hash("A@B.example") != k.Hash("a@b.EXAMPLE") {
		t.Error("Hash is not case-insensitive")
	}
}
