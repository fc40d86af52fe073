package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/gateway"
)

// keyIdem (after tenantPrefix) + hex SHA-256 of the idempotency key: a hash
// with fields fp (the request's fingerprint), owner (the request holding
// it), until (unix ms: the end of the lease, or of the answer's life) and,
// once answered, answer. The key's own TTL follows until (plus
// idemGrace), so records go away by themselves.
const (
	keyIdem   = "idem:"
	idemGrace = time.Minute
)

// The idempotency scripts. ARGV now_ms 0 reads Redis's TIME (production);
// a test clock passes its own (Options.Now).
var (
	// KEYS: record. ARGV: fp, owner, lease_ms, now_ms, grace_ms.
	// Returns {0} claimed, {1, left_ms} in flight, {2, answer} done,
	// {3} another fingerprint.
	idemClaimScript = redis.NewScript(`
local now = tonumber(ARGV[4])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local r = redis.call('HMGET', KEYS[1], 'fp', 'until', 'answer')
if r[1] and tonumber(r[2]) > now then
  if r[1] ~= ARGV[1] then return {3} end
  if r[3] then return {2, r[3]} end
  return {1, tonumber(r[2]) - now}
end
redis.call('DEL', KEYS[1])
local untilms = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'owner', ARGV[2], 'until', untilms)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[5]))
return {0}
`)
	// KEYS: record. ARGV: owner, answer, ttl_ms, now_ms, grace_ms.
	idemCompleteScript = redis.NewScript(`
local now = tonumber(ARGV[4])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'answer', ARGV[2], 'until', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[5]))
return 1
`)
	// KEYS: record. ARGV: owner.
	idemReleaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)
)

var _ gateway.IdempotencyStore = (*Store)(nil)

// idemKey is the record of (tenant, key), in the tenant's slot.
func idemKey(tenant, key string) string {
	sum := sha256.Sum256([]byte(key))
	return tenantPrefix(tenant) + keyIdem + hex.EncodeToString(sum[:])
}

// ClaimIdempotency implements gateway.IdempotencyStore: one script call.
func (s *Store) ClaimIdempotency(ctx context.Context, tenant, key, fingerprint, owner string, lease time.Duration) (gateway.IdemClaim, error) {
	res, err := idemClaimScript.Run(ctx, s.c, []string{idemKey(tenant, key)},
		fingerprint, owner, lease.Milliseconds(), s.nowArg(), idemGrace.Milliseconds()).Slice()
	if err != nil {
		return gateway.IdemClaim{}, err
	}
	if len(res) == 0 {
		return gateway.IdemClaim{}, errors.New("redisstore: empty idempotency answer")
	}
	state, _ := res[0].(int64)
	c := gateway.IdemClaim{State: gateway.IdemState(state)}
	switch c.State {
	case gateway.IdemClaimed, gateway.IdemMismatch:
	case gateway.IdemInFlight:
		if len(res) > 1 {
			left, _ := res[1].(int64)
			c.Left = time.Duration(left) * time.Millisecond
		}
	case gateway.IdemDone:
		if len(res) > 1 {
			a, _ := res[1].(string)
			c.Answer = []byte(a)
		}
	default:
		return gateway.IdemClaim{}, fmt.Errorf("redisstore: idempotency state %d", state)
	}
	return c, nil
}

// CompleteIdempotency implements gateway.IdempotencyStore.
func (s *Store) CompleteIdempotency(ctx context.Context, tenant, key, owner string, answer []byte, ttl time.Duration) error {
	return idemCompleteScript.Run(ctx, s.c, []string{idemKey(tenant, key)},
		owner, answer, ttl.Milliseconds(), s.nowArg(), idemGrace.Milliseconds()).Err()
}

// ReleaseIdempotency implements gateway.IdempotencyStore.
func (s *Store) ReleaseIdempotency(ctx context.Context, tenant, key, owner string) error {
	return idemReleaseScript.Run(ctx, s.c, []string{idemKey(tenant, key)}, owner).Err()
}
