package gateway

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// lookupAuth is an Authenticator with a CredentialLookup whose table the
// test changes, as a reload or a revocation does.
type lookupAuth struct{ table map[string]*Tenant } // token -> tenant

func (a *lookupAuth) Authenticate(_ context.Context, _, token string, _ netip.Addr) (*Tenant, error) {
	if t := a.table[token]; t != nil {
		return t, nil
	}
	return nil, Errorf(CodeBadCredentials, "invalid credentials")
}

func (a *lookupAuth) CredentialRef(token string) string { return "ref-" + token }

func (a *lookupAuth) Lookup(ref string) *Tenant { return a.table[ref[len("ref-"):]] }

// TestRecheck: a login is resolved again against the current table: the
// new tenant after a change, CodeBadCredentials once revoked or moved to
// another tenant, CodeSourceNotAllowed once the networks exclude the client.
func TestRecheck(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.1")
	old := &Tenant{ID: "acme", Identities: []string{"@a.example"}}
	a := &lookupAuth{table: map[string]*Tenant{"tok": old}}
	p := NewPipeline(Options{Auth: a, Sink: &recordingSink{}})
	l, err := p.Login(context.Background(), "acme", "tok", src)
	if err != nil || l.Tenant != old {
		t.Fatalf("Login: %v, %v", l, err)
	}
	if got, err := p.Recheck(l); err != nil || got != old {
		t.Fatalf("unchanged: %v, %v", got, err)
	}
	changed := &Tenant{ID: "acme", Identities: []string{"@b.example"}, Frozen: true}
	a.table["tok"] = changed
	if got, err := p.Recheck(l); err != nil || got != changed {
		t.Fatalf("after a reload: %v, %v; want the new tenant", got, err)
	}
	a.table["tok"] = &Tenant{ID: "acme", SourceNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if _, err := p.Recheck(l); AsError(err).Code != CodeSourceNotAllowed {
		t.Fatalf("networks changed: %v", err)
	}
	a.table["tok"] = &Tenant{ID: "other"}
	if _, err := p.Recheck(l); AsError(err).Code != CodeBadCredentials {
		t.Fatalf("token moved to another tenant: %v", err)
	}
	delete(a.table, "tok")
	if _, err := p.Recheck(l); AsError(err).Code != CodeBadCredentials {
		t.Fatalf("revoked: %v", err)
	}
	if p.TenantOf("tok") != nil || p.TenantOf("") != nil {
		t.Fatal("TenantOf a revoked or empty token")
	}

	// Without a CredentialLookup, the login's tenant stands.
	q := NewPipeline(Options{Auth: fixedAuth{old}, Sink: &recordingSink{}})
	l, _ = q.Login(context.Background(), "", "x", src)
	if got, err := q.Recheck(l); err != nil || got != old || q.TenantOf("x") != nil {
		t.Fatalf("without a lookup: %v, %v", got, err)
	}
}

type fixedAuth struct{ t *Tenant }

func (f fixedAuth) Authenticate(context.Context, string, string, netip.Addr) (*Tenant, error) {
	return f.t, nil
}

// TestRefusedCountsOnce: a front end's refusal is counted by Refused, one
// that Submit returned is not counted again; the error keeps its code.
func TestRefusedCountsOnce(t *testing.T) {
	ten := &Tenant{ID: "t", Identities: []string{"@example.com"}}
	var calls []string
	p := NewPipeline(Options{Sink: &recordingSink{}, Limiter: denyLimiter{}, Observe: func(tenant string, err *Error) {
		calls = append(calls, tenant+"/"+err.Code.String())
	}})
	p.Refused(ten, Errorf(CodeFrozen, "frozen"))
	p.Refused(nil, errors.New("plain"))
	_, err := p.Submit(context.Background(), &Envelope{Tenant: ten, From: "a@example.com", Recipients: []string{"x@example.org"}, Data: []byte("From: a@example.com\r\n\r\nhi\r\n")})
	p.Refused(ten, err)
	p.Refused(ten, nil)
	want := []string{"t/tenant_frozen", "/internal_error", "t/rate_limited"}
	if len(calls) != len(want) {
		t.Fatalf("observed %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("observed %v, want %v", calls, want)
		}
	}
	if ge := AsError(err); ge.Code != CodeRateLimited || ge.RetryAfter == 0 {
		t.Fatalf("Submit's refusal lost its fields: %+v", ge)
	}
	var nilP *Pipeline
	nilP.Refused(ten, err) // a front end without a pipeline (tests)
	if nilP.Refusals() != nil {
		t.Fatal("nil pipeline has a throttle")
	}
}
