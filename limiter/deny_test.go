package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestDeny: a refusal set from outside (a breaker trip) is answered without
// a store call until it ends or is dropped, and never for longer than
// MaxCache.
func TestDeny(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	fs := &faultStore{decision: store.Decision{Admitted: true}}
	s, err := NewShared(SharedOptions{Store: fs, Now: c.now, MaxCache: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ten := &gateway.Tenant{ID: "t"}
	ge := &gateway.Error{Code: gateway.CodeBreakerOpen, Msg: "paused", RetryAfter: time.Minute}
	steps := []struct {
		name  string
		do    func()
		want  string
		calls int // store calls so far
	}{
		{name: "denied", do: func() { s.Deny("t", ge, c.t.Add(time.Minute)) }, want: "breaker_open", calls: 0},
		{name: "capped at MaxCache", do: func() { c.t = c.t.Add(31 * time.Second) }, want: "ok", calls: 1},
		{name: "denied again", do: func() { s.Deny("t", ge, c.t.Add(10*time.Second)) }, want: "breaker_open", calls: 1},
		{name: "undenied", do: func() { s.Undeny("t") }, want: "ok", calls: 2},
		{name: "past until is ignored", do: func() { s.Deny("t", ge, c.t.Add(-time.Second)) }, want: "ok", calls: 3},
	}
	for _, st := range steps {
		st.do()
		_, err := s.Admit(context.Background(), ten, []string{"a@x.example"})
		if code(err) != st.want || fs.calls != st.calls {
			t.Fatalf("%s: %s after %d store calls; want %s after %d", st.name, code(err), fs.calls, st.want, st.calls)
		}
	}
	if got := s.Tenants(); len(got) != 1 || got[0] != "t" {
		t.Fatalf("tenants %v", got)
	}
}
