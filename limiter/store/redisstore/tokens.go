package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// Keys of the operator state (store.Ops), all in the global slot {g} so one
// pipeline reads them on a Cluster too.
const (
	keyTokens    = "gw:{g}:tok"      // key id -> tenant|sha256|created_ms
	keyTokRevoke = "gw:{g}:tok:rev"  // key id -> revoked_ms
	keyTokExpire = "gw:{g}:tok:exp"  // key id -> deadline_ms
	keyTokUsed   = "gw:{g}:tok:used" // key id -> last used ms
	keyAudit     = "gw:{g}:audit"    // list, newest first, capped
	keyFreeze    = "gw:{g}:freeze"   // "t:"+tenant -> at_ms|by|reason
	keyGen       = "gw:{g}:gen"      // change counter
	// ChangesChannel is the pub/sub channel of Bump.
	ChangesChannel = "sesgate:changes"
)

var _ store.Ops = (*Store)(nil)

// CreateToken stores a new token record (HSETNX); CreateToken, RevokeToken
// and ExpireToken also log the change (tokenlog.go).
func (s *Store) CreateToken(ctx context.Context, r store.TokenRecord) error {
	ok, err := s.writeToken(ctx, keyTokens, "nx", r.KeyID, fmt.Sprintf("%s|%s|%d", r.Tenant, r.SHA256, r.Created.UnixMilli()))
	if err != nil {
		return err
	}
	if !ok {
		return store.ErrExists
	}
	return nil
}

// RevokeToken records the first revocation time of keyID.
func (s *Store) RevokeToken(ctx context.Context, keyID string, at time.Time) error {
	_, err := s.writeToken(ctx, keyTokRevoke, "nx", keyID, at.UnixMilli())
	return err
}

// ExpireToken sets the deadline of keyID.
func (s *Store) ExpireToken(ctx context.Context, keyID string, at time.Time) error {
	_, err := s.writeToken(ctx, keyTokExpire, "set", keyID, at.UnixMilli())
	return err
}

// ListTokens reads the four token hashes, each in pages (HSCAN), so that
// no reply of 100,000 tokens outlasts the read timeout.
func (s *Store) ListTokens(ctx context.Context) ([]store.TokenRecord, error) {
	var toks, rev, exp, used mapCmd
	for _, h := range []struct {
		key string
		dst *mapCmd
	}{{keyTokens, &toks}, {keyTokRevoke, &rev}, {keyTokExpire, &exp}, {keyTokUsed, &used}} {
		m, err := s.hscanAll(ctx, h.key)
		if err != nil {
			return nil, err
		}
		*h.dst = m
	}
	byID := map[string]*store.TokenRecord{}
	get := func(id string) *store.TokenRecord {
		if r, ok := byID[id]; ok {
			return r
		}
		r := &store.TokenRecord{KeyID: id}
		byID[id] = r
		return r
	}
	for id, v := range toks.Val() {
		parts := strings.Split(v, "|")
		if len(parts) != 3 {
			return nil, fmt.Errorf("redisstore: bad token record %s", id)
		}
		r := get(id)
		r.Tenant, r.SHA256, r.Created = parts[0], parts[1], msTime(parts[2])
	}
	for id, v := range rev.Val() {
		get(id).Revoked = msTime(v)
	}
	for id, v := range exp.Val() {
		get(id).Expires = msTime(v)
	}
	for id, v := range used.Val() {
		if r, ok := byID[id]; ok {
			r.LastUsed = msTime(v)
		}
	}
	out := make([]store.TokenRecord, 0, len(byID))
	for _, r := range byID {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b store.TokenRecord) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out, nil
}

func msTime(v string) time.Time {
	ms, _ := strconv.ParseInt(v, 10, 64)
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// TouchTokens writes last-used times in one HSET.
func (s *Store) TouchTokens(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(used))
	for id, t := range used {
		args = append(args, id, t.UnixMilli())
	}
	return s.c.HSet(ctx, keyTokUsed, args...).Err()
}

// SetFreezeInfo records or clears who froze tenant.
func (s *Store) SetFreezeInfo(ctx context.Context, tenant string, info *store.FreezeInfo) error {
	if info == nil {
		return s.c.HDel(ctx, keyFreeze, "t:"+tenant).Err()
	}
	return s.c.HSet(ctx, keyFreeze, "t:"+tenant, fmt.Sprintf("%d|%s|%s", info.At.UnixMilli(), info.By, info.Reason)).Err()
}

// FreezeInfos returns every recorded freeze by tenant ("" is global).
func (s *Store) FreezeInfos(ctx context.Context) (map[string]store.FreezeInfo, error) {
	m, err := s.c.HGetAll(ctx, keyFreeze).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.FreezeInfo, len(m))
	for k, v := range m {
		parts := strings.SplitN(v, "|", 3)
		if len(parts) != 3 {
			continue
		}
		out[strings.TrimPrefix(k, "t:")] = store.FreezeInfo{At: msTime(parts[0]), By: parts[1], Reason: parts[2]}
	}
	return out, nil
}

// Bump increments the change counter and publishes it.
func (s *Store) Bump(ctx context.Context) error {
	n, err := s.c.Incr(ctx, keyGen).Result()
	if err != nil {
		return err
	}
	return s.c.Publish(ctx, ChangesChannel, n).Err()
}

// Generation reads the change counter.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	n, err := s.c.Get(ctx, keyGen).Int64()
	if err == redis.Nil {
		return 0, nil
	}
	return n, err
}

// Changes subscribes to the change channel until ctx ends.
func (s *Store) Changes(ctx context.Context, f func()) {
	sub := s.c.Subscribe(ctx, ChangesChannel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			f()
		}
	}
}

// PageSuppressions scans one list with HSCAN MATCH prefix* and returns the
// first limit addresses after after, in order. It reads the whole matching
// part of the list: an admin call, not a hot path.
func (s *Store) PageSuppressions(ctx context.Context, tenant, prefix, after string, limit int) ([]store.Suppression, error) {
	match := escapeGlob(strings.ToLower(prefix)) + "*"
	var out []store.Suppression
	var cursor uint64
	for {
		kv, next, err := s.c.HScan(ctx, supKey(tenant), cursor, match, 1000).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] <= after {
				continue
			}
			sp, err := store.DecodeSuppression(tenant, kv[i], kv[i+1])
			if err != nil {
				return nil, err
			}
			out = append(out, sp)
		}
		// Keep memory bounded: only the smallest limit matter.
		if len(out) > 4*limit+1000 {
			out = smallest(out, limit)
		}
		cursor = next
		if cursor == 0 {
			return smallest(out, limit), nil
		}
	}
}

func smallest(list []store.Suppression, limit int) []store.Suppression {
	slices.SortFunc(list, func(a, b store.Suppression) int { return strings.Compare(a.Address, b.Address) })
	if len(list) > limit {
		list = list[:limit]
	}
	return list
}

func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
