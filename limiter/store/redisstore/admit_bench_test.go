package redisstore

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
)

// fullLimits is a tenant with every limit of the admission script set, all
// high enough that nothing is refused: the script's most expensive path.
var fullLimits = gateway.Limits{
	Rate: 1e6, Burst: 1e6, PerHour: 1e12, PerDay: 1e12,
	FirstContactPerHour: 1e12, FirstContactPerDay: 1e12,
	PerDomainRate: 1e6, PerDomainBurst: 1e6,
}

// benchDomains is how many recipient domains the benchmark spreads over.
const benchDomains = 50

// roundTrips counts the round trips a client makes: one per command sent
// alone, one per pipeline (on a Cluster: per node's pipeline, when added to
// every node's client).
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// serverStats is what INFO gives the benchmark: EVALSHA's calls and
// total µs, the commands the scripts ran (every command but EVALSHA, EVAL
// and INFO) and the server's CPU.
type serverStats struct {
	calls, usec, inner int64
	cpu                time.Duration
}

func readStats(srv *redistest.Server) serverStats {
	var st serverStats
	out, _ := srv.Do("INFO", "commandstats")
	for _, l := range strings.Split(out, "\r\n") {
		name, v, ok := strings.Cut(l, ":")
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		field := func(f string) int64 {
			for _, kv := range strings.Split(v, ",") {
				if k, val, ok := strings.Cut(kv, "="); ok && k == f {
					n, _ := strconv.ParseInt(val, 10, 64)
					return n
				}
			}
			return 0
		}
		switch cmd {
		case "evalsha":
			st.calls, st.usec = field("calls"), field("usec")
		case "eval", "info":
		default:
			st.inner += field("calls")
		}
	}
	st.cpu = srv.CPU()
	return st
}

// BenchmarkAdmit admits one-recipient messages through runAdmit (the
// admission call alone, not Admit's other reads) on a real redis-server,
// with Redis's clock: the dev tenant (no limits) and a tenant with every
// limit set, whose recipients alternate between known addresses and first
// contacts over benchDomains domains; serially and from 8 and 32
// goroutines. It reports per admission: redis_us (EVALSHA's time in INFO
// commandstats), cpu_us (redis-server's user+sys CPU, network I/O
// included), round_trips, redis_cmds (the commands the script ran), and
// admissions/call (how many admissions one script call decided).
//
//	go test -run '^$' -bench BenchmarkAdmit -benchtime 3000x ./limiter/store/redisstore
func BenchmarkAdmit(b *testing.B) {
	srv := redistest.Start(b)
	rt := &roundTrips{}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	c.AddHook(rt)
	s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for _, tc := range []struct {
		name   string
		limits gateway.Limits
	}{{"dev", gateway.Limits{}}, {"full", fullLimits}} {
		for _, callers := range []int{1, 8, 32} {
			name := tc.name + "/serial"
			if callers > 1 {
				name = fmt.Sprintf("%s/parallel%d", tc.name, callers)
			}
			b.Run(name, func(b *testing.B) { benchAdmit(b, s, srv, rt, tc.limits, callers) })
		}
	}
}

var benchRun atomic.Int64

func benchAdmit(b *testing.B, s *Store, srv *redistest.Server, rt *roundTrips, l gateway.Limits, callers int) {
	ctx := context.Background()
	run := benchRun.Add(1)
	tenant := fmt.Sprintf("bench%d", run)
	const known = 1000
	knownAddr := func(i int) string { return fmt.Sprintf("known%d@d%d.example", i%known, i%benchDomains) }
	for i := range known { // the known half: mailed before
		if _, err := s.runAdmit(ctx, store.AdmitRequest{Tenant: tenant, Limits: l}, []string{knownAddr(i)}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	one := func() {
		i := int(next.Add(1))
		addr := knownAddr(i)
		if i%2 == 1 {
			addr = fmt.Sprintf("new%d.%d@d%d.example", run, i, i%benchDomains)
		}
		d, err := s.runAdmit(ctx, store.AdmitRequest{Tenant: tenant, Limits: l}, []string{addr})
		if err != nil || !d.Admitted {
			b.Fatalf("admit: %+v %v", d, err)
		}
	}
	before, rt0 := readStats(srv), rt.n.Load()
	b.ResetTimer()
	b.ReportAllocs()
	if callers > 1 {
		b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	} else {
		for range b.N {
			one()
		}
	}
	b.StopTimer()
	rts := rt.n.Load() - rt0
	after := readStats(srv)
	n := float64(b.N)
	if calls := after.calls - before.calls; calls > 0 {
		b.ReportMetric(n/float64(calls), "admissions/call")
	}
	b.ReportMetric(float64(after.usec-before.usec)/n, "redis_us/op")
	b.ReportMetric(float64((after.cpu-before.cpu).Microseconds())/n, "cpu_us/op")
	b.ReportMetric(float64(rts)/n, "round_trips/op")
	b.ReportMetric(float64(after.inner-before.inner)/n, "redis_cmds/op")
}
