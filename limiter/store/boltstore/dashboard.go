package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// The dashboard's shared state (store.DashboardStore), in the kv bucket
// with its expiry:
//
//	gw:rcpt:<hmac>            list of store.RecipientMessage, compact (compact.go; JSON, newest first, before), capped
//	gw:{t:<id>}:rf:<hour>     JSON object "<unix minute>|<reason>" -> refusals, kept SeriesSpan past the hour
//	gw:feed                   JSON list of store.FeedEvent, newest first, capped
//
// Each write is one transaction.

var _ store.DashboardStore = (*Store)(nil)

const feedKey = "gw:feed"

// getJSON decodes key's value into v; false when absent or expired.
func (k kv) getJSON(key string, v any) (bool, error) {
	raw, ok := k.get(key)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return false, fmt.Errorf("boltstore: %s: %w", key, err)
	}
	return true, nil
}

func (k kv) putJSON(key string, v any, exp int64) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return k.put(key, string(raw), exp)
}

// RecordAccepted implements store.DashboardStore; one transaction, one
// read and write per message and per distinct recipient of the batch.
func (s *Store) RecordAccepted(ctx context.Context, msgs []store.AcceptedMessage, ttl time.Duration) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return s.newListWriter(tx, ttl, len(msgs)).accepted(msgs)
	})
}

// MessagesTo implements store.DashboardStore.
func (s *Store) MessagesTo(ctx context.Context, addr string) (out []store.RecipientMessage, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v, ok := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}.get("gw:rcpt:" + s.keyer.Hash(strings.ToLower(addr)))
		if !ok {
			return nil
		}
		var err error
		out, err = decodeRefs([]byte(v))
		return err
	})
	slices.SortStableFunc(out, func(a, b store.RecipientMessage) int { return b.At.Compare(a.At) })
	return out, err
}

func refusalKey(tenant string, hour int64) string {
	return prefix(tenant) + "rf:" + strconv.FormatInt(hour, 10)
}

// AddRefusals implements store.DashboardStore; one transaction.
func (s *Store) AddRefusals(ctx context.Context, counts []store.RefusalCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		now := s.now().UnixMilli()
		k := kv{b: tx.Bucket(bucketKV), now: now}
		hours := map[string]map[string]int64{}
		exps := map[string]int64{}
		for _, c := range counts {
			hour := c.Minute / 60
			exp := time.Unix((hour+1)*3600, 0).Add(store.SeriesSpan).UnixMilli()
			if c.N <= 0 || exp <= now {
				continue
			}
			key := refusalKey(c.Tenant, hour)
			h, ok := hours[key]
			if !ok {
				h = map[string]int64{}
				if _, err := k.getJSON(key, &h); err != nil {
					return err
				}
				hours[key], exps[key] = h, exp
			}
			h[strconv.FormatInt(c.Minute, 10)+"|"+c.Reason] += c.N
		}
		for key, h := range hours {
			if err := k.putJSON(key, h, exps[key]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Refusals implements store.DashboardStore; one read transaction.
func (s *Store) Refusals(ctx context.Context, tenants []string, from, to int64) (out []store.RefusalCount, err error) {
	if to < from {
		return nil, nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}
		for _, t := range tenants {
			for h := from / 60; h <= to/60; h++ {
				var m map[string]int64
				if _, err := k.getJSON(refusalKey(t, h), &m); err != nil {
					return err
				}
				for f, n := range m {
					ms, reason, ok := strings.Cut(f, "|")
					mn, err := strconv.ParseInt(ms, 10, 64)
					if ok && err == nil && mn >= from && mn <= to && n > 0 {
						out = append(out, store.RefusalCount{Tenant: t, Reason: reason, Minute: mn, N: n})
					}
				}
			}
		}
		return nil
	})
	return out, err
}

// AppendFeed implements store.DashboardStore; one transaction.
func (s *Store) AppendFeed(ctx context.Context, evs []store.FeedEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}
		var list []store.FeedEvent
		if _, err := k.getJSON(feedKey, &list); err != nil {
			return err
		}
		add := slices.Clone(evs)
		slices.Reverse(add)
		list = append(add, list...)
		if len(list) > store.MaxFeedEvents {
			list = list[:store.MaxFeedEvents]
		}
		return k.putJSON(feedKey, list, 0)
	})
}

// Feed implements store.DashboardStore.
func (s *Store) Feed(ctx context.Context, limit int) (out []store.FeedEvent, err error) {
	limit = min(max(limit, 0), store.MaxFeedEvents)
	if limit == 0 {
		return nil, nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		_, err := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}.getJSON(feedKey, &out)
		return err
	})
	if len(out) > limit {
		out = out[:limit]
	}
	slices.SortStableFunc(out, func(a, b store.FeedEvent) int { return b.At.Compare(a.At) })
	return out, err
}
