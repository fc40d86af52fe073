package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// Keys of the API tenants (store.TenantStore), all in the slot {tn} (not
// the operator state's {g}: 100,000 tenant entries should not crowd the
// node of the hot global slot), so one script changes them atomically on a
// Cluster too.
const (
	keyTenants    = "gw:{tn}:tenants"     // id -> created_ms|updated_ms|deleted(0/1)|spec
	keyTenantVer  = "gw:{tn}:tenants:ver" // zset id -> version (tombstones too)
	keyTenantLive = "gw:{tn}:tenants:ids" // zset of live ids, score 0 (lex paging)
	keyTenantSeq  = "gw:{tn}:tenants:seq" // the version counter
)

var tenantKeys = []string{keyTenants, keyTenantVer, keyTenantLive, keyTenantSeq}

// putTenantScript: ARGV id, mode (create|update|delete), updated_ms,
// created_ms, spec. Returns the new version, -1 (exists) or -2 (not
// found). An update and a delete keep the created time of the record.
var putTenantScript = redis.NewScript(`
local live = redis.call('ZSCORE', KEYS[3], ARGV[1])
local mode = ARGV[2]
if mode == 'create' and live then return -1 end
if mode ~= 'create' and not live then return -2 end
local created = ARGV[4]
if mode ~= 'create' then
  local cur = redis.call('HGET', KEYS[1], ARGV[1])
  created = string.match(cur or '', '^(%d+)|') or created
end
local v = redis.call('INCR', KEYS[4])
if mode == 'delete' then
  redis.call('HSET', KEYS[1], ARGV[1], created .. '|' .. ARGV[3] .. '|1|')
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], created .. '|' .. ARGV[3] .. '|0|' .. ARGV[5])
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
end
redis.call('ZADD', KEYS[2], v, ARGV[1])
return v
`)

var _ store.TenantStore = (*Store)(nil)

// PutTenant creates or replaces a tenant record in one script call.
func (s *Store) PutTenant(ctx context.Context, r store.TenantRecord, create bool) (store.TenantRecord, error) {
	if err := store.ValidateTenantRecord(r); err != nil {
		return store.TenantRecord{}, err
	}
	mode := "update"
	if create {
		mode = "create"
	}
	v, err := s.putTenant(ctx, r.ID, mode, r.Updated, r.Created, r.Spec)
	if err != nil {
		return store.TenantRecord{}, err
	}
	if !create {
		return s.GetTenant(ctx, r.ID) // with the kept created time
	}
	r.Version, r.Created, r.Updated = v, toMs(r.Created), toMs(r.Updated)
	return r, nil
}

// DeleteTenant leaves a tombstone.
func (s *Store) DeleteTenant(ctx context.Context, id string, at time.Time) (store.TenantRecord, error) {
	v, err := s.putTenant(ctx, id, "delete", at, at, nil)
	if err != nil {
		return store.TenantRecord{}, err
	}
	return store.TenantRecord{ID: id, Version: v, Updated: toMs(at), Deleted: true}, nil
}

// toMs is t as the store reads it back: UTC, whole milliseconds.
func toMs(t time.Time) time.Time { return msTime(strconv.FormatInt(t.UnixMilli(), 10)) }

func (s *Store) putTenant(ctx context.Context, id, mode string, updated, created time.Time, spec []byte) (int64, error) {
	v, err := putTenantScript.Run(ctx, s.c, tenantKeys, id, mode, updated.UnixMilli(), created.UnixMilli(), spec).Int64()
	switch {
	case err != nil:
		return 0, err
	case v == -1:
		return 0, fmt.Errorf("%w: tenant %q", store.ErrExists, id)
	case v == -2:
		return 0, fmt.Errorf("%w: tenant %q", store.ErrNotFound, id)
	}
	return v, nil
}

// GetTenant reads the live record.
func (s *Store) GetTenant(ctx context.Context, id string) (store.TenantRecord, error) {
	recs, err := s.readTenants(ctx, []string{id})
	if err != nil {
		return store.TenantRecord{}, err
	}
	if len(recs) == 0 || recs[0].Deleted {
		return store.TenantRecord{}, fmt.Errorf("%w: tenant %q", store.ErrNotFound, id)
	}
	return recs[0], nil
}

// PageTenants pages the live ids in lexical order (ZRANGEBYLEX).
func (s *Store) PageTenants(ctx context.Context, prefix, after string, limit int) ([]store.TenantRecord, error) {
	lo, hi := "-", "+"
	if prefix != "" {
		lo, hi = "["+prefix, "["+prefix+"\xff"
	}
	if after != "" && after >= prefix {
		lo = "(" + after
	}
	ids, err := s.c.ZRangeByLex(ctx, keyTenantLive, &redis.ZRangeBy{Min: lo, Max: hi, Count: int64(store.PageLimit(limit))}).Result()
	if err != nil {
		return nil, err
	}
	return s.readTenants(ctx, ids)
}

// ChangedTenants reads the ids changed after since (by version), then
// their records.
func (s *Store) ChangedTenants(ctx context.Context, since int64, limit int) ([]store.TenantRecord, error) {
	ids, err := s.c.ZRangeByScore(ctx, keyTenantVer, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(since, 10), Max: "+inf", Count: int64(store.PageLimit(limit))}).Result()
	if err != nil {
		return nil, err
	}
	return s.readTenants(ctx, ids)
}

// readTenants reads the records and versions of ids in one pipeline,
// leaving out ids without a record (a race with nothing: records are never
// removed, only replaced by tombstones).
func (s *Store) readTenants(ctx context.Context, ids []string) ([]store.TenantRecord, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var vals *redis.SliceCmd
	var vers *redis.FloatSliceCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		vals = p.HMGet(ctx, keyTenants, ids...)
		vers = p.ZMScore(ctx, keyTenantVer, ids...)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]store.TenantRecord, 0, len(ids))
	for i, v := range vals.Val() {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		parts := strings.SplitN(raw, "|", 4)
		if len(parts) != 4 {
			return nil, fmt.Errorf("redisstore: bad tenant record %s", ids[i])
		}
		r := store.TenantRecord{ID: ids[i], Created: msTime(parts[0]), Updated: msTime(parts[1]), Deleted: parts[2] == "1"}
		if !r.Deleted {
			r.Spec = []byte(parts[3])
		}
		if vs := vers.Val(); i < len(vs) {
			r.Version = int64(vs[i])
		}
		out = append(out, r)
	}
	return out, nil
}
