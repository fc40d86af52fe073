package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestPreLimitCached: once the in-process pre-limiter refuses a tenant
// whose rate counts messages, CheckTenant (called before a message is read)
// refuses it too until a token is due, without the store; a rate per
// recipient is not cached, since a smaller message may pass sooner.
func TestPreLimitCached(t *testing.T) {
	tests := []struct {
		name       string
		perRcpt    bool
		wantCached bool
	}{
		{"rate per message", false, true},
		{"rate per recipient", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1_800_000_000, 0)}
			fs := &faultStore{}
			fs.set(store.Decision{Admitted: true}, nil)
			s, err := NewShared(SharedOptions{Store: fs, Now: c.now})
			if err != nil {
				t.Fatal(err)
			}
			ten := &gateway.Tenant{ID: "t", Limits: gateway.Limits{Rate: 2, Burst: 1, RatePerRecipient: tt.perRcpt}}
			if _, err := s.Admit(context.Background(), ten, []string{"a@x.example"}); err != nil {
				t.Fatalf("first message: %v", err)
			}
			_, err = s.Admit(context.Background(), ten, []string{"b@x.example"})
			if code(err) != "rate_limited" || fs.calls != 1 {
				t.Fatalf("second message: %s after %d store calls; want rate_limited by the pre-limiter", code(err), fs.calls)
			}
			err = s.CheckTenant(ten)
			if got := code(err) == "rate_limited"; got != tt.wantCached {
				t.Fatalf("CheckTenant right after: %s; cached %v, want %v", code(err), got, tt.wantCached)
			}
			if tt.wantCached {
				if ra := gateway.AsError(err).RetryAfter; ra <= 0 || ra > 500*time.Millisecond {
					t.Errorf("RetryAfter %v, want (0, 500ms]", ra)
				}
			}
			c.t = c.t.Add(500 * time.Millisecond) // a token is due: 2 per second
			if err := s.CheckTenant(ten); err != nil {
				t.Fatalf("CheckTenant once a token is due: %v", err)
			}
			if _, err := s.Admit(context.Background(), ten, []string{"c@x.example"}); err != nil || fs.calls != 2 {
				t.Fatalf("message once a token is due: %v after %d store calls", err, fs.calls)
			}
		})
	}
}

// TestPreLimitRefund: a message the store refuses gives its pre-limiter
// token back, so the next message is judged by the store, not held back
// locally for mail that was never sent.
func TestPreLimitRefund(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	fs := &faultStore{}
	s, err := NewShared(SharedOptions{Store: fs, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ten := &gateway.Tenant{ID: "t", Limits: gateway.Limits{Rate: 0.1, Burst: 1}}
	// The store refuses one message for a reason that holds for it alone.
	fs.set(store.Decision{Reason: store.ReasonFirstHour, RetryAfter: time.Minute}, nil)
	if _, err := s.Admit(context.Background(), ten, []string{"new@x.example"}); code(err) != "first_contact_limited" {
		t.Fatalf("first message: %s", code(err))
	}
	fs.set(store.Decision{Admitted: true}, nil)
	if _, err := s.Admit(context.Background(), ten, []string{"known@x.example"}); err != nil || fs.calls != 2 {
		t.Fatalf("next message at the same instant: %v after %d store calls; want admitted by the store", err, fs.calls)
	}
	// Admitted messages keep their token: the next one is shed locally.
	if _, err := s.Admit(context.Background(), ten, []string{"known@x.example"}); code(err) != "rate_limited" || fs.calls != 2 {
		t.Fatalf("third message: %s after %d store calls; want rate_limited by the pre-limiter", code(err), fs.calls)
	}
}

// TestPeekRate: PeekRate refuses a tenant whose pre-limiter has less than
// one token, without taking one and without the store, for rates per
// recipient too (which CheckTenant does not cache); it passes a tenant
// not seen yet, one with room, and one whose limits were reloaded.
func TestPeekRate(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	fs := &faultStore{}
	fs.set(store.Decision{Admitted: true}, nil)
	s, err := NewShared(SharedOptions{Store: fs, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ten := &gateway.Tenant{ID: "t", Limits: gateway.Limits{Rate: 2, Burst: 2, RatePerRecipient: true, MaxRecipients: 2}}
	if err := s.PeekRate(ten); err != nil {
		t.Fatalf("tenant not seen yet: %v", err)
	}
	if _, err := s.Admit(context.Background(), ten, []string{"a@x.example"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PeekRate(ten); err != nil {
		t.Fatalf("one token left: %v", err)
	}
	if _, err := s.Admit(context.Background(), ten, []string{"b@x.example"}); err != nil {
		t.Fatal(err)
	}
	err = s.PeekRate(ten)
	if code(err) != "rate_limited" || fs.calls != 2 {
		t.Fatalf("no token left: %s after %d store calls; want rate_limited without the store", code(err), fs.calls)
	}
	if ra := gateway.AsError(err).RetryAfter; ra <= 0 || ra > 500*time.Millisecond {
		t.Errorf("RetryAfter %v, want (0, 500ms]", ra)
	}
	if err := s.PeekRate(ten); code(err) != "rate_limited" {
		t.Fatalf("peeking took nothing back: %s", code(err))
	}
	c.t = c.t.Add(500 * time.Millisecond)
	if err := s.PeekRate(ten); err != nil {
		t.Fatalf("once a token is due: %v", err)
	}
	c.t = c.t.Add(-500 * time.Millisecond)
	reloaded := &gateway.Tenant{ID: "t", Limits: gateway.Limits{Rate: 100, Burst: 100}}
	if err := s.PeekRate(reloaded); err != nil {
		t.Fatalf("limits reloaded: %v", err)
	}
	if st := s.Stats(); st.PreLimited != 2 {
		t.Errorf("PreLimited %d, want 2", st.PreLimited)
	}
}
