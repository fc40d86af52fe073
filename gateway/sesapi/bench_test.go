package sesapi

import (
	"testing"
	"time"
)

// BenchmarkSigV4Verify is what checking one SDK-signed SendEmail request
// costs (parse, scope, body hash, canonical request, key derivation, HMAC).
func BenchmarkSigV4Verify(b *testing.B) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	body := make([]byte, 4096)
	r := signed(b, "POST", "/v2/email/outbound-emails", body, now, map[string]string{"Content-Type": "application/json"})
	b.ReportAllocs()
	for b.Loop() {
		if f := verifyReq(r, body, now, testSecret); f != nil {
			b.Fatal(f)
		}
	}
}
