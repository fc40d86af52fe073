package redisstore

import (
	"context"
	"testing"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

// TestTenants runs the tenant suite on a standalone server and on a
// Cluster (the keys share one slot).
func TestTenants(t *testing.T) {
	for _, tc := range []struct {
		name string
		conn func(t *testing.T) ConnOptions
	}{
		{"standalone", func(t *testing.T) ConnOptions { return ConnOptions{URL: "redis://" + redistest.Start(t).Addr} }},
		{"cluster", func(t *testing.T) ConnOptions { return ConnOptions{Addrs: redistest.StartCluster(t).Addrs()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := NewClient(tc.conn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(context.Background(), Options{Client: cl, RecipientKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			storetest.RunTenants(t, s)
			storetest.RunTokenLog(t, s)
		})
	}
}
