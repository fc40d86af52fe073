package redisstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func factory(client func(t *testing.T) redis.UniversalClient) storetest.Factory {
	return func(t *testing.T, c *storetest.Clock) store.Store {
		s, err := New(context.Background(), Options{Client: client(t), RecipientKey: testKey, KnownTTL: storetest.KnownTTL, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// connect returns a client factory on conn.
func connect(conn ConnOptions) func(t *testing.T) redis.UniversalClient {
	return func(t *testing.T) redis.UniversalClient {
		c, err := NewClient(conn, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func TestConformanceStandalone(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, factory(connect(ConnOptions{URL: "redis://" + srv.Addr})))
}

func TestConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	storetest.Run(t, factory(connect(ConnOptions{Addrs: cl.Addrs()})))
}

// TestConnect reaches each deployment through its URL form and admits one
// message there.
func TestConnect(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master)
	cl := redistest.StartCluster(t)
	tests := []struct {
		name string
		conn ConnOptions
	}{
		{"standalone url", ConnOptions{URL: "redis://" + master.Addr}},
		{"standalone addrs", ConnOptions{Addrs: []string{master.Addr}}},
		{"sentinel url", ConnOptions{URL: "redis://" + sentinel.Addr + "?master_name=mymaster"}},
		{"sentinel addrs", ConnOptions{Addrs: []string{sentinel.Addr}, MasterName: "mymaster"}},
		{"cluster url", ConnOptions{URL: "redis+cluster://" + cl.Nodes[0].Addr + "?addr=" + cl.Nodes[1].Addr}},
		{"cluster addrs", ConnOptions{Addrs: cl.Addrs()}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Dial(ctx, tc.conn, Options{RecipientKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tenant := fmt.Sprintf("connect%d", i)
			for j, want := range []bool{true, false} { // quota 1: the second is refused
				d, err := s.Admit(ctx, store.AdmitRequest{Tenant: tenant, Recipients: []string{"a@b.example"}, Limits: gateway.Limits{PerHour: 1}})
				if err != nil || d.Admitted != want {
					t.Fatalf("admit %d: %+v %v", j, d, err)
				}
			}
		})
	}
	bad := []ConnOptions{{}, {URL: "http://x"}, {URL: "redis://a:1", Addrs: []string{"b:2"}}}
	for _, o := range bad {
		if _, err := NewClient(o, nil); err == nil {
			t.Errorf("NewClient(%+v) accepted", o)
		}
	}
}

func windowPair(client func(t *testing.T) redis.UniversalClient) storetest.WindowPair {
	f := factory(client)
	return func(t *testing.T, c *storetest.Clock) (store.Store, store.Store) { return f(t, c), f(t, c) }
}

func TestWindowConformanceStandalone(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunWindow(t, windowPair(connect(ConnOptions{URL: "redis://" + srv.Addr})))
}

func TestWindowConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	storetest.RunWindow(t, windowPair(connect(ConnOptions{Addrs: cl.Addrs()})))
}
