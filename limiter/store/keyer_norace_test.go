//go:build !race

package store

import "testing"

// TestKeyerHashAllocs counts: one allocation per Hash (the returned
// string), not a fresh HMAC per call.
func TestKeyerHashAllocs(t *testing.T) {
	k, err := NewKeyer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	k.Hash("warm@up.example")
	if n := testing.AllocsPerRun(200, func() { k.Hash("Known42@D7.example") }); n > 1 {
		t.Errorf("Hash allocates %.1f times per call, want <= 1", n)
	}
}
