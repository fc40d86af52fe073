package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// The token change log (store.TokenLog), in the operator state's slot {g}.
const (
	keyTokVer = "gw:{g}:tok:ver" // zset key id -> version of its last change
	keyTokSeq = "gw:{g}:tok:seq" // the version counter
)

// writeTokenScript writes one field of a token hash (ARGV mode nx: only
// when absent) and, when it wrote, logs the key id with the next version.
// KEYS: the hash, keyTokVer, keyTokSeq; ARGV: mode, key id, value.
var writeTokenScript = redis.NewScript(`
if ARGV[1] == 'nx' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
local v = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], v, ARGV[2])
return 1
`)

// writeToken runs writeTokenScript; it reports whether it wrote.
func (s *Store) writeToken(ctx context.Context, hash, mode, keyID string, value any) (bool, error) {
	n, err := writeTokenScript.Run(ctx, s.c, []string{hash, keyTokVer, keyTokSeq}, mode, keyID, value).Int64()
	return n == 1, err
}

var _ store.TokenLog = (*Store)(nil)

// TokenVersion reads the counter.
func (s *Store) TokenVersion(ctx context.Context) (int64, error) {
	n, err := s.c.Get(ctx, keyTokSeq).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// ChangedTokens reads the key ids changed after since, then their fields
// in one pipeline.
func (s *Store) ChangedTokens(ctx context.Context, since int64, limit int) ([]store.TokenChange, error) {
	zs, err := s.c.ZRangeByScoreWithScores(ctx, keyTokVer, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(since, 10), Max: "+inf", Count: int64(store.PageLimit(limit))}).Result()
	if err != nil || len(zs) == 0 {
		return nil, err
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i] = z.Member.(string)
	}
	var toks, rev, exp *redis.SliceCmd
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		toks, rev, exp = p.HMGet(ctx, keyTokens, ids...), p.HMGet(ctx, keyTokRevoke, ids...), p.HMGet(ctx, keyTokExpire, ids...)
		return nil
	}); err != nil {
		return nil, err
	}
	str := func(c *redis.SliceCmd, i int) string { v, _ := c.Val()[i].(string); return v }
	out := make([]store.TokenChange, len(ids))
	for i, id := range ids {
		c := store.TokenChange{Version: int64(zs[i].Score), TokenRecord: store.TokenRecord{KeyID: id}}
		if parts := strings.Split(str(toks, i), "|"); len(parts) == 3 {
			c.Tenant, c.SHA256, c.Created = parts[0], parts[1], msTime(parts[2])
		}
		c.Revoked, c.Expires = msTime(str(rev, i)), msTime(str(exp, i))
		out[i] = c
	}
	return out, nil
}

// mapCmd is a hash read whole (the shape ListTokens reads).
type mapCmd map[string]string

func (m mapCmd) Val() map[string]string { return m }

// hscanPage is how many fields one HSCAN asks for.
const hscanPage = 2000

// hscanAll reads a hash in pages of about hscanPage fields.
func (s *Store) hscanAll(ctx context.Context, key string) (mapCmd, error) {
	out := mapCmd{}
	var cursor uint64
	for {
		kv, next, err := s.c.HScan(ctx, key, cursor, "", hscanPage).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}
