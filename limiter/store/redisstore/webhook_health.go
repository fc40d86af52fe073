package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// Webhook health (store.WebhookHealth), in the queue's slot {wh}:
//
//	gw:{wh}:hc:<tenant>:<hour>  hash "<outcome>|<endpoint>" -> attempts in
//	                            that UTC hour (unix seconds of its start);
//	                            expires after store.WebhookHealthHours
//	gw:{wh}:hl:<tenant>         hash "ok|<endpoint>" -> last delivery (ms),
//	                            "err|<endpoint>" -> "<ms>|<error>"; expires
//	                            store.WebhookHealthKeep after the last write
//	gw:{wh}:deadt:<tenant>      zset item id -> died (ms): the tenant's dead
//	                            letters; entries older than the oldest of
//	                            gw:{wh}:deadz were trimmed there and do not
//	                            count
//
// The figures are written in one MULTI after the queue script succeeded
// (one more round trip per delivery, off the event intake's path).
const (
	whHealthCount = "gw:{wh}:hc:"
	whHealthLast  = "gw:{wh}:hl:"
	whDeadTenant  = "gw:{wh}:deadt:"
)

func hourOf(t time.Time) int64 { return t.Unix() / 3600 * 3600 }

// recordHealth adds o to the figures; dead is the dead entry's id (op
// dead), maxDead the list's bound. A failure is logged, never returned:
// the queue call it follows has succeeded.
func (s *Store) recordHealth(ctx context.Context, o store.WebhookOutcome, deadID string, maxDead int) {
	hc := whHealthCount + o.Tenant + ":" + strconv.FormatInt(hourOf(o.At), 10)
	hl := whHealthLast + o.Tenant
	ms := strconv.FormatInt(o.At.UnixMilli(), 10)
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, hc, o.Outcome+"|"+o.Endpoint, 1)
		p.Expire(ctx, hc, (store.WebhookHealthHours+1)*time.Hour)
		if o.Outcome == store.OutcomeDelivered {
			p.HSet(ctx, hl, "ok|"+o.Endpoint, ms)
		} else {
			p.HSet(ctx, hl, "err|"+o.Endpoint, ms+"|"+o.Error)
		}
		p.Expire(ctx, hl, store.WebhookHealthKeep)
		if deadID != "" {
			dt := whDeadTenant + o.Tenant
			p.ZAdd(ctx, dt, redis.Z{Score: float64(o.At.UnixMilli()), Member: deadID})
			p.ZRemRangeByRank(ctx, dt, 0, int64(-maxDead-1))
		}
		return nil
	})
	if err != nil {
		s.log.Warn("webhook health not recorded", "tenant", o.Tenant, "outcome", o.Outcome, "err", err.Error())
	}
}

// forgetDead drops a replayed entry from its tenant's dead letters.
func (s *Store) forgetDead(ctx context.Context, tenant, id string) {
	if err := s.c.ZRem(ctx, whDeadTenant+tenant, id).Err(); err != nil {
		s.log.Warn("webhook health: replayed entry not dropped", "tenant", tenant, "err", err.Error())
	}
}

// WebhookHealth returns each tenant's webhook health at now, one pipeline.
func (s *Store) WebhookHealth(ctx context.Context, tenants []string, now time.Time) (map[string]store.WebhookHealth, error) {
	stats, err := s.WebhookStats(ctx, tenants)
	if err != nil {
		return nil, err
	}
	type cmds struct {
		hours []*redis.MapStringStringCmd
		last  *redis.MapStringStringCmd
		dead  *redis.IntCmd
	}
	cs := make([]cmds, len(tenants))
	oldest, err := s.c.ZRangeWithScores(ctx, whDeadZ, 0, 0).Result()
	if err != nil {
		return nil, err
	}
	from := "+inf" // no dead letters at all
	if len(oldest) > 0 {
		from = strconv.FormatInt(int64(oldest[0].Score), 10)
	}
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range tenants {
			for h := range store.WebhookHealthHours {
				hour := hourOf(now) - int64(h)*3600
				cs[i].hours = append(cs[i].hours, p.HGetAll(ctx, whHealthCount+t+":"+strconv.FormatInt(hour, 10)))
			}
			cs[i].last = p.HGetAll(ctx, whHealthLast+t)
			cs[i].dead = p.ZCount(ctx, whDeadTenant+t, from, "+inf")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.WebhookHealth, len(tenants))
	for i, t := range tenants {
		eps := map[string]*store.WebhookEndpointHealth{}
		ep := func(url string) *store.WebhookEndpointHealth {
			if eps[url] == nil {
				eps[url] = &store.WebhookEndpointHealth{Endpoint: url}
			}
			return eps[url]
		}
		for _, h := range cs[i].hours {
			for f, v := range h.Val() {
				outcome, url, ok := strings.Cut(f, "|")
				n, _ := strconv.ParseInt(v, 10, 64)
				if !ok {
					continue
				}
				switch outcome {
				case store.OutcomeDelivered:
					ep(url).Delivered += n
				case store.OutcomeFailed:
					ep(url).Failed += n
				case store.OutcomeDead:
					ep(url).Dead += n
				}
			}
		}
		for f, v := range cs[i].last.Val() {
			kind, url, ok := strings.Cut(f, "|")
			if !ok {
				continue
			}
			msText, text, _ := strings.Cut(v, "|")
			ms, _ := strconv.ParseInt(msText, 10, 64)
			switch kind {
			case "ok":
				ep(url).LastDelivered = time.UnixMilli(ms).UTC()
			case "err":
				e := ep(url)
				e.LastFailed, e.LastError = time.UnixMilli(ms).UTC(), text
			}
		}
		wh := store.WebhookHealth{WebhookStat: stats[t], Dead: cs[i].dead.Val()}
		for _, e := range eps {
			wh.Webhooks = append(wh.Webhooks, *e)
		}
		slices.SortFunc(wh.Webhooks, func(a, b store.WebhookEndpointHealth) int { return strings.Compare(a.Endpoint, b.Endpoint) })
		out[t] = wh
	}
	return out, nil
}
