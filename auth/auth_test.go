package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

func TestNewTokenShape(t *testing.T) {
	m := NewToken("billing")
	if !strings.HasPrefix(m.Token, "sg_") {
		t.Fatalf("token %q lacks prefix", m.Token)
	}
	kid, ok := KeyID(m.Token)
	if !ok || kid != m.Record.KeyID || !ValidKeyID(kid) {
		t.Fatalf("KeyID(%q) = %q, %v; record has %q", m.Token, kid, ok, m.Record.KeyID)
	}
	if !m.Record.Hash.Matches(m.Token) || m.Record.Hash.Matches(m.Token+"x") {
		t.Fatal("hash does not match its own token, or matches another")
	}
	h, err := ParseHash(m.Record.Hash.String())
	if err != nil || h != m.Record.Hash {
		t.Fatalf("ParseHash round trip: %v", err)
	}
	// at least 128 bits of secret: 24 bytes, base32
	secret := m.Token[len("sg_")+len(kid)+1:]
	if len(secret)*5 < 128 {
		t.Fatalf("secret has %d bits", len(secret)*5)
	}
	if NewToken("billing").Token == m.Token {
		t.Fatal("two tokens are equal")
	}
	if strings.Contains(m.Record.PolicyLine(), m.Token) {
		t.Fatal("policy line contains the token")
	}
}

func TestKeyIDRejects(t *testing.T) {
	for _, tc := range []struct{ name, tok string }{
		{"empty", ""},
		{"no prefix", "xx_abcdefghij_" + strings.Repeat("a", 39)},
		{"short", "sg_abc_def"},
		{"no separator", "sg_abcdefghijk" + strings.Repeat("a", 39)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := KeyID(tc.tok); ok {
				t.Fatalf("KeyID(%q) accepted", tc.tok)
			}
		})
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRegistryAuthenticate(t *testing.T) {
	billing := &gateway.Tenant{ID: "billing"}
	other := &gateway.Tenant{ID: "other"}
	mb, mo := NewToken("billing"), NewToken("other")
	live, dead := NewToken("billing"), NewToken("billing") // rotated: deadlines ahead and passed
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	r := NewRegistry(RegistryOptions{
		Entries: []Entry{
			{Record: mb.Record, Tenant: billing}, {Record: mo.Record, Tenant: other},
			{Record: live.Record, Tenant: billing, Expires: c.t.Add(100 * time.Hour)},
			{Record: dead.Record, Tenant: billing, Expires: c.t.Add(time.Hour)},
		},
		FailureBurst: 3, FailureRate: 1, Now: c.now,
	})
	src := netip.MustParseAddr("192.0.2.7")
	ctx := context.Background()

	tests := []struct {
		name, user, token string
		want              *gateway.Tenant
		code              gateway.Code
	}{
		{"bearer ok", "", mb.Token, billing, 0},
		{"smtp user ok", "billing", mb.Token, billing, 0},
		{"wrong user", "other", mb.Token, nil, gateway.CodeBadCredentials},
		{"other tenant", "", mo.Token, other, 0},
		{"tampered secret", "", tamper(mb.Token), nil, gateway.CodeBadCredentials},
		{"unknown key id", "", NewToken("x").Token, nil, gateway.CodeBadCredentials},
		{"rotated, before its deadline", "", live.Token, billing, 0},
		{"rotated, past its deadline", "", dead.Token, nil, gateway.CodeBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = c.t.Add(time.Hour) // refill the failure budget between cases
			got, err := r.Authenticate(ctx, tc.user, tc.token, src)
			if tc.want != nil {
				if err != nil || got != tc.want {
					t.Fatalf("got %v, %v; want %s", got, err, tc.want.ID)
				}
				return
			}
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Code != tc.code {
				t.Fatalf("err = %v; want code %s", err, tc.code)
			}
		})
	}
}

func TestRegistryThrottlesFailures(t *testing.T) {
	good, other := NewToken("t"), NewToken("u")
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	r := NewRegistry(RegistryOptions{
		Entries: []Entry{
			{Record: good.Record, Tenant: &gateway.Tenant{ID: "t"}},
			{Record: other.Record, Tenant: &gateway.Tenant{ID: "u"}},
		},
		FailureBurst: 3, FailureRate: 1, Now: c.now,
	})
	ctx := context.Background()
	attacker := netip.MustParseAddr("2001:db8::1")
	neighbour := netip.MustParseAddr("2001:db8::2") // same /64
	bystander := netip.MustParseAddr("198.51.100.1")
	code := func(tok string, src netip.Addr) gateway.Code {
		t.Helper()
		_, err := r.Authenticate(ctx, "", tok, src)
		if err == nil {
			return -1
		}
		ge := gateway.AsError(err)
		if ge.Code == gateway.CodeAuthThrottled && ge.RetryAfter <= 0 {
			t.Fatalf("auth_throttled without retry-after: %v", err)
		}
		return ge.Code
	}
	// Guessing key ids: the source's budget.
	for i := 0; i < 3; i++ {
		if got := code("sg_wrong", attacker); got != gateway.CodeBadCredentials {
			t.Fatalf("attempt %d: %v", i, got)
		}
	}
	// Now an unknown key id is refused from that /64...
	if got := code(NewToken("x").Token, neighbour); got != gateway.CodeAuthThrottled {
		t.Fatalf("unknown key id after the source's burst: %v; want auth_throttled", got)
	}
	// ...but a correct token is not (its key id is known), from anywhere.
	if got := code(good.Token, neighbour); got != -1 {
		t.Fatalf("correct token after the source's burst: %v", got)
	}
	// Guessing t's secret: answered throttled (the source's budget is
	// spent, so the answer does not tell that the key id exists), and
	// charged to t's budget at this /64.
	for i := 0; i < 3; i++ {
		if got := code(tamper(good.Token), attacker); got != gateway.CodeAuthThrottled {
			t.Fatalf("guess %d: %v", i, got)
		}
	}
	// t's budget at this /64 is spent: even its correct token waits...
	if got := code(good.Token, neighbour); got != gateway.CodeAuthThrottled {
		t.Fatalf("t's correct token after t's burst: %v; want auth_throttled", got)
	}
	// ...but not u's, and not t's from elsewhere.
	if got := code(other.Token, neighbour); got != -1 {
		t.Fatalf("u's correct token: %v", got)
	}
	if got := code(good.Token, bystander); got != -1 {
		t.Fatalf("bystander refused: %v", got)
	}
	c.t = c.t.Add(2 * time.Second)
	if got := code(good.Token, attacker); got != -1 {
		t.Fatalf("after refill: %v", got)
	}
}

func TestRegistryKeyIDBudgetAloneAnswersBadCredentials(t *testing.T) {
	good := NewToken("t")
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	r := NewRegistry(RegistryOptions{Entries: []Entry{{Record: good.Record, Tenant: &gateway.Tenant{ID: "t"}}},
		FailureBurst: 2, FailureRate: 1, Now: c.now})
	src := netip.MustParseAddr("192.0.2.1")
	var codes []gateway.Code
	for i := 0; i < 4; i++ {
		_, err := r.Authenticate(context.Background(), "", tamper(good.Token), src)
		codes = append(codes, gateway.AsError(err).Code)
	}
	want := []gateway.Code{gateway.CodeBadCredentials, gateway.CodeBadCredentials, gateway.CodeAuthThrottled, gateway.CodeAuthThrottled}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v; want %v", codes, want)
		}
	}
}

func TestRegistryReplaceRevokes(t *testing.T) {
	m := NewToken("t")
	r := NewRegistry(RegistryOptions{Entries: []Entry{{Record: m.Record, Tenant: &gateway.Tenant{ID: "t"}}}})
	src := netip.MustParseAddr("127.0.0.1")
	if _, err := r.Authenticate(context.Background(), "", m.Token, src); err != nil {
		t.Fatal(err)
	}
	r.Replace(nil)
	if _, err := r.Authenticate(context.Background(), "", m.Token, src); gateway.AsError(err).Code != gateway.CodeBadCredentials {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestThrottleTableBounded(t *testing.T) {
	r := NewRegistry(RegistryOptions{MaxSources: 10})
	for i := 0; i < 100; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		_, _ = r.Authenticate(context.Background(), "", "bad", a)
	}
	if n := len(r.failures); n > 10 {
		t.Fatalf("throttle table has %d entries, bound is 10", n)
	}
}

func TestThrottleTableBoundedWithKeyIDs(t *testing.T) {
	var entries []Entry
	var toks []string
	for i := 0; i < 20; i++ {
		m := NewToken("t")
		entries = append(entries, Entry{Record: m.Record, Tenant: &gateway.Tenant{ID: "t"}})
		toks = append(toks, tamper(m.Token))
	}
	r := NewRegistry(RegistryOptions{Entries: entries, MaxSources: 50})
	for i := 0; i < 100; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		for _, tok := range toks {
			_, _ = r.Authenticate(context.Background(), "", tok, a)
		}
	}
	if n := len(r.failures); n > 50 {
		t.Fatalf("throttle table has %d entries, bound is 50", n)
	}
	for k := range r.failures {
		if k.kid != "" && !ValidKeyID(k.kid) {
			t.Fatalf("table key %q is not a key id", k.kid)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	m := NewToken("t")
	r := NewRegistry(RegistryOptions{Entries: []Entry{{Record: m.Record, Tenant: &gateway.Tenant{ID: "t"}}}})
	src := netip.MustParseAddr("127.0.0.1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Authenticate(ctx, "", m.Token, src); err != nil {
			b.Fatal(err)
		}
	}
}

// tamper changes the token's last character (it is "a" for a quarter of
// tokens, so replacing it with a fixed "a" would sometimes change nothing).
func tamper(tok string) string {
	last := byte('a')
	if tok[len(tok)-1] == 'a' {
		last = 'b'
	}
	return tok[:len(tok)-1] + string(last)
}

// TestGuessingBoundPerHour measures, with the default budgets and a clock
// advanced 100 ms per attempt, what one source guessing for an hour gets:
// verified wrong secrets of a known key id, and unknown key ids tried; and
// checks that another tenant's correct token passes all along.
func TestGuessingBoundPerHour(t *testing.T) {
	victim, other := NewToken("victim"), NewToken("other")
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	r := NewRegistry(RegistryOptions{Entries: []Entry{
		{Record: victim.Record, Tenant: &gateway.Tenant{ID: "victim"}},
		{Record: other.Record, Tenant: &gateway.Tenant{ID: "other"}},
	}, Now: c.now})
	src := netip.MustParseAddr("203.0.113.9")
	ctx := context.Background()
	verifiedSecrets, triedKeyIDs := 0, 0
	end := c.t.Add(time.Hour)
	for i := 0; c.t.Before(end); i++ {
		c.t = c.t.Add(100 * time.Millisecond)
		tok := tamper(victim.Token)
		if i%2 == 1 {
			tok = NewToken("x").Token
		}
		// A guess of a known key id's secret is verified unless that key
		// id's budget at this source is spent (whatever the answer says).
		if i%2 == 0 && !r.throttled(throttleKey{src: gateway.SourceKey(src), kid: victim.Record.KeyID}) {
			verifiedSecrets++
		}
		_, err := r.Authenticate(ctx, "", tok, src)
		if i%2 == 1 && gateway.AsError(err).Code == gateway.CodeBadCredentials {
			triedKeyIDs++
		}
		if i%600 == 0 {
			if _, err := r.Authenticate(ctx, "", other.Token, src); err != nil {
				t.Fatalf("another tenant's correct token refused at attempt %d: %v", i, err)
			}
		}
	}
	t.Logf("one source, one hour, 36000 attempts: %d wrong secrets of a known key id verified, %d unknown key ids looked up", verifiedSecrets, triedKeyIDs)
	// Burst 10, then one per 6 s: at most 10 + 600 in the hour each.
	if verifiedSecrets > 610 || triedKeyIDs > 610 {
		t.Fatalf("bound exceeded: %d, %d (want <= 610 each)", verifiedSecrets, triedKeyIDs)
	}
}

// TestRegistryPatch: Patch sets and removes entries in place of a whole
// Replace, through the overlay and after it is folded into the base.
func TestRegistryPatch(t *testing.T) {
	ten := &gateway.Tenant{ID: "a"}
	mint := func() (Minted, Entry) { m := NewToken("a"); return m, Entry{Record: m.Record, Tenant: ten} }
	m1, e1 := mint()
	r := NewRegistry(RegistryOptions{Entries: []Entry{e1}})
	ok := func(m Minted) bool {
		_, err := r.Authenticate(context.Background(), "", m.Token, netip.MustParseAddr("192.0.2.1"))
		return err == nil
	}
	var minted []Minted
	for i := range maxOverlay + 10 { // past the fold
		m, e := mint()
		r.Patch([]Entry{e}, nil)
		minted = append(minted, m)
		if i == 5 {
			r.Patch(nil, []string{m1.Record.KeyID})
		}
	}
	if ok(m1) {
		t.Error("a removed token still authenticates")
	}
	for i, m := range minted {
		if !ok(m) {
			t.Fatalf("patched token %d does not authenticate", i)
		}
	}
	r.Patch(nil, []string{minted[3].Record.KeyID})
	if ok(minted[3]) || !ok(minted[4]) {
		t.Error("remove after the fold")
	}
	r.Replace([]Entry{e1})
	if !ok(m1) || ok(minted[4]) {
		t.Error("Replace after patches")
	}
}

// BenchmarkAuthenticateTableSize: the cost of authenticating a token with
// 10 and with 100,000 tokens in the table (and patches in the overlay):
// what the size of the tenant table adds to every message.
//
//	go test -run '^$' -bench AuthenticateTableSize ./auth
func BenchmarkAuthenticateTableSize(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			ten := &gateway.Tenant{ID: "a"}
			entries := make([]Entry, n)
			toks := make([]string, n)
			for i := range entries {
				m := NewToken("a")
				entries[i], toks[i] = Entry{Record: m.Record, Tenant: ten}, m.Token
			}
			r := NewRegistry(RegistryOptions{Entries: entries})
			for i := range 100 { // a live table has patches
				r.Patch([]Entry{entries[i%n]}, nil)
			}
			src := netip.MustParseAddr("192.0.2.1")
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := r.Authenticate(ctx, "", toks[(i*7919)%n], src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
