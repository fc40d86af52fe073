package storetest

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// BreakerStore is what the feedback wiring needs beyond store.Store; both
// stores implement it.
type BreakerStore interface {
	store.Store
	GetBreakerRecord(ctx context.Context, tenant string) (store.BreakerRecord, error)
	UpdateBreakerRecord(ctx context.Context, tenant string, fn func(*store.BreakerRecord) (bool, error)) (bool, error)
	SentMinutes(ctx context.Context, tenant string, from, to time.Time) (int64, []int64, error)
	RememberMessages(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error
	LookupMessage(ctx context.Context, sesMessageID string) (string, string, bool, error)
	ClaimKey(ctx context.Context, key string, ttl time.Duration) (bool, error)
	ReleaseKey(ctx context.Context, key string) error
}

// RunBreaker runs the breaker-record scenarios (warning halves the rate,
// atomic updates, sent minutes, attribution records, dedupe keys) against
// stores from newStore, which must return BreakerStores.
func RunBreaker(t *testing.T, newStore Factory) {
	ctx := context.Background()
	get := func(t *testing.T) (BreakerStore, *Clock) {
		c := NewClock(Start)
		s, ok := newStore(t, c).(BreakerStore)
		if !ok {
			t.Fatal("store does not implement storetest.BreakerStore")
		}
		return s, c
	}
	t.Run("warning halves the rate", func(t *testing.T) {
		s, _ := get(t)
		tests := []struct {
			name    string
			warning bool
			want    int // admitted of 10 at one instant: burst 4 at rate 4/s
		}{
			{name: "no warning", warning: false, want: 4},
			{name: "warning", warning: true, want: 4},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tenant := "warn" + string(rune('a'+i))
				if _, err := s.UpdateBreakerRecord(ctx, tenant, func(r *store.BreakerRecord) (bool, error) {
					r.Warning = tc.warning
					return true, nil
				}); err != nil {
					t.Fatal(err)
				}
				lim := gateway.Limits{Rate: 4, Burst: 4}
				n := 0
				var retry time.Duration
				for j := range 10 {
					d, err := s.Admit(ctx, store.AdmitRequest{Tenant: tenant, Recipients: rcpts(1, "example.com", j), Limits: lim})
					if err != nil {
						t.Fatal(err)
					}
					if d.Admitted {
						n++
					} else {
						retry = d.RetryAfter
					}
				}
				if n != tc.want {
					t.Fatalf("admitted %d, want %d", n, tc.want)
				}
				// The emission interval: 250 ms at 4/s, 500 ms halved.
				want := 250 * time.Millisecond
				if tc.warning {
					want = 500 * time.Millisecond
				}
				if retry != want {
					t.Fatalf("retry after %v, want %v", retry, want)
				}
			})
		}
	})
	t.Run("update is atomic", func(t *testing.T) {
		s, _ := get(t)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					_, err := s.UpdateBreakerRecord(ctx, "atomic", func(r *store.BreakerRecord) (bool, error) {
						var n uint64
						if len(r.Data) == 8 {
							n = binary.BigEndian.Uint64(r.Data)
						}
						r.Data = binary.BigEndian.AppendUint64(nil, n+1)
						return true, nil
					})
					if err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		r, err := s.GetBreakerRecord(ctx, "atomic")
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint64(r.Data); got != 40 {
			t.Fatalf("counter %d, want 40", got)
		}
		if r.State != store.Closed || r.Warning {
			t.Fatalf("record %+v", r)
		}
	})
	t.Run("record round trip and admission", func(t *testing.T) {
		s, c := get(t)
		until := c.Now().Add(time.Minute).Truncate(time.Millisecond)
		if _, err := s.UpdateBreakerRecord(ctx, "rt", func(r *store.BreakerRecord) (bool, error) {
			r.Breaker = store.Breaker{State: store.Open, OpenUntil: until, Probes: 3}
			r.Data = []byte(`{"x":1}`)
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetBreakerRecord(ctx, "rt")
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.Open || !r.OpenUntil.Equal(until) || r.Probes != 3 || string(r.Data) != `{"x":1}` {
			t.Fatalf("record %+v", r)
		}
		d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "rt", Recipients: rcpts(1, "example.com", 0)})
		if err != nil || d.Admitted || d.Reason != store.ReasonBreakerOpen {
			t.Fatalf("admit while open: %+v %v", d, err)
		}
		// A no-write update changes nothing.
		if _, err := s.UpdateBreakerRecord(ctx, "rt", func(r *store.BreakerRecord) (bool, error) {
			r.State = store.Closed
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.GetBreakerRecord(ctx, "rt"); r.State != store.Open {
			t.Fatalf("state %q after a no-write update", r.State)
		}
	})
	t.Run("sent minutes", func(t *testing.T) {
		s, c := get(t)
		for i := range 3 {
			if _, err := s.Admit(ctx, store.AdmitRequest{Tenant: "sm", Recipients: rcpts(i+1, "example.com", 10*i)}); err != nil {
				t.Fatal(err)
			}
			c.Add(time.Minute)
		}
		first, counts, err := s.SentMinutes(ctx, "sm", Start.Add(-time.Minute), c.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{0, 1, 2, 3, 0}
		if first != Start.Unix()/60-1 || len(counts) != len(want) {
			t.Fatalf("first %d counts %v", first, counts)
		}
		for i := range want {
			if counts[i] != want[i] {
				t.Fatalf("counts %v, want %v", counts, want)
			}
		}
	})
	t.Run("attribution and dedupe", func(t *testing.T) {
		s, _ := get(t)
		refs := []store.MessageRef{{SESMessageID: "ses-1", Tenant: "acme", GatewayID: "g1"}, {SESMessageID: "ses-2", Tenant: "beta", GatewayID: "g2"}}
		if err := s.RememberMessages(ctx, refs, time.Hour); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, id, tenant, gw string
			found                bool
		}{
			{name: "first", id: "ses-1", tenant: "acme", gw: "g1", found: true},
			{name: "second", id: "ses-2", tenant: "beta", gw: "g2", found: true},
			{name: "unknown", id: "ses-3"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tenant, gw, found, err := s.LookupMessage(ctx, tc.id)
				if err != nil || tenant != tc.tenant || gw != tc.gw || found != tc.found {
					t.Fatalf("got %q %q %v %v", tenant, gw, found, err)
				}
			})
		}
		for i, want := range []bool{true, false} {
			first, err := s.ClaimKey(ctx, "k1", time.Hour)
			if err != nil || first != want {
				t.Fatalf("claim %d: %v %v, want %v", i, first, err, want)
			}
		}
		if err := s.ReleaseKey(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if first, err := s.ClaimKey(ctx, "k1", time.Hour); err != nil || !first {
			t.Fatalf("claim after release: %v %v", first, err)
		}
	})
}
