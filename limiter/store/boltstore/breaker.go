package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// Beyond the admission record P+"brk" ("state|open_until_ms|probes"), a
// tenant's breaker has P+"warn" (present while the rate is halved) and
// P+"brkdata" (the feedback side's state, opaque here). Attribution records
// are "gw:msg:<SES id>", dedupe keys "gw:dedupe:<key>", both with expiry.

func warned(k kv, tenant string) bool {
	_, ok := k.get(prefix(tenant) + "warn")
	return ok
}

func readRecord(k kv, tenant string) (store.BreakerRecord, error) {
	b, err := readBreaker(k, tenant)
	if err != nil {
		return store.BreakerRecord{}, err
	}
	r := store.BreakerRecord{Breaker: b, Warning: warned(k, tenant)}
	if d, ok := k.get(prefix(tenant) + "brkdata"); ok {
		r.Data = []byte(d)
	}
	return r, nil
}

// GetBreakerRecord reads a tenant's whole breaker record.
func (s *Store) GetBreakerRecord(ctx context.Context, tenant string) (store.BreakerRecord, error) {
	var r store.BreakerRecord
	err := s.viewKV(func(k kv) error {
		var err error
		r, err = readRecord(k, tenant)
		return err
	})
	return r, err
}

// UpdateBreakerRecord runs fn on the tenant's record and writes what fn
// left in it; fn returns false to write nothing. Like the Redis store's
// WATCH, it is optimistic: fn runs with no lock held (it may call the
// store's reads, SentMinutes for one), and the write commits only if the
// record is still the one fn read (an admission spending half-open probes
// may have changed it), else fn runs again, at most maxUpdateTries times.
// The commit is fsynced, so waited is true for every written trip.
func (s *Store) UpdateBreakerRecord(ctx context.Context, tenant string, fn func(*store.BreakerRecord) (bool, error)) (waited bool, err error) {
	P := prefix(tenant)
	keys := []string{P + keyBreaker, P + "warn", P + "brkdata"}
	for range maxUpdateTries {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		var rec store.BreakerRecord
		var seen [][]byte
		err := s.viewKV(func(k kv) error {
			var err error
			if rec, err = readRecord(k, tenant); err != nil {
				return err
			}
			seen = rawValues(k, keys)
			return nil
		})
		if err != nil {
			return false, err
		}
		write, err := fn(&rec)
		if err != nil || !write {
			return false, err
		}
		if err := rec.Validate(); err != nil {
			return false, err
		}
		if len(rec.Data) > store.MaxBreakerData {
			return false, fmt.Errorf("boltstore: breaker data of %d bytes", len(rec.Data))
		}
		changed := false
		err = s.updateKV(func(tx *bolt.Tx) error {
			k := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}
			if !slices.EqualFunc(seen, rawValues(k, keys), bytes.Equal) {
				changed = true
				return nil
			}
			if err := writeBreaker(k, tenant, rec.Breaker); err != nil {
				return err
			}
			var err error
			if rec.Warning {
				err = k.put(P+"warn", "1", 0)
			} else {
				err = k.b.Delete([]byte(P + "warn"))
			}
			if err != nil {
				return err
			}
			return k.put(P+"brkdata", string(rec.Data), 0)
		})
		if err != nil {
			return false, err
		}
		if !changed {
			return true, nil
		}
	}
	return false, fmt.Errorf("boltstore: breaker record of %q changed %d times while updating", tenant, maxUpdateTries)
}

// maxUpdateTries bounds UpdateBreakerRecord's optimistic retries.
const maxUpdateTries = 16

// rawValues are keys' stored values (nil: absent), copied.
func rawValues(k kv, keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, key := range keys {
		if v := k.raw(key); v != nil {
			out[i] = bytes.Clone(v)
		}
	}
	return out
}

// SentMinutes returns the per-minute sent counters of the whole minutes
// from..to (at most SentTTL of them, the newest), oldest first, with the
// unix minute of the first.
func (s *Store) SentMinutes(ctx context.Context, tenant string, from, to time.Time) (first int64, counts []int64, err error) {
	first, last := from.UnixMilli()/sentBucket.Milliseconds(), to.UnixMilli()/sentBucket.Milliseconds()
	if last < first {
		return first, nil, nil
	}
	if n := int64(s.sentTTL / sentBucket); last-first > n {
		first = last - n
	}
	err = s.viewKV(func(k kv) error {
		for m := first; m <= last; m++ {
			counts = append(counts, int64(k.num(prefix(tenant)+keySent+strconv.FormatInt(m, 10))))
		}
		return nil
	})
	return first, counts, err
}

// RememberMessages stores SES MessageId -> tenant and gateway id for ttl,
// in one transaction.
func (s *Store) RememberMessages(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		now := s.now().UnixMilli()
		k := kv{b: tx.Bucket(bucketKV), now: now}
		for _, r := range refs {
			if err := k.put("gw:msg:"+r.SESMessageID, r.Tenant+"|"+r.GatewayID, now+ttl.Milliseconds()); err != nil {
				return err
			}
		}
		return nil
	})
}

// LookupMessage implements feedback.MessageLookup.
func (s *Store) LookupMessage(ctx context.Context, sesMessageID string) (tenant, gatewayID string, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v, ok := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}.get("gw:msg:" + sesMessageID)
		if ok {
			found = true
			for i := 0; i < len(v); i++ {
				if v[i] == '|' {
					tenant, gatewayID = v[:i], v[i+1:]
					return nil
				}
			}
			tenant = v
		}
		return nil
	})
	return tenant, gatewayID, found, err
}

// ClaimKey sets key if absent (or expired), for ttl: true the first time.
func (s *Store) ClaimKey(ctx context.Context, key string, ttl time.Duration) (first bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		now := s.now().UnixMilli()
		k := kv{b: tx.Bucket(bucketKV), now: now}
		if _, ok := k.get("gw:dedupe:" + key); ok {
			return nil
		}
		first = true
		return k.put("gw:dedupe:"+key, "1", now+ttl.Milliseconds())
	})
	return first, err
}

// ReleaseKey forgets a claimed key.
func (s *Store) ReleaseKey(ctx context.Context, key string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Delete([]byte("gw:dedupe:" + key))
	})
}

// subscribers is the in-process fan-out of breaker announcements (one
// process owns the file, so there is nobody else to tell).
type subscribers struct {
	mu  sync.Mutex
	fns map[int]func(string)
	n   int
}

// PublishBreaker announces that a tenant's breaker record changed to the
// subscribers of this process.
func (s *Store) PublishBreaker(ctx context.Context, tenant string) error {
	s.subs.mu.Lock()
	fns := make([]func(string), 0, len(s.subs.fns))
	for _, f := range s.subs.fns {
		fns = append(fns, f)
	}
	s.subs.mu.Unlock()
	for _, f := range fns {
		f(tenant)
	}
	return nil
}

// SubscribeBreakers calls fn for every announcement until ctx is done.
func (s *Store) SubscribeBreakers(ctx context.Context, fn func(tenant string)) error {
	s.subs.mu.Lock()
	if s.subs.fns == nil {
		s.subs.fns = map[int]func(string){}
	}
	s.subs.n++
	id := s.subs.n
	s.subs.fns[id] = fn
	s.subs.mu.Unlock()
	<-ctx.Done()
	s.subs.mu.Lock()
	delete(s.subs.fns, id)
	s.subs.mu.Unlock()
	return nil
}
