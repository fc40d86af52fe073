package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestIdempotencyConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunIdempotency(t, factory(connect(ConnOptions{URL: "redis://" + srv.Addr})))
}

// TestIdempotencyKeys: a record is in the tenant's slot and carries a TTL
// (Redis frees it by itself), on a Cluster too.
func TestIdempotencyKeys(t *testing.T) {
	cl := redistest.StartCluster(t)
	c, err := NewClient(ConnOptions{Addrs: cl.Addrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.ClaimIdempotency(ctx, "acme", "order-42", "fp", "A", time.Minute); err != nil {
		t.Fatal(err)
	}
	k := idemKey("acme", "order-42")
	if !strings.HasPrefix(k, "gw:{t:acme}:idem:") {
		t.Fatalf("key %q not in the tenant's slot", k)
	}
	ttl, err := c.PTTL(ctx, k).Result()
	if err != nil || ttl <= time.Minute || ttl > time.Minute+idemGrace {
		t.Fatalf("PTTL %v, %v; want the lease plus the grace", ttl, err)
	}
	if err := s.CompleteIdempotency(ctx, "acme", "order-42", "A", []byte("answer"), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl, _ = c.PTTL(ctx, k).Result(); ttl <= 23*time.Hour {
		t.Fatalf("PTTL after completion %v; want about 24h", ttl)
	}
}
