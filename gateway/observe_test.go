package gateway

import (
	"context"
	"testing"
)

// TestObserve: Options.Observe is called once per Submit with the tenant
// and nil (sent) or the refusal.
func TestObserve(t *testing.T) {
	ten := &Tenant{ID: "t", Identities: []string{"@example.com"}}
	msg := []byte("From: a@example.com\r\n\r\nhi\r\n")
	tests := []struct {
		name    string
		tenant  *Tenant
		limiter Limiter
		want    string // "" sent, else the code
	}{
		{"sent", ten, nil, ""},
		{"refused", ten, denyLimiter{}, "rate_limited"},
		{"unauthenticated", nil, nil, "auth_required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type call struct {
				tenant, code string
			}
			var calls []call
			p := NewPipeline(Options{Sink: &recordingSink{}, Limiter: tc.limiter, Observe: func(tenant string, err *Error) {
				c := call{tenant: tenant}
				if err != nil {
					c.code = err.Code.String()
				}
				calls = append(calls, c)
			}})
			env := &Envelope{Tenant: tc.tenant, From: "a@example.com", Recipients: []string{"x@example.org"}, Data: msg}
			p.Submit(context.Background(), env)
			wantTenant := ""
			if tc.tenant != nil {
				wantTenant = tc.tenant.ID
			}
			if len(calls) != 1 || calls[0] != (call{wantTenant, tc.want}) {
				t.Fatalf("calls %+v, want one {%q %q}", calls, wantTenant, tc.want)
			}
		})
	}
}
