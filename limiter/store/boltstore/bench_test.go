package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// BenchmarkAdmitParallel is a busy laptop-shape gateway: 16 callers admit
// one-recipient messages for 100 tenants with every limit on (none
// binding). Each admission is one durable (fsynced) commit, shared by the
// admissions that arrive while it is in flight.
func BenchmarkAdmitParallel(b *testing.B) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	lim := gateway.Limits{Rate: 1e6, Burst: 1e6, PerHour: 1e9, PerDay: 1e9, FirstContactPerHour: 1e9, FirstContactPerDay: 1e9}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			d, err := s.Admit(context.Background(), store.AdmitRequest{
				Tenant: fmt.Sprintf("t%d", i%100), Recipients: []string{fmt.Sprintf("r%d@example.net", i%1000)}, Limits: lim})
			if err != nil || d.Reason != "" {
				b.Fatalf("admit: %+v %v", d, err)
			}
		}
	})
}
