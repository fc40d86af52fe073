package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
)

// BenchmarkViewCommands counts what one message costs Redis: its RCPT
// check (CheckSuppressed, one recipient) and its admission, with the view
// off (the reads of before) and on. Run with -count=2 for an interleaved
// off, on, off, on. Reports commands and round trips per message (from a
// client hook) and redis-server CPU per message (INFO cpu; noisy on a
// shared machine, the counts are not).
func BenchmarkViewCommands(b *testing.B) {
	srv := redistest.Start(b)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	lim := gateway.Limits{Rate: 1e6, PerHour: 1 << 30, PerDay: 1 << 30, FirstContactPerHour: 1 << 30, FirstContactPerDay: 1 << 30, PerDomainRate: 1e6}
	for _, mode := range []struct {
		name string
		vo   ViewOptions
	}{{"view=off", ViewOptions{Off: true}}, {"view=on", ViewOptions{}}} {
		b.Run(mode.name, func(b *testing.B) {
			c, err := NewClient(conn, nil)
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey, View: mode.vo})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			h := &cmdCounter{}
			c.AddHook(h)
			ctx := context.Background()
			if err := s.AddSuppression(ctx, store.Suppression{Tenant: "", Address: "g@x.example", Reason: store.Manual, Added: time.Now()}); err != nil {
				b.Fatal(err)
			}
			if !mode.vo.Off {
				deadline := time.Now().Add(15 * time.Second)
				for st := s.ViewStats(); !st.Ready || !st.FreezeFresh; st = s.ViewStats() {
					if time.Now().After(deadline) {
						b.Fatal("view not ready")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			h.take()
			cpu := srv.CPU()
			b.ResetTimer()
			for i := range b.N {
				rcpt := fmt.Sprintf("r%d@d%d.example", i, i%50)
				if _, err := s.CheckSuppressed(ctx, "bench", []string{rcpt}); err != nil {
					b.Fatal(err)
				}
				d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "bench", Recipients: []string{rcpt}, Limits: lim})
				if err != nil || !d.Admitted {
					b.Fatalf("%+v %v", d, err)
				}
			}
			b.StopTimer()
			names, trips := h.take()
			b.ReportMetric(float64(total(names))/float64(b.N), "cmds/msg")
			b.ReportMetric(float64(trips)/float64(b.N), "round-trips/msg")
			b.ReportMetric(float64((srv.CPU()-cpu).Microseconds())/float64(b.N), "redis-us/msg")
			if b.N > 100 {
				b.Logf("%s: %v over %d messages", mode.name, names, b.N)
			}
		})
	}
}

// BenchmarkViewBuild times one build of the filter over lists holding n
// addresses (a tenant's and the global list, half each), and reports the
// filter's size and the redis-server CPU one build costs.
func BenchmarkViewBuild(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			srv := redistest.Start(b)
			c, err := NewClient(ConnOptions{URL: "redis://" + srv.Addr}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			val := store.Suppression{Reason: store.HardBounce, Added: time.Now()}.EncodeValue()
			const batch = 10_000
			for i := 0; i < n; i += batch {
				p := c.Pipeline()
				for j := i; j < i+batch && j < n; j++ {
					p.HSet(ctx, supKey([]string{"", "bench"}[j%2]), fmt.Sprintf("user%d@d%d.example", j, j%1000), val)
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			s, err := New(ctx, Options{Client: c, RecipientKey: testKey, View: ViewOptions{FreezePoll: time.Hour}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			deadline := time.Now().Add(5 * time.Minute)
			for !s.ViewStats().Ready {
				if time.Now().After(deadline) {
					b.Fatal("view not ready")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cpu := srv.CPU()
			b.ResetTimer()
			for range b.N {
				if err := s.view.build(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := s.ViewStats()
			b.ReportMetric(float64(st.Bytes)/1e6, "filter-MB")
			b.ReportMetric(float64(st.Bytes)/float64(n), "bytes/address")
			b.ReportMetric((srv.CPU()-cpu).Seconds()/float64(b.N), "redis-s/build")
		})
	}
}

// BenchmarkViewHits is the in-process cost of one RCPT check's lookup
// (tenant and global list) in a ready filter.
func BenchmarkViewHits(b *testing.B) {
	v := &view{filter: bloom.NewWithEstimates(DefaultMinCapacity, DefaultFalsePositive), capacity: DefaultMinCapacity, ready: true}
	addrs := []string{"someone@rcpt.example"}
	b.ReportAllocs()
	for b.Loop() {
		if th, gh, ok := v.hits("tenant", addrs, true); !ok || len(th)+len(gh) != 0 {
			b.Fatal("hit")
		}
	}
}
