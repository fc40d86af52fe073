package store

import (
	"bytes"
	"testing"
)

// TestHasherMatchesHash: the batch Hasher gives Keyer.Hash's answer
// (lowercased, ASCII or not) and allocates nothing per address once warm.
func TestHasherMatchesHash(t *testing.T) {
	k, err := NewKeyer(bytes.Repeat([]byte("k"), MinKeyBytes))
	if err != nil {
		t.Fatal(err)
	}
	h := k.Hasher()
	var buf []byte
	for _, a := range []string{"ann@example.com", "Ann@Example.COM", "ÄNN@ÉXAMPLE.com", "", "x"} {
		buf = h.AppendHash(buf[:0], a)
		if string(buf) != k.Hash(a) || len(buf) != HashLen {
			t.Fatalf("%q: %q, Hash %q", a, buf, k.Hash(a))
		}
	}
	if n := testing.AllocsPerRun(100, func() { buf = h.AppendHash(buf[:0], "Bob@Example.net") }); n != 0 {
		t.Fatalf("%v allocations per address", n)
	}
}
