//go:build unix

package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// rememberBatch is the batch limiter/guard.Remember writes every 200 ms at
// most: 256 accepted messages, one recipient each out of 1,000 (so the
// recipient index lists are full, as under a steady load).
func rememberBatch(round int) ([]store.MessageRef, []store.AcceptedMessage) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(round) * time.Second)
	refs := make([]store.MessageRef, 256)
	msgs := make([]store.AcceptedMessage, 256)
	for i := range refs {
		n := round*256 + i
		refs[i] = store.MessageRef{SESMessageID: fmt.Sprintf("0100018c%024d-000000", n), Tenant: fmt.Sprint("t", n%10),
			GatewayID: fmt.Sprintf("gw-%016x", n), At: at, Recipients: []string{fmt.Sprintf("r%d@example.net", n%1000)}}
		msgs[i] = store.AcceptedMessage{Event: store.MessageEvent{GatewayID: refs[i].GatewayID, Tenant: refs[i].Tenant, Type: "accepted",
			At: at, SESMessageID: refs[i].SESMessageID}, Recipients: refs[i].Recipients}
	}
	return refs, msgs
}

// benchRemember times write per batch of 256 and reports wall and process
// CPU time (user + system: the commit's fsync waits are wall time only),
// allocations and bytes allocated per message. The store is warmed first (every recipient's
// index list full).
func benchRemember(b *testing.B, write func(s *Store, refs []store.MessageRef, msgs []store.AcceptedMessage) error) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	round := 0
	for ; round < 100; round++ {
		refs, msgs := rememberBatch(round)
		if err := write(s, refs, msgs); err != nil {
			b.Fatal(err)
		}
	}
	batches := make([][]store.MessageRef, b.N)
	accepted := make([][]store.AcceptedMessage, b.N)
	for i := range b.N {
		batches[i], accepted[i] = rememberBatch(round + i)
	}
	var m0, m1 runtime.MemStats
	var u0, u1 syscall.Rusage
	runtime.ReadMemStats(&m0)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := write(s, batches[i], accepted[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u1); err != nil {
		b.Fatal(err)
	}
	cpu := time.Duration(u1.Utime.Nano() + u1.Stime.Nano() - u0.Utime.Nano() - u0.Stime.Nano())
	msgs := float64(b.N * 256)
	b.ReportMetric(float64(cpu.Nanoseconds())/msgs, "cpu-ns/msg")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgs, "ns/msg")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/msgs, "allocs/msg")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/msgs, "B/msg")
}

type rememberAccepted interface {
	RememberAccepted(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error
}

// BenchmarkRememberAccepted/separate is what limiter/guard.Remember did
// before RememberAccepted: the attribution records, then the status
// events with the recipient index, in two transactions; merged is
// RememberAccepted, one transaction.
func BenchmarkRememberAccepted(b *testing.B) {
	b.Run("separate", func(b *testing.B) {
		benchRemember(b, func(s *Store, refs []store.MessageRef, msgs []store.AcceptedMessage) error {
			if err := s.RememberMessages(context.Background(), refs, time.Hour); err != nil {
				return err
			}
			return s.RecordAccepted(context.Background(), msgs, time.Hour)
		})
	})
	b.Run("merged", func(b *testing.B) {
		// Asserted, so that the file also builds on the code before it.
		if _, ok := any(&Store{}).(rememberAccepted); !ok {
			b.Skip("no RememberAccepted")
		}
		benchRemember(b, func(s *Store, refs []store.MessageRef, _ []store.AcceptedMessage) error {
			return any(s).(rememberAccepted).RememberAccepted(context.Background(), refs, time.Hour)
		})
	})
}
