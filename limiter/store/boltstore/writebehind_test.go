package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestUpdateBreakerRecordReads: fn may call the store's reads (the guard
// reads SentMinutes in it) and the store may change the record meanwhile
// (an admission spending probes, here SetBreaker): fn runs again on the
// record as it is now, and the write is its last answer.
func TestUpdateBreakerRecordReads(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "t", Recipients: []string{"a@x.example"}, Limits: gateway.Limits{Rate: 10}}); err != nil || !d.Admitted {
		t.Fatalf("admit: %+v %v", d, err)
	}
	calls := 0
	done := make(chan error, 1)
	go func() {
		_, err := s.UpdateBreakerRecord(ctx, "t", func(r *store.BreakerRecord) (bool, error) {
			calls++
			_, sent, err := s.SentMinutes(ctx, "t", time.Now().Add(-time.Minute), time.Now())
			if err != nil {
				return false, err
			}
			if n := sent[0] + sent[len(sent)-1]; n != 1 {
				t.Errorf("sent %v inside fn; want the one admission", sent)
			}
			if calls == 1 {
				if err := s.SetBreaker(ctx, "t", store.Breaker{State: store.HalfOpen, Probes: 3}); err != nil {
					return false, err
				}
				r.State = store.Open
				r.OpenUntil = time.Now().Add(time.Hour)
				return true, nil
			}
			if r.State != store.HalfOpen || r.Probes != 3 {
				t.Errorf("second run read %+v; want the half-open record written meanwhile", r.Breaker)
			}
			r.State, r.Probes, r.Data = store.Closed, 0, []byte("second")
			return true, nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("UpdateBreakerRecord did not return: fn's reads deadlock")
	}
	r, err := s.GetBreakerRecord(ctx, "t")
	if err != nil || calls != 2 || r.State != store.Closed || string(r.Data) != "second" {
		t.Fatalf("after %d runs of fn: %+v %v; want 2 runs and the second's closed record", calls, r, err)
	}
}
