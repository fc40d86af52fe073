package redisstore

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestClientsHonourContextDeadline: every form of NewClient enables
// ContextTimeoutEnabled, without which go-redis reads with ReadTimeout
// (500 ms) whatever the call's deadline.
func TestClientsHonourContextDeadline(t *testing.T) {
	for _, o := range []ConnOptions{
		{URL: "redis://127.0.0.1:1"},
		{URL: "redis://127.0.0.1:1?master_name=m"},
		{URL: "redis+cluster://127.0.0.1:1?addr=127.0.0.1:2"},
		{Addrs: []string{"127.0.0.1:1"}},
		{Addrs: []string{"127.0.0.1:1"}, MasterName: "m"},
		{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}},
	} {
		c, err := NewClient(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		var on bool
		switch c := c.(type) {
		case *redis.Client:
			on = c.Options().ContextTimeoutEnabled
		case *redis.ClusterClient:
			on = c.Options().ContextTimeoutEnabled
		default:
			t.Fatalf("%+v: client %T", o, c)
		}
		c.Close()
		if !on {
			t.Errorf("%+v: ContextTimeoutEnabled is off", o)
		}
	}
}

// TestStoppedServerCallsEndAtDeadline: with redis-server stopped (SIGSTOP:
// connections open, no answer), Admit, CheckSuppressed and AddUsage return
// an error at their context's deadline (50 ms), not at the read timeout,
// on a standalone server and on a Cluster.
func TestStoppedServerCallsEndAtDeadline(t *testing.T) {
	const (
		deadline = 50 * time.Millisecond
		limit    = 300 * time.Millisecond // slack for a loaded machine
	)
	tests := []struct {
		name  string
		start func(t *testing.T) (ConnOptions, []int)
	}{
		{"standalone", func(t *testing.T) (ConnOptions, []int) {
			s := redistest.Start(t)
			return ConnOptions{URL: "redis://" + s.Addr}, []int{s.PID()}
		}},
		{"cluster", func(t *testing.T) (ConnOptions, []int) {
			cl := redistest.StartCluster(t)
			var pids []int
			for _, n := range cl.Nodes {
				pids = append(pids, n.PID())
			}
			return ConnOptions{Addrs: cl.Addrs()}, pids
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, pids := tc.start(t)
			// The view off: every call reaches Redis (with it, a ready view
			// answers CheckSuppressed alone; view_test.go covers that).
			s, err := Dial(context.Background(), conn, Options{RecipientKey: testKey, View: ViewOptions{Off: true}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			req := store.AdmitRequest{Tenant: "stop", Recipients: []string{"a@x.example"}, Limits: gateway.Limits{PerHour: 10}}
			if _, err := s.Admit(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			for _, pid := range pids {
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
			}
			calls := map[string]func(ctx context.Context) error{
				"Admit": func(ctx context.Context) error { _, err := s.Admit(ctx, req); return err },
				"CheckSuppressed": func(ctx context.Context) error {
					_, err := s.CheckSuppressed(ctx, "stop", []string{"a@x.example"})
					return err
				},
				"AddUsage": func(ctx context.Context) error { return s.AddUsage(ctx, "stop", time.Now(), store.Usage{Hour: 1}) },
			}
			for name, call := range calls {
				for range 2 {
					ctx, cancel := context.WithTimeout(context.Background(), deadline)
					start := time.Now()
					err := call(ctx)
					took := time.Since(start)
					cancel()
					if err == nil {
						t.Fatalf("%s answered with the server stopped", name)
					}
					if took > limit {
						t.Errorf("%s took %v with a %v deadline; want at most %v", name, took, deadline, limit)
					}
				}
			}
		})
	}
}
