package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

func TestLocalAdmit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLocal(func() time.Time { return now })
	ten := &gateway.Tenant{ID: "a", Limits: gateway.Limits{Rate: 2, Burst: 3}}
	for i := 0; i < 3; i++ {
		if err := admit(l, ten); err != nil {
			t.Fatalf("message %d of burst refused: %v", i+1, err)
		}
	}
	err := admit(l, ten)
	ge := gateway.AsError(err)
	if ge == nil || ge.Code != gateway.CodeRateLimited {
		t.Fatalf("4th message: %v; want rate_limited", err)
	}
	if ge.RetryAfter != 500*time.Millisecond {
		t.Fatalf("retry after %v; want 500ms at 2/s", ge.RetryAfter)
	}
	// A refusal consumes nothing: after exactly the advertised wait, one fits.
	now = now.Add(ge.RetryAfter)
	if err := admit(l, ten); err != nil {
		t.Fatalf("after retry-after: %v", err)
	}
	if err := admit(l, ten); err == nil {
		t.Fatal("second message right after refill admitted")
	}
	// Tenants are independent.
	if err := admit(l, &gateway.Tenant{ID: "b", Limits: gateway.Limits{Rate: 1}}); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
	// No rate: unlimited.
	for i := 0; i < 1000; i++ {
		if err := admit(l, &gateway.Tenant{ID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLocalLimitChange(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLocal(func() time.Time { return now })
	if err := admit(l, &gateway.Tenant{ID: "a", Limits: gateway.Limits{Rate: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := admit(l, &gateway.Tenant{ID: "a", Limits: gateway.Limits{Rate: 1}}); err == nil {
		t.Fatal("over limit admitted")
	}
	// A reload raising the limit applies at once.
	if err := admit(l, &gateway.Tenant{ID: "a", Limits: gateway.Limits{Rate: 10, Burst: 10}}); err != nil {
		t.Fatalf("after raise: %v", err)
	}
}

func admit(l *Local, t *gateway.Tenant) error {
	_, err := l.Admit(context.Background(), t, []string{"a@example.org"})
	if err == nil {
		return nil
	}
	return err
}
