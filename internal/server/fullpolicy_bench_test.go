//go:build unix

package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
)

// BenchmarkEmbeddedFullPolicySMTP and BenchmarkRedisFullPolicySMTP are the
// full-policy shape of docs/BENCHMARKS.md in one process: the gateway on
// the embedded store (store.db on the test's temporary directory, the real
// disk; commit mode from SESGATE_STORE_SYNC) or on a real redis-server, a
// tenant with every limit set (none binding), SMTP sessions each sending
// one-recipient 1 KB messages one after another (half to known
// recipients, half first contacts over 50 domains) to the in-process SES
// server; C=1 and C=8 sessions. ns/op is the time per message over all
// sessions; allocs/op and B/op count the whole process (gateway, SMTP
// clients, SES test server: the gateway's own share is the difference
// between two commits run with the same benchmark), and cpu-µs/msg its
// CPU time per message (not redis-server's).
//
//	CI=true go test -run '^$' -bench 'FullPolicySMTP' -benchtime 2000x ./internal/server/
func BenchmarkEmbeddedFullPolicySMTP(b *testing.B) {
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) { benchFullPolicySMTP(b, c, "") })
	}
}

func BenchmarkRedisFullPolicySMTP(b *testing.B) {
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			key := filepath.Join(b.TempDir(), "recipient.key")
			if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			benchFullPolicySMTP(b, c, fmt.Sprintf("  redis: {url: %q}\n  recipient_key_file: %q\n", "redis://"+redistest.Start(b).Addr, key))
		})
	}
}

// benchFullPolicySMTP runs the benchmark over conns sessions; store holds
// the policy's extra lines under store: ("" for the embedded store).
func benchFullPolicySMTP(b *testing.B, conns int, store string) {
	_, sesURL, stopSES, err := sestest.Start(sestest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer stopSES()
	b.Setenv("AWS_ACCESS_KEY_ID", sestest.DefaultAccessKeyID)
	b.Setenv("AWS_SECRET_ACCESS_KEY", sestest.DefaultSecretAccessKey)
	b.Setenv("AWS_REGION", sestest.DefaultRegion)
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := b.TempDir()
	m := auth.NewToken("full")
	doc := fmt.Sprintf(`ses: {endpoint: %q, region: us-east-1, max_send_rate: 100000}
store:
  call_timeout: 2s
%stenants:
  - id: full
    tokens:
      - %s
    identities: ["*"]
    limits: {rate: 100000, burst: 100000, per_hour: 1000000000, per_day: 1000000000, first_contact_per_hour: 1000000000, first_contact_per_day: 1000000000, per_domain_rate: 100000, per_domain_burst: 100000}
`, sesURL, store, m.Record.PolicyLine())
	policy := filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(policy, []byte(doc), 0o600); err != nil {
		b.Fatal(err)
	}
	s := benchSettings(b, filepath.Join(dir, "data"), policy)
	srv, err := Start(context.Background(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.close()

	body := "From: app@full.example.com\r\nSubject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 15)
	clients := make([]*smtp.Client, conns)
	for i := range clients {
		nc, err := net.DialTimeout("tcp", s.SMTPAddr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c := smtp.NewClient(nc)
		defer c.Close()
		if err := c.Hello("bench.test"); err != nil {
			b.Fatal(err)
		}
		if err := c.Auth(sasl.NewPlainClient("", "full", m.Token)); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	send := func(c *smtp.Client, i int64) error {
		rcpt := fmt.Sprintf("new%d@d%d.example", i, i%50)
		if i%2 == 0 {
			k := (i / 2) % 1000
			rcpt = fmt.Sprintf("known%d@d%d.example", k, k%50)
		}
		if err := c.Mail("app@full.example.com", nil); err != nil {
			return err
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte(body)); err != nil {
			return err
		}
		return w.Close()
	}
	// The known recipients, mailed once before the timer starts.
	for k := range int64(1000) {
		if err := send(clients[0], 2*k); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for _, c := range clients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if err := send(c, i+2000); err != nil {
					b.Errorf("message %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// processCPU is the process's user+system CPU time so far (the whole test
// process: gateway, SMTP clients, SES test server; not redis-server).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
