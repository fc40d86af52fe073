package scale

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// TestLoadSuppressionsMatchesTheStore: what LoadSuppressions writes is
// what the Redis store reads: half in the global list, half in the
// tenant's, every address suppressed for that tenant, and used_memory
// grows with them.
func TestLoadSuppressionsMatchesTheStore(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	before, err := UsedMemory(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2501 // not a multiple of a batch
	if _, err := LoadSuppressions(ctx, c, "full", n); err != nil {
		t.Fatal(err)
	}
	after, err := UsedMemory(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < n*10 {
		t.Errorf("used_memory grew %d bytes for %d addresses", after-before, n)
	}
	st, err := redisstore.New(ctx, redisstore.Options{Client: c, RecipientKey: []byte(strings.Repeat("k", store.MinKeyBytes))})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{SuppressedAddress(0), SuppressedAddress(1), SuppressedAddress(n - 1), "known1@d1.example.net"}
	got, err := st.CheckSuppressed(ctx, "full", addrs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("store sees %+v, want the 3 loaded addresses", got)
	}
	lists := map[string]string{}
	for _, sp := range got {
		lists[sp.Address] = sp.Tenant
		if sp.Reason != store.Manual {
			t.Errorf("%s: reason %s", sp.Address, sp.Reason)
		}
	}
	if lists[SuppressedAddress(0)] != "" || lists[SuppressedAddress(1)] != "full" {
		t.Errorf("lists %v: want even addresses global, odd the tenant's", lists)
	}
	for _, key := range []string{globalSupKey, tenantSupKey("full")} {
		if n, err := c.HLen(ctx, key).Result(); err != nil || n < 1250 || n > 1251 {
			t.Errorf("%s holds %d (%v)", key, n, err)
		}
	}
	// Another tenant sees only the global half.
	other, err := st.CheckSuppressed(ctx, "other", addrs)
	if err != nil || len(other) != 2 {
		t.Errorf("tenant other sees %+v (%v), want the 2 global ones", other, err)
	}
}
