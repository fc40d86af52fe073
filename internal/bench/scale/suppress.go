package scale

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// The suppression lists as the Redis store keeps them (package redisstore,
// its doc lists the keys): a hash per list, lowercased address ->
// store.Suppression.EncodeValue. TestLoadSuppressionsMatchesTheStore reads
// what LoadSuppressions writes back through redisstore, so a change of the
// layout fails it.
const globalSupKey = "gw:{g}:sup"

// tenantSupKey is the tenant's list.
func tenantSupKey(tenant string) string { return "gw:{t:" + tenant + "}:sup" }

// Batches of the load: fields per HSET, HSETs per pipeline round trip.
const (
	fieldsPerHSet = 1000
	hsetsPerRound = 50
)

// SuppressedAddress is the i-th loaded address: never one the load
// generator sends to (those are at d<N>.<domain>), so nothing is refused.
func SuppressedAddress(i int64) string {
	return "sup" + strconv.FormatInt(i, 10) + "@s" + strconv.FormatInt(i%1000, 10) + ".example.org"
}

// LoadSuppressions writes n manual suppressions straight into the store's
// hashes with pipelined HSETs, the even ones in the global list and the odd
// ones in tenant's, and returns how long it took.
func LoadSuppressions(ctx context.Context, c redis.UniversalClient, tenant string, n int64) (time.Duration, error) {
	start := time.Now()
	val := store.Suppression{Reason: store.Manual, Added: start}.EncodeValue()
	keys := [2]string{globalSupKey, tenantSupKey(tenant)}
	var args [2][]any
	pipe := c.Pipeline()
	flush := func(force bool) error {
		for i := range args {
			if len(args[i]) >= 2*fieldsPerHSet || (force && len(args[i]) > 0) {
				pipe.HSet(ctx, keys[i], args[i]...)
				args[i] = nil
			}
		}
		if pipe.Len() >= hsetsPerRound || (force && pipe.Len() > 0) {
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("loading suppressions: %w", err)
			}
		}
		return nil
	}
	for i := range n {
		args[i%2] = append(args[i%2], SuppressedAddress(i), val)
		if err := flush(false); err != nil {
			return 0, err
		}
	}
	if err := flush(true); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// UsedMemory reads INFO memory used_memory (bytes).
func UsedMemory(ctx context.Context, c redis.UniversalClient) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory: no used_memory")
}
