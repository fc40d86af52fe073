package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/bench"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// quietRedis drops go-redis's own log lines (dial retries while a test has
// killed Redis on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

// startBenchRedis starts Redis; with SESGATE_BENCH_REDIS_CPU=N it pins
// redis-server to CPU N (taskset), so Redis's usec_per_call is not inflated
// by the benchmark's own goroutines sharing its core.
func startBenchRedis(b *testing.B) *redistest.Server {
	srv := redistest.Start(b)
	if cpu := os.Getenv("SESGATE_BENCH_REDIS_CPU"); cpu != "" {
		if out, err := exec.Command("taskset", "-pc", cpu, strconv.Itoa(srv.PID())).CombinedOutput(); err != nil {
			b.Fatalf("taskset: %v %s", err, out)
		}
	}
	return srv
}

// benchLimits is a tenant with every limit on, none binding.
var benchLimits = gateway.Limits{
	Rate: 1e6, Burst: 1e6, PerHour: 1e12, PerDay: 1e12,
	FirstContactPerHour: 1e12, FirstContactPerDay: 1e12, PerDomainRate: 1e6, PerDomainBurst: 1e6,
}

var benchWindowLimits = func() gateway.Limits {
	l := benchLimits
	l.FirstContactWindow = gateway.FirstContactWindow{Initial: 1e6, Min: 1, Max: 1e6, Threshold: 1e6, OutstandingTimeout: time.Minute}
	return l
}()

// BenchmarkAdmit is one admission through the Redis store: one EVALSHA on
// the tenant's slot plus the parallel global read (EXISTS + HMGET, one
// pipeline). It reports the client's ns/op (one caller: the round trip)
// and allocations; Redis's whole CPU per message from INFO cpu
// (redis-cpu-us/op: both calls, network I/O included); the script's own
// time from INFO commandstats (redis-us/evalsha, usec_per_call); and the
// global EXISTS (redis-us/exists).
func BenchmarkAdmit(b *testing.B) {
	srv := startBenchRedis(b)
	sets := []struct {
		name string
		l    gateway.Limits
	}{
		{"limits=all", benchLimits},
		{"limits=rate+quotas", gateway.Limits{Rate: 1e6, Burst: 1e6, PerHour: 1e12, PerDay: 1e12}},
		// every limit and a first-contact window (known recipients after
		// the first round: the hot path of a warm tenant)
		{"limits=all+window", benchWindowLimits},
	}
	for _, set := range sets {
		for _, n := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("%s/rcpts=%d", set.name, n), func(b *testing.B) {
				st := benchStore(b, srv)
				rc := make([]string, n)
				for i := range rc {
					rc[i] = fmt.Sprintf("r%d@d%d.example", i, i%3)
				}
				ctx := context.Background()
				if _, err := srv.Do("CONFIG", "RESETSTAT"); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				cpu0 := srv.CPU()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					d, err := st.Admit(ctx, store.AdmitRequest{Tenant: fmt.Sprintf("t%d", i%1000), Recipients: rc, Limits: set.l})
					if err != nil || !d.Admitted {
						b.Fatalf("%+v %v", d, err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64((srv.CPU()-cpu0).Microseconds())/float64(b.N), "redis-cpu-us/op")
				b.ReportMetric(srv.UsecPerCall("evalsha"), "redis-us/evalsha")
				b.ReportMetric(srv.UsecPerCall("exists"), "redis-us/exists")
				calls := srv.Calls("evalsha") + srv.Calls("eval")
				b.ReportMetric(float64(calls)/float64(b.N), "scripts/op")
			})
		}
	}
}

// BenchmarkAdmitParallel is the same call from many goroutines (pool of 10
// connections per CPU), the shape of a busy replica.
func BenchmarkAdmitParallel(b *testing.B) {
	srv := startBenchRedis(b)
	st := benchStore(b, srv)
	b.SetParallelism(8)
	b.ReportAllocs()
	before, _ := bench.SelfCPU()
	cpu0 := srv.CPU()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			i++
			d, err := st.Admit(ctx, store.AdmitRequest{Tenant: fmt.Sprintf("p%d", i%1000), Recipients: []string{"a@b.example"}, Limits: benchLimits})
			if err != nil || !d.Admitted {
				b.Errorf("%+v %v", d, err)
				return
			}
		}
	})
	after, _ := bench.SelfCPU()
	cpu := after - before
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "client-cpu-us/op")
	b.ReportMetric(float64((srv.CPU()-cpu0).Microseconds())/float64(b.N), "redis-cpu-us/op")
	b.ReportMetric(srv.UsecPerCall("evalsha"), "redis-us/evalsha")
}

// BenchmarkCachedRefusal is the cost of refusing a tenant over its limit
// from the in-process cache: no Redis call.
func BenchmarkCachedRefusal(b *testing.B) {
	srv := startBenchRedis(b)
	st := benchStore(b, srv)
	lim, err := limiter.NewShared(limiter.SharedOptions{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ten := &gateway.Tenant{ID: "hammer", Limits: gateway.Limits{PerHour: 1}}
	ctx := context.Background()
	rc := []string{"a@b.example"}
	if _, err := lim.Admit(ctx, ten, rc); err != nil {
		b.Fatal(err)
	}
	if _, err := lim.Admit(ctx, ten, rc); gateway.AsError(err) == nil {
		b.Fatal("second message admitted")
	}
	calls := lim.Stats().StoreCalls
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := lim.Admit(ctx, ten, rc); err == nil {
			b.Fatal("admitted")
		}
	}
	b.StopTimer()
	if got := lim.Stats().StoreCalls; got != calls {
		b.Fatalf("%d store calls during cached refusals", got-calls)
	}
}

// benchStore opens a Redis store on srv, closed when the benchmark ends.
func benchStore(b *testing.B, srv *redistest.Server) *redisstore.Store {
	b.Helper()
	c, err := redisstore.NewClient(redisstore.ConnOptions{URL: "redis://" + srv.Addr}, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, RecipientKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
