package auth

import (
	"context"
	"net/netip"
	"testing"

	"github.com/sesgate/sesgate/gateway"
)

// TestAWSKeyDerivation: the secret is 40 characters, a function of the
// server key and the access key id only, so another server key (a
// rotation) yields another secret for every key.
func TestAWSKeyDerivation(t *testing.T) {
	k1, err := NewAWSKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := NewAWSKeys([]byte("0123456789abcdef0123456789abcdeX"))
	if _, err := NewAWSKeys([]byte("short")); err == nil {
		t.Fatal("a 5-byte server key was accepted")
	}
	m := k1.New("a")
	if len(m.SecretAccessKey) != AWSKeySecretLen || m.SecretAccessKey != k1.Secret(m.AccessKeyID) || k2.Secret(m.AccessKeyID) == m.SecretAccessKey {
		t.Fatalf("secret %q", m.SecretAccessKey)
	}
	kid, ok := ParseAccessKeyID(m.AccessKeyID)
	if !ok || kid != m.Record.KeyID || len(m.AccessKeyID) != 16 || !m.Record.IsAWSKey() {
		t.Fatalf("access key id %q -> %q %v", m.AccessKeyID, kid, ok)
	}
	if NewToken("a").Record.IsAWSKey() {
		t.Fatal("a token record reads as an AWS key")
	}
	for _, bad := range []string{"", "AKIAIOSFODNN7EXAMPLE", "SGAWSK" + "abcdefghij", "SGAWSKABCDEFGHI"} {
		if _, ok := ParseAccessKeyID(bad); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// TestVerifyAWS: a known key calls check with its derived secret; an
// unknown, revoked or token key id never calls it; failures are throttled
// on the token's budgets, and a token's record is no AWS key.
func TestVerifyAWS(t *testing.T) {
	keys, _ := NewAWSKeys([]byte("0123456789abcdef0123456789abcdef"))
	ten := &gateway.Tenant{ID: "a"}
	m := keys.New("a")
	tok := NewToken("a")
	r := NewRegistry(RegistryOptions{AWSKeys: keys, Entries: []Entry{{Record: m.Record, Tenant: ten}, {Record: tok.Record, Tenant: ten}}})
	src := netip.MustParseAddr("192.0.2.1")
	ctx := context.Background()
	right := func(s string) bool { return s == m.SecretAccessKey }
	if got, err := r.VerifyAWS(ctx, m.AccessKeyID, src, right); err != nil || got != ten {
		t.Fatalf("right secret: %v %v", got, err)
	}
	called := false
	never := func(string) bool { called = true; return true }
	for _, akid := range []string{"SGAWSKAAAAAAAAAA", AccessKeyID(tok.Record.KeyID), ""} {
		if _, err := r.VerifyAWS(ctx, akid, src, never); gateway.AsError(err).Code != gateway.CodeBadCredentials || called {
			t.Fatalf("%q: %v, check called %v", akid, err, called)
		}
	}
	if _, ok := r.Authenticate(ctx, "", AccessKeyID(m.Record.KeyID), src); ok == nil {
		t.Fatal("the access key id authenticated as a token")
	}
	other := netip.MustParseAddr("192.0.2.2")
	wrong := func(string) bool { return false }
	codes := map[gateway.Code]int{}
	for range 12 {
		_, err := r.VerifyAWS(ctx, m.AccessKeyID, other, wrong)
		codes[gateway.AsError(err).Code]++
	}
	if codes[gateway.CodeBadCredentials] != 10 || codes[gateway.CodeAuthThrottled] != 2 {
		t.Fatalf("12 wrong signatures: %v", codes)
	}
	if _, err := r.VerifyAWS(ctx, m.AccessKeyID, src, right); err != nil {
		t.Fatalf("right secret from another source after the throttle: %v", err)
	}
	r.Replace([]Entry{{Record: tok.Record, Tenant: ten}}) // revoked
	if _, err := r.VerifyAWS(ctx, m.AccessKeyID, src, never); err == nil || called {
		t.Fatalf("revoked key: %v, check called %v", err, called)
	}
	if _, err := NewRegistry(RegistryOptions{Entries: []Entry{{Record: m.Record, Tenant: ten}}}).VerifyAWS(ctx, m.AccessKeyID, src, never); err == nil || called {
		t.Fatalf("no server key: %v", err)
	}
}
