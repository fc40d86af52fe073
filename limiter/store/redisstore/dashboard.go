package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// The dashboard's shared state (store.DashboardStore). Keys:
//
//	gw:rcpt:<hmac>           list    store.RecipientMessage JSON, newest first, at most
//	                                 store.MaxRecipientMessages, expires with the message status
//	gw:{t:<id>}:rf:<hour>    hash    "<unix minute>|<reason>" -> refusals, expires SeriesSpan
//	                                 after the hour ends
//	gw:feed                  list    store.FeedEvent JSON, newest first, at most store.MaxFeedEvents
//
// Every write is one pipeline; none is on the send path (the callers batch).

var _ store.DashboardStore = (*Store)(nil)

func recipientKey(hash string) string { return "gw:rcpt:" + hash }

func refusalKey(tenant string, hour int64) string {
	return "gw:{t:" + tenant + "}:rf:" + strconv.FormatInt(hour, 10)
}

const feedKey = "gw:feed"

// RecordAccepted implements store.DashboardStore: per message an RPUSH,
// LTRIM and EXPIRE of its status list, and per recipient an LPUSH, LTRIM
// and EXPIRE of its index list; one pipeline.
func (s *Store) RecordAccepted(ctx context.Context, msgs []store.AcceptedMessage, ttl time.Duration) error {
	if len(msgs) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range msgs {
			raw, err := json.Marshal(m.Event)
			if err != nil {
				return err
			}
			k := statusKey(m.Event.GatewayID)
			p.RPush(ctx, k, raw)
			p.LTrim(ctx, k, -store.MaxMessageEvents, -1)
			p.Expire(ctx, k, ttl)
			if len(m.Recipients) == 0 {
				continue
			}
			ref, err := json.Marshal(store.RecipientMessage{Tenant: m.Event.Tenant, GatewayID: m.Event.GatewayID, At: m.Event.At})
			if err != nil {
				return err
			}
			for _, a := range m.Recipients {
				rk := recipientKey(s.keyer.Hash(a))
				p.LPush(ctx, rk, ref)
				p.LTrim(ctx, rk, 0, store.MaxRecipientMessages-1)
				p.Expire(ctx, rk, ttl)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: accepted messages: %w", err)
	}
	return nil
}

// MessagesTo implements store.DashboardStore: one LRANGE.
func (s *Store) MessagesTo(ctx context.Context, addr string) ([]store.RecipientMessage, error) {
	vals, err := s.c.LRange(ctx, recipientKey(s.keyer.Hash(strings.ToLower(addr))), 0, store.MaxRecipientMessages-1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: messages to: %w", err)
	}
	out := make([]store.RecipientMessage, 0, len(vals))
	for _, v := range vals {
		var m store.RecipientMessage
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, fmt.Errorf("redisstore: recipient index: %w", err)
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b store.RecipientMessage) int { return b.At.Compare(a.At) })
	return out, nil
}

// AddRefusals implements store.DashboardStore: an HINCRBY per count and a
// PEXPIREAT per hour key; one pipeline.
func (s *Store) AddRefusals(ctx context.Context, counts []store.RefusalCount) error {
	if len(counts) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		now := s.clock()
		expired := map[string]bool{}
		for _, c := range counts {
			hour := c.Minute / 60
			// Kept SeriesSpan past the hour's end, at the store's clock.
			ttl := time.Unix((hour+1)*3600, 0).Add(store.SeriesSpan).Sub(now)
			if c.N <= 0 || ttl <= 0 {
				continue
			}
			k := refusalKey(c.Tenant, hour)
			p.HIncrBy(ctx, k, strconv.FormatInt(c.Minute, 10)+"|"+c.Reason, c.N)
			if !expired[k] {
				expired[k] = true
				p.PExpire(ctx, k, ttl)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: refusals: %w", err)
	}
	return nil
}

// Refusals implements store.DashboardStore: an HGETALL per tenant and
// hour; one pipeline.
func (s *Store) Refusals(ctx context.Context, tenants []string, from, to int64) ([]store.RefusalCount, error) {
	if len(tenants) == 0 || to < from {
		return nil, nil
	}
	type read struct {
		tenant string
		cmd    *redis.MapStringStringCmd
	}
	var reads []read
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, t := range tenants {
			for h := from / 60; h <= to/60; h++ {
				reads = append(reads, read{t, p.HGetAll(ctx, refusalKey(t, h))})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: refusals: %w", err)
	}
	// A counter is kept SeriesSpan past its hour at the store's clock too
	// (the key's TTL runs in Redis's time).
	from = max(from, s.clock().Add(-store.SeriesSpan).Unix()/3600*60)
	var out []store.RefusalCount
	for _, r := range reads {
		for f, v := range r.cmd.Val() {
			if c, ok := parseRefusal(r.tenant, f, v, from, to); ok {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// parseRefusal reads one "<minute>|<reason>" field.
func parseRefusal(tenant, field, val string, from, to int64) (store.RefusalCount, bool) {
	ms, reason, ok := strings.Cut(field, "|")
	if !ok {
		return store.RefusalCount{}, false
	}
	m, err1 := strconv.ParseInt(ms, 10, 64)
	n, err2 := strconv.ParseInt(val, 10, 64)
	if err1 != nil || err2 != nil || m < from || m > to || n <= 0 {
		return store.RefusalCount{}, false
	}
	return store.RefusalCount{Tenant: tenant, Reason: reason, Minute: m, N: n}, true
}

// AppendFeed implements store.DashboardStore: an LPUSH of the events and
// an LTRIM; one pipeline.
func (s *Store) AppendFeed(ctx context.Context, evs []store.FeedEvent) error {
	if len(evs) == 0 {
		return nil
	}
	vals := make([]any, 0, len(evs))
	for _, ev := range evs {
		raw, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		vals = append(vals, raw)
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, feedKey, vals...)
		p.LTrim(ctx, feedKey, 0, store.MaxFeedEvents-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: feed: %w", err)
	}
	return nil
}

// Feed implements store.DashboardStore: one LRANGE.
func (s *Store) Feed(ctx context.Context, limit int) ([]store.FeedEvent, error) {
	limit = min(max(limit, 0), store.MaxFeedEvents)
	if limit == 0 {
		return nil, nil
	}
	vals, err := s.c.LRange(ctx, feedKey, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: feed: %w", err)
	}
	out := make([]store.FeedEvent, 0, len(vals))
	for _, v := range vals {
		var ev store.FeedEvent
		if err := json.Unmarshal([]byte(v), &ev); err != nil {
			return nil, fmt.Errorf("redisstore: feed event: %w", err)
		}
		out = append(out, ev)
	}
	slices.SortStableFunc(out, func(a, b store.FeedEvent) int { return b.At.Compare(a.At) })
	return out, nil
}
