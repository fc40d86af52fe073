package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// fullPolicy is a tenant with every limit of issue 11's load scenario set,
// all high enough that nothing is refused.
var fullPolicy = gateway.Limits{Rate: 1e6, Burst: 1e6, PerHour: 1e12, PerDay: 1e12,
	FirstContactPerHour: 1e12, FirstContactPerDay: 1e12, PerDomainRate: 1e6, PerDomainBurst: 1e6}

const (
	benchDomains = 50
	benchKnown   = 1000 // recipients admitted before the timer starts
)

// benchRecipient is message i's one recipient: even i a known recipient,
// odd i a first contact, over benchDomains domains.
func benchRecipient(i int64) string {
	if i%2 == 0 {
		k := (i / 2) % benchKnown
		return fmt.Sprintf("known%d@d%d.example", k, k%benchDomains)
	}
	return fmt.Sprintf("new%d@d%d.example", i, i%benchDomains)
}

// commits is the number of read-write transactions committed so far: the
// meta page's transaction id, which every commit increments.
func commits(tb testing.TB, db *bolt.DB) int64 {
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		tb.Fatal(err)
	}
	return int64(id)
}

// fsyncsPerCommit is what a bbolt commit costs on Linux without NoSync:
// an fdatasync after the data pages and one after the meta page (strace
// -c -e trace=fdatasync on the benchmark binary agrees; growing the file
// adds a rare third).
const fsyncsPerCommit = 2

// runConcurrent runs op b.N times from exactly c goroutines.
func runConcurrent(b *testing.B, c int, op func(i int64)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				op(i)
			}
		})
	}
	wg.Wait()
}

func openBench(b *testing.B) *Store {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAdmitFullPolicy admits one-recipient messages for a tenant with
// every limit set (half known recipients, half first contacts over 50
// domains) from 1 and 8 concurrent callers: the SMTP C=1 and C=8 shape.
// It reports the fsyncs per admission (commits x 2).
func BenchmarkAdmitFullPolicy(b *testing.B) {
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			for k := range int64(benchKnown) {
				if d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "full", Recipients: []string{benchRecipient(2 * k)}, Limits: fullPolicy}); err != nil || !d.Admitted {
					b.Fatalf("seed: %+v %v", d, err)
				}
			}
			before := commits(b, s.db)
			b.ResetTimer()
			runConcurrent(b, c, func(i int64) {
				d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "full", Recipients: []string{benchRecipient(i)}, Limits: fullPolicy})
				if err != nil || !d.Admitted || d.NewRecipients != int(i%2) {
					b.Errorf("admit %d: %+v %v", i, d, err)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(fsyncsPerCommit*(commits(b, s.db)-before))/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkCheckSuppressed is the RCPT read of the same shape, with 10,000
// suppressed addresses in the tenant's and the global lists (none of the
// benchmark's recipients).
func BenchmarkCheckSuppressed(b *testing.B) {
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			for i := range 10_000 {
				tenant := "full"
				if i%2 == 0 {
					tenant = ""
				}
				sp := store.Suppression{Tenant: tenant, Address: fmt.Sprintf("gone%d@d%d.example", i, i%benchDomains), Reason: store.HardBounce, Added: s.now()}
				if err := s.AddSuppression(ctx, sp); err != nil {
					b.Fatal(err)
				}
			}
			before := commits(b, s.db)
			b.ResetTimer()
			runConcurrent(b, c, func(i int64) {
				got, err := s.CheckSuppressed(ctx, "full", []string{benchRecipient(i)})
				if err != nil || len(got) != 0 {
					b.Errorf("check %d: %v %v", i, got, err)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(fsyncsPerCommit*(commits(b, s.db)-before))/float64(b.N), "fsyncs/op")
		})
	}
}
