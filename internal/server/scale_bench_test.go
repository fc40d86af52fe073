package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/admin/adminclient"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// BenchmarkAPITenantScale measures the gateway with N tenants of the admin
// API, each with a token, in Redis and in the embedded store:
//
//	CI=true go test -run '^$' -bench APITenantScale -benchtime 2000x -timeout 30m ./internal/server/
//
// Per case it reports: start-s (Start until ready, the API tenants read
// and decoded), gw-heap-MB (Go heap of the started gateway after a GC,
// over the heap before it), rss-MB (the process's VmRSS after a GC, the
// seeding client's memory returned), ns/op (one message over HTTP keep-
// alive through auth, admission and the SES sink against the in-process
// SES server, from 10 tenants spread over the N in turn: the same work
// whatever N, so that the tables' size is what differs),
// and with Redis change-ms-max and change-ms-p50 (5 changes made through
// replica 1's admin API, each timed until replica 2 serves it: a create
// with its first token, then an update of the identities; a second
// replica in the same process on the same Redis). The store is seeded
// directly (not timed). The embedded store lives under /dev/shm when
// there is one, so seeding is not bound by the disk's fsync.
func BenchmarkAPITenantScale(b *testing.B) {
	for _, st := range []string{"redis", "embedded"} {
		for _, n := range []int{10, 100_000} {
			b.Run(fmt.Sprintf("store=%s/tenants=%d", st, n), func(b *testing.B) { benchScale(b, st, n) })
		}
	}
}

// benchSettings is testSettings for a benchmark: sink ses.
func benchSettings(b *testing.B, dataDir, policy string) *Settings {
	b.Helper()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	s, err := ParseSettings([]string{"--data-dir", dataDir, "--sink", "ses", "--config", policy,
		"--smtp-addr", free(), "--http-addr", free(), "--admin-addr", free(), "--reload-poll", "0"}, os.Stderr)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchScale(b *testing.B, kind string, n int) {
	ctx := context.Background()
	base := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && kind == "embedded" {
		d, err := os.MkdirTemp("/dev/shm", "sesgate-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		base = d
	}
	_, sesURL, stopSES, err := sestest.Start(sestest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer stopSES()
	b.Setenv("AWS_ACCESS_KEY_ID", sestest.DefaultAccessKeyID)
	b.Setenv("AWS_SECRET_ACCESS_KEY", sestest.DefaultSecretAccessKey)
	b.Setenv("AWS_REGION", sestest.DefaultRegion)
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	at := auth.NewToken("")
	// A generous store call timeout: the machine may be loaded, and this
	// measures cost, not the degraded mode.
	storeSec, redisURL := "store:\n  call_timeout: 1s\n", ""
	if kind == "redis" {
		redisURL = "redis://" + redistest.Start(b).Addr
		key := filepath.Join(base, "recipient.key")
		if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		storeSec += fmt.Sprintf("  redis: {url: %q}\n  recipient_key_file: %q\n", redisURL, key)
	}
	policy := filepath.Join(base, "policy.yml")
	doc := fmt.Sprintf(`%sses: {endpoint: %q, region: us-east-1, max_send_rate: 100000}
plans:
  basic:
    limits: {rate: 100000, burst: 100000, per_day: 1000000000, first_contact_per_day: 1000000000}
admin_tokens:
  - {name: bench, key_id: %s, sha256: %s}
`, storeSec, sesURL, at.Record.KeyID, at.Record.Hash)
	if err := os.WriteFile(policy, []byte(doc), 0o600); err != nil {
		b.Fatal(err)
	}

	// Seed n tenants, each with a token, straight into the store.
	dataDir := filepath.Join(base, "r1")
	var seed interface {
		store.TenantStore
		CreateToken(context.Context, store.TokenRecord) error
		Close() error
	}
	if kind == "redis" {
		cl, err := redisstore.NewClient(redisstore.ConnOptions{URL: redisURL}, nil)
		if err != nil {
			b.Fatal(err)
		}
		seed, err = redisstore.New(ctx, redisstore.Options{Client: cl, RecipientKey: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			b.Fatal(err)
		}
	} else {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir, "recipient.key"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		seed, err = boltstore.Open(boltstore.Options{Path: filepath.Join(dataDir, "store.db"), RecipientKey: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			b.Fatal(err)
		}
	}
	tokens := make([]string, n)
	seedStart := time.Now()
	var wg sync.WaitGroup
	const workers = 8
	now := time.Now().UTC()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				id := "t" + strconv.Itoa(i)
				spec := []byte(`{"id":"` + id + `","identities":["*"],"plan":"basic","limits":{"max_recipients":10}}`)
				// ErrExists: a call retried by the client after a timeout
				// on a loaded machine had been applied.
				if _, err := seed.PutTenant(ctx, store.TenantRecord{ID: id, Spec: spec, Created: now, Updated: now}, true); err != nil && !errors.Is(err, store.ErrExists) {
					b.Error(err)
					return
				}
				m := auth.NewToken(id)
				if err := seed.CreateToken(ctx, store.TokenRecord{KeyID: m.Record.KeyID, Tenant: id, SHA256: m.Record.Hash.String(), Created: now}); err != nil && !errors.Is(err, store.ErrExists) {
					b.Error(err)
					return
				}
				tokens[i] = m.Token
			}
		})
	}
	wg.Wait()
	seed.Close()
	if b.Failed() {
		return
	}
	b.Logf("seeded %d tenants with a token each in %s", n, time.Since(seedStart).Round(time.Millisecond))

	heap := func() uint64 {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	heap0 := heap()
	s1 := benchSettings(b, dataDir, policy)
	start := time.Now()
	srv1, err := Start(ctx, Options{Settings: s1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	startDur := time.Since(start)
	defer srv1.close()
	heap1 := heap()
	rss := vmRSS(b)

	// Admission: one message per op, each from another tenant's token.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func(s *Settings, tok, to string) int {
		req, _ := http.NewRequest("POST", "http://"+s.HTTPAddr+"/v1/messages",
			strings.NewReader(`{"from":"app@bench.example","to":["`+to+`"],"subject":"x","text":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // the connection is reused
		resp.Body.Close()
		return resp.StatusCode
	}
	// The same workload whatever n: 10 tenants spread over the n send in
	// turn, so the difference is the size of the tenant and token tables.
	sample := make([]string, 10)
	for k := range sample {
		sample[k] = tokens[(k*n/len(sample))%n]
	}
	for i := 0; b.Loop(); i++ {
		tok := sample[i%len(sample)]
		if code := send(s1, tok, "r"+strconv.Itoa(i%5000)+"@x.example"); code != http.StatusOK {
			b.Fatalf("send %d: %d", i, code)
		}
	}
	b.StopTimer()
	b.ReportMetric(startDur.Seconds(), "start-s")
	b.ReportMetric(float64(heap1-min(heap0, heap1))/1e6, "gw-heap-MB")
	b.ReportMetric(rss, "rss-MB")
	if kind != "redis" {
		return
	}

	// Change propagation: replica 2 on the same Redis.
	s2 := benchSettings(b, filepath.Join(base, "r2"), policy)
	srv2, err := Start(ctx, Options{Settings: s2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer srv2.close()
	cl, err := adminclient.New(adminclient.Options{Addr: s1.AdminAddr, Token: at.Token})
	if err != nil {
		b.Fatal(err)
	}
	var changes []time.Duration
	wait := func(what string, t0 time.Time, ok func() bool) {
		for !ok() {
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("%s: not served by replica 2 within 30s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
		changes = append(changes, time.Since(t0))
		b.Logf("%s: served by replica 2 %s after the call began", what, time.Since(t0).Round(time.Millisecond))
	}
	for k := range 5 {
		id := fmt.Sprintf("new-%d", k)
		t0 := time.Now()
		c, err := cl.CreateTenant(ctx, []byte(`{"id":"`+id+`","identities":["@a.example"],"plan":"basic"}`), false, true)
		if err != nil {
			b.Fatal(err)
		}
		tok := c.Token.Token
		// Served: authenticated, then refused for its identity (403); an
		// unknown token is 401, or 429 once the source's failure budget
		// is spent.
		wait("create "+id, t0, func() bool { return send(s2, tok, "x@y.example") == http.StatusForbidden })
		t0 = time.Now()
		if _, err := cl.UpdateTenant(ctx, id, []byte(`{"id":"`+id+`","identities":["*"],"plan":"basic"}`), false); err != nil {
			b.Fatal(err)
		}
		wait("update "+id, t0, func() bool { return send(s2, tok, "x@y.example") == http.StatusOK })
	}
	slices.Sort(changes)
	b.ReportMetric(float64(changes[len(changes)-1].Microseconds())/1000, "change-ms-max")
	b.ReportMetric(float64(changes[len(changes)/2].Microseconds())/1000, "change-ms-p50")
}

// vmRSS is this process's resident set in MB.
func vmRSS(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
