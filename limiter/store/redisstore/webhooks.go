package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// The webhook queue (store.WebhookItem) lives in one hash slot, {wh}:
//
//	gw:{wh}:q:<chain>     list of item JSON, the chain's head first
//	gw:{wh}:due           zset chain -> when it is due (unix ms); a chain is
//	                      in it exactly while its list is not empty
//	gw:{wh}:lease         hash chain -> the lease token of its claimed head
//	gw:{wh}:age:<tenant>  zset item id -> enqueue time (ms): the backlog
//	gw:{wh}:dead          hash item id -> store.DeadWebhook JSON
//	gw:{wh}:deadz         zset item id -> when it died (ms)
const (
	whQueue  = "gw:{wh}:q:"
	whDue    = "gw:{wh}:due"
	whLease  = "gw:{wh}:lease"
	whAge    = "gw:{wh}:age:"
	whDead   = "gw:{wh}:dead"
	whDeadZ  = "gw:{wh}:deadz"
	whMaxDel = 10_000 // dead entries read by a listing
)

// Scripts of the webhook queue. Each works on keys of the {wh} slot only
// (chain keys are built from whQueue, which carries the tag).
var (
	// KEYS q, due, age; ARGV item, id, chain, enqueued ms, max backlog, now ms.
	whEnqueue = redis.NewScript(`
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return 0 end
if redis.call('RPUSH', KEYS[1], ARGV[1]) == 1 then redis.call('ZADD', KEYS[2], ARGV[6], ARGV[3]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return 1`)
	// KEYS due, lease; ARGV now ms, lease end ms, limit, token prefix, queue prefix.
	whClaim = redis.NewScript(`
local chains = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i, c in ipairs(chains) do
  local head = redis.call('LINDEX', ARGV[5] .. c, 0)
  if head then
    local tok = ARGV[4] .. i
    redis.call('ZADD', KEYS[1], ARGV[2], c)
    redis.call('HSET', KEYS[2], c, tok)
    out[#out + 1] = tok
    out[#out + 1] = head
  else
    redis.call('ZREM', KEYS[1], c)
    redis.call('HDEL', KEYS[2], c)
  end
end
return out`)
	// KEYS q, due, lease, age, dead, deadz; ARGV chain, token, id, op
	// (ack, retry, dead), now ms, then: retry: new item, due ms; dead: dead
	// JSON, max dead.
	whFinish = redis.NewScript(`
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
local head = redis.call('LINDEX', KEYS[1], 0)
local mine = head and cjson.decode(head).id == ARGV[3]
if ARGV[4] == 'retry' then
  if mine then redis.call('LSET', KEYS[1], 0, ARGV[6]) end
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
  return 1
end
if mine then
  redis.call('LPOP', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[3])
  if ARGV[4] == 'dead' then
    redis.call('HSET', KEYS[5], ARGV[3], ARGV[6])
    redis.call('ZADD', KEYS[6], ARGV[5], ARGV[3])
    while redis.call('ZCARD', KEYS[6]) > tonumber(ARGV[7]) do
      local old = redis.call('ZPOPMIN', KEYS[6])
      redis.call('HDEL', KEYS[5], old[1])
    end
  end
end
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1`)
	// KEYS dead, deadz, q, due, age; ARGV id, item, chain, enqueued ms, now ms.
	whReplay = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('RPUSH', KEYS[3], ARGV[2]) == 1 then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3]) end
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
return 1`)
)

// EnqueueWebhook appends it to its chain; false when the tenant's backlog
// already holds max items.
func (s *Store) EnqueueWebhook(ctx context.Context, it store.WebhookItem, now time.Time, max int) (bool, error) {
	if err := it.Validate(); err != nil {
		return false, err
	}
	raw, err := json.Marshal(it)
	if err != nil {
		return false, err
	}
	n, err := whEnqueue.Run(ctx, s.c, []string{whQueue + it.Chain, whDue, whAge + it.Tenant},
		raw, it.ID, it.Chain, it.Enqueued.UnixMilli(), max, now.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: enqueue webhook: %w", err)
	}
	return n == 1, nil
}

// ClaimWebhooks leases up to limit due chains until now+lease and returns
// their heads.
func (s *Store) ClaimWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.WebhookClaim, error) {
	limit = min(max(limit, 1), store.MaxWebhookClaim)
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	res, err := whClaim.Run(ctx, s.c, []string{whDue, whLease}, now.UnixMilli(), now.Add(lease).UnixMilli(), limit,
		hex.EncodeToString(b[:])+":", whQueue).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: claim webhooks: %w", err)
	}
	out := make([]store.WebhookClaim, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		var it store.WebhookItem
		if err := json.Unmarshal([]byte(res[i+1]), &it); err != nil {
			return out, fmt.Errorf("redisstore: webhook item: %w", err)
		}
		out = append(out, store.WebhookClaim{Item: it, Token: res[i]})
	}
	return out, nil
}

func (s *Store) finish(ctx context.Context, c store.WebhookClaim, op string, now time.Time, extra ...any) (bool, error) {
	it := c.Item
	keys := []string{whQueue + it.Chain, whDue, whLease, whAge + it.Tenant, whDead, whDeadZ}
	args := append([]any{it.Chain, c.Token, it.ID, op, now.UnixMilli()}, extra...)
	n, err := whFinish.Run(ctx, s.c, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: webhook %s: %w", op, err)
	}
	return n == 1, nil
}

// AckWebhook drops the claimed head (delivered); false when the lease was
// lost.
func (s *Store) AckWebhook(ctx context.Context, c store.WebhookClaim, now time.Time) (bool, error) {
	ok, err := s.finish(ctx, c, "ack", now)
	if ok {
		o, _ := store.HealthOutcome(store.OutcomeDelivered, c, c.Item, now)
		s.recordHealth(ctx, o, "", 0)
	}
	return ok, err
}

// RetryWebhook replaces the claimed head with it (same id) and makes the
// chain due at due.
func (s *Store) RetryWebhook(ctx context.Context, c store.WebhookClaim, it store.WebhookItem, due time.Time) (bool, error) {
	raw, err := json.Marshal(it)
	if err != nil {
		return false, err
	}
	ok, err := s.finish(ctx, c, "retry", due, raw, due.UnixMilli())
	if o, count := store.HealthOutcome(store.OutcomeFailed, c, it, s.clock()); ok && count {
		s.recordHealth(ctx, o, "", 0)
	}
	return ok, err
}

// DeadWebhook moves the claimed head (as it, with its last error) to the
// dead-letter list, which keeps the newest maxDead entries.
func (s *Store) DeadWebhook(ctx context.Context, c store.WebhookClaim, it store.WebhookItem, now time.Time, maxDead int) (bool, error) {
	raw, err := json.Marshal(store.DeadWebhook{WebhookItem: it, Died: now.UTC()})
	if err != nil {
		return false, err
	}
	ok, err := s.finish(ctx, c, "dead", now, raw, maxDead)
	if ok {
		o, _ := store.HealthOutcome(store.OutcomeDead, c, it, now)
		s.recordHealth(ctx, o, it.ID, maxDead)
	}
	return ok, err
}

// ListDeadWebhooks returns up to limit dead entries, newest first, of one
// tenant ("" for all).
func (s *Store) ListDeadWebhooks(ctx context.Context, tenant string, limit int) ([]store.DeadWebhook, error) {
	ids, err := s.c.ZRevRange(ctx, whDeadZ, 0, whMaxDel-1).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	vals, err := s.c.HMGet(ctx, whDead, ids...).Result()
	if err != nil {
		return nil, err
	}
	var out []store.DeadWebhook
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var d store.DeadWebhook
		if err := json.Unmarshal([]byte(str), &d); err != nil {
			return out, fmt.Errorf("redisstore: dead webhook: %w", err)
		}
		if tenant == "" || d.Tenant == tenant {
			out = append(out, d)
			if len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}

// ReplayDeadWebhook puts a dead entry back at the end of its chain, its
// attempts reset and enqueued now (the same id, so a receiver that did get
// it can tell); false when there is no such entry.
func (s *Store) ReplayDeadWebhook(ctx context.Context, id string, now time.Time) (bool, error) {
	raw, err := s.c.HGet(ctx, whDead, id).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var d store.DeadWebhook
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return false, fmt.Errorf("redisstore: dead webhook: %w", err)
	}
	it := d.WebhookItem
	it.Attempts, it.LastError, it.Enqueued = 0, "", now.UTC()
	item, err := json.Marshal(it)
	if err != nil {
		return false, err
	}
	n, err := whReplay.Run(ctx, s.c, []string{whDead, whDeadZ, whQueue + it.Chain, whDue, whAge + it.Tenant},
		id, item, it.Chain, it.Enqueued.UnixMilli(), now.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: replay webhook: %w", err)
	}
	if n == 1 {
		s.forgetDead(ctx, it.Tenant, id)
	}
	return n == 1, nil
}

// WebhookStats returns the backlog of each tenant, one pipeline.
func (s *Store) WebhookStats(ctx context.Context, tenants []string) (map[string]store.WebhookStat, error) {
	cards := make([]*redis.IntCmd, len(tenants))
	oldest := make([]*redis.ZSliceCmd, len(tenants))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range tenants {
			cards[i] = p.ZCard(ctx, whAge+t)
			oldest[i] = p.ZRangeWithScores(ctx, whAge+t, 0, 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.WebhookStat, len(tenants))
	for i, t := range tenants {
		st := store.WebhookStat{Backlog: cards[i].Val()}
		if z := oldest[i].Val(); len(z) > 0 {
			st.Oldest = time.UnixMilli(int64(z[0].Score)).UTC()
		}
		out[t] = st
	}
	return out, nil
}
