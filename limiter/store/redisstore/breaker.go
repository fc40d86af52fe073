package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// Breaker records beyond the admission fields: the hash gw:{t:<id>}:brk
// also holds fieldWarning and fieldData.

// BreakerChannel is the pub/sub channel on which a changed breaker record
// is announced (the message is the tenant id).
const BreakerChannel = "gw:brk:changed"

// maxUpdateTries bounds the optimistic retries of UpdateBreakerRecord.
const maxUpdateTries = 20

// GetBreakerRecord reads a tenant's whole breaker record.
func (s *Store) GetBreakerRecord(ctx context.Context, tenant string) (store.BreakerRecord, error) {
	v, err := s.c.HMGet(ctx, tenantPrefix(tenant)+keyBreaker, fieldState, fieldOpenUntil, fieldProbes, fieldWarning, fieldData).Result()
	if err != nil {
		return store.BreakerRecord{}, err
	}
	return decodeRecord(v)
}

func decodeRecord(v []any) (store.BreakerRecord, error) {
	r := store.BreakerRecord{Breaker: store.Breaker{State: store.Closed}}
	str := func(i int) string { s, _ := v[i].(string); return s }
	if st := str(0); st != "" {
		r.State = store.BreakerState(st)
	}
	if ms, _ := strconv.ParseInt(str(1), 10, 64); ms > 0 {
		r.OpenUntil = time.UnixMilli(ms).UTC()
	}
	r.Probes, _ = strconv.ParseInt(str(2), 10, 64)
	r.Warning = str(3) == flagSet
	if d := str(4); d != "" {
		r.Data = []byte(d)
	}
	return r, r.Validate()
}

// UpdateBreakerRecord runs fn on the tenant's record and writes what fn
// left in it, atomically (WATCH/MULTI on the record: a concurrent change,
// by another replica or by admission spending probes, retries the whole
// call). fn may run more than once; it returns false to write nothing.
// When the write moves the record to open or forced_open and the server
// has replicas, it waits (WAIT 1 100) for one to acknowledge it, so the
// trip survives a failover; waited reports that.
func (s *Store) UpdateBreakerRecord(ctx context.Context, tenant string, fn func(*store.BreakerRecord) (bool, error)) (waited bool, err error) {
	key := tenantPrefix(tenant) + keyBreaker
	for try := range maxUpdateTries {
		if try > 0 { // a concurrent writer won: back off a little, with jitter
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(try)*int64(2*time.Millisecond)) + 1)):
			}
		}
		waited = false
		err = s.c.Watch(ctx, func(tx *redis.Tx) error {
			v, err := tx.HMGet(ctx, key, fieldState, fieldOpenUntil, fieldProbes, fieldWarning, fieldData).Result()
			if err != nil {
				return err
			}
			old, err := decodeRecord(v)
			if err != nil {
				return err
			}
			rec := old
			rec.Data = append([]byte(nil), old.Data...)
			write, err := fn(&rec)
			if err != nil || !write {
				return err
			}
			if err := rec.Validate(); err != nil {
				return err
			}
			if len(rec.Data) > store.MaxBreakerData {
				return fmt.Errorf("redisstore: breaker data of %d bytes", len(rec.Data))
			}
			var until int64
			if !rec.OpenUntil.IsZero() {
				until = rec.OpenUntil.UnixMilli()
			}
			warn := flagUnset
			if rec.Warning {
				warn = flagSet
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, key, fieldState, string(rec.State), fieldOpenUntil, until, fieldProbes, rec.Probes, fieldWarning, warn, fieldData, string(rec.Data))
				return nil
			})
			if err != nil {
				return err
			}
			tripped := (rec.State == store.Open || rec.State == store.ForcedOpen) && (rec.State != old.State || !rec.OpenUntil.Equal(old.OpenUntil))
			if tripped && hasReplicas(ctx, tx) {
				// Same connection as the write: WAIT covers it.
				n, err := tx.Do(ctx, "WAIT", 1, 100).Int64()
				if err != nil {
					s.log.Warn("breaker trip: WAIT failed", "tenant", tenant, "err", err.Error())
				} else if n < 1 {
					s.log.Warn("breaker trip: no replica acknowledged within 100ms", "tenant", tenant)
				}
				waited = err == nil && n >= 1
			}
			return nil
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return waited, err
		}
	}
	return false, fmt.Errorf("redisstore: breaker record of %q: too much contention", tenant)
}

// hasReplicas reports whether the server the connection talks to is a
// primary with connected replicas (INFO replication).
func hasReplicas(ctx context.Context, c redis.Cmdable) bool {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n > 0
		}
	}
	return false
}

// SentMinutes returns the per-minute sent counters of the whole minutes
// from..to (at most SentTTL of them, the newest), oldest first, with the
// minute (unix minutes) of the first.
func (s *Store) SentMinutes(ctx context.Context, tenant string, from, to time.Time) (first int64, counts []int64, err error) {
	first, last := from.UnixMilli()/sentBucket.Milliseconds(), to.UnixMilli()/sentBucket.Milliseconds()
	if last < first {
		return first, nil, nil
	}
	if n := int64(s.sentTTL / sentBucket); last-first > n {
		first = last - n
	}
	keys := make([]string, 0, last-first+1)
	for m := first; m <= last; m++ {
		keys = append(keys, tenantPrefix(tenant)+keySent+strconv.FormatInt(m, 10))
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return first, nil, err
	}
	counts = make([]int64, len(vals))
	for i, v := range vals {
		if str, ok := v.(string); ok {
			counts[i], _ = strconv.ParseInt(str, 10, 64)
		}
	}
	return first, counts, nil
}

// msgKey is the attribution record of an SES MessageId (its own slot: the
// id is random, so these spread over a Cluster).
func msgKey(id string) string { return "gw:msg:" + id }

// RememberMessages stores SES MessageId -> tenant and gateway id for ttl,
// pipelined (one round trip for the batch on a standalone server).
func (s *Store) RememberMessages(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range refs {
			p.Set(ctx, msgKey(r.SESMessageID), r.Tenant+"|"+r.GatewayID, ttl)
		}
		return nil
	})
	return err
}

// LookupMessage implements feedback.MessageLookup.
func (s *Store) LookupMessage(ctx context.Context, sesMessageID string) (tenant, gatewayID string, found bool, err error) {
	v, err := s.c.Get(ctx, msgKey(sesMessageID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	tenant, gatewayID, _ = strings.Cut(v, "|")
	return tenant, gatewayID, true, nil
}

// ClaimKey sets key (namespaced) if absent, for ttl (SET NX PX): true the
// first time.
func (s *Store) ClaimKey(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.c.SetNX(ctx, "gw:dedupe:"+key, "1", ttl).Result()
}

// ReleaseKey forgets a claimed key.
func (s *Store) ReleaseKey(ctx context.Context, key string) error {
	return s.c.Del(ctx, "gw:dedupe:"+key).Err()
}

// PublishBreaker announces that a tenant's breaker record changed.
func (s *Store) PublishBreaker(ctx context.Context, tenant string) error {
	return s.c.Publish(ctx, BreakerChannel, tenant).Err()
}

// SubscribeBreakers calls fn with the tenant of every announcement until
// ctx is done; it resubscribes after a connection loss (go-redis does).
func (s *Store) SubscribeBreakers(ctx context.Context, fn func(tenant string)) error {
	ps := s.c.Subscribe(ctx, BreakerChannel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		return err
	}
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			fn(m.Payload)
		}
	}
}
