package boltstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestAdmitBatched checks that concurrent admissions keep the exact
// limits while other writers commit (here failing db.Batch members, which
// make bbolt roll back and rerun their batches).
func TestAdmitBatched(t *testing.T) {
	tests := []struct {
		name     string
		failures int // failing batch members mixed into the admissions
	}{
		{"admissions only", 0},
		{"with failing batch members", 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 11, 30, 0, 30, 0, 0, time.UTC) // one clock hour
			s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			lim := gateway.Limits{PerHour: 100, FirstContactPerHour: 1000}
			var admitted, refused atomic.Int64
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					for i := range 10 {
						d, err := s.Admit(context.Background(), store.AdmitRequest{
							Tenant: "t", Recipients: []string{fmt.Sprintf("r%d-%d@example.net", g, i)}, Limits: lim})
						switch {
						case err != nil:
							t.Error(err)
						case d.Reason == "":
							admitted.Add(1)
						case d.Reason == store.ReasonPerHour:
							refused.Add(1)
						default:
							t.Errorf("decision %+v", d)
						}
					}
				})
			}
			boom := errors.New("boom")
			for range tt.failures {
				wg.Go(func() {
					if err := s.db.Batch(func(*bolt.Tx) error { return boom }); !errors.Is(err, boom) {
						t.Errorf("failing member: %v", err)
					}
				})
			}
			wg.Wait()
			if admitted.Load() != 100 || refused.Load() != 220 {
				t.Fatalf("admitted %d refused %d, want exactly 100 and 220", admitted.Load(), refused.Load())
			}
			u, err := s.Usage(context.Background(), "t")
			if err != nil {
				t.Fatal(err)
			}
			if u.Hour != 100 || u.FirstContactHour != 100 {
				t.Fatalf("usage %+v: want 100 recipients and 100 first contacts this hour", u)
			}
		})
	}
}
