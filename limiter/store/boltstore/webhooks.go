package boltstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// The webhook queue (store.WebhookItem), in the bucket "wh" and its
// sub-buckets, with the Redis store's semantics:
//
//	q      chain NUL seq(8)        -> item JSON (a chain's head is its first key)
//	due    due ms(8) chain         -> "" (chains with items, by due time)
//	duei   chain                   -> due ms(8)
//	lease  chain                   -> lease token of the claimed head
//	age    tenant NUL enq ms(8) id -> "" (the backlog, oldest first)
//	cnt    tenant                  -> backlog (8); deadCount -> dead entries
//	dead   id                      -> store.DeadWebhook JSON
//	deadz  died ms(8) id           -> "" (dead entries, oldest first)
var (
	bucketWH = []byte("wh")
	whSubs   = []string{"q", "due", "duei", "lease", "age", "cnt", "dead", "deadz"}
)

// deadCount is the cnt entry that counts the dead entries (a tenant id
// never starts with NUL).
const deadCount = "\x00dead"

type whTx struct {
	q, due, duei, lease, age, cnt, dead, deadz *bolt.Bucket
}

// wh opens (creating on a writable tx) the queue's buckets; nil when a
// read-only tx finds none.
func whBuckets(tx *bolt.Tx) (*whTx, error) {
	root := tx.Bucket(bucketWH)
	if root == nil {
		if !tx.Writable() {
			return nil, nil
		}
		var err error
		if root, err = tx.CreateBucket(bucketWH); err != nil {
			return nil, err
		}
	}
	bs := make([]*bolt.Bucket, len(whSubs))
	for i, name := range whSubs {
		b := root.Bucket([]byte(name))
		if b == nil {
			if !tx.Writable() {
				return nil, nil
			}
			var err error
			if b, err = root.CreateBucket([]byte(name)); err != nil {
				return nil, err
			}
		}
		bs[i] = b
	}
	return &whTx{q: bs[0], due: bs[1], duei: bs[2], lease: bs[3], age: bs[4], cnt: bs[5], dead: bs[6], deadz: bs[7]}, nil
}

func u64(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func ageKey(it *store.WebhookItem) []byte {
	return cat([]byte(it.Tenant), []byte{0}, u64(it.Enqueued.UnixMilli()), []byte(it.ID))
}

// head returns the first key and value of chain.
func (w *whTx) head(chain string) ([]byte, []byte) {
	p := append([]byte(chain), 0)
	k, v := w.q.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+8 {
		return nil, nil
	}
	return k, v
}

// setDue (re)schedules chain at ms.
func (w *whTx) setDue(chain string, ms int64) error {
	if err := w.unsetDue(chain); err != nil {
		return err
	}
	if err := w.due.Put(cat(u64(ms), []byte(chain)), nil); err != nil {
		return err
	}
	return w.duei.Put([]byte(chain), u64(ms))
}

func (w *whTx) unsetDue(chain string) error {
	if old := w.duei.Get([]byte(chain)); old != nil {
		if err := w.due.Delete(cat(old, []byte(chain))); err != nil {
			return err
		}
		return w.duei.Delete([]byte(chain))
	}
	return nil
}

func (w *whTx) addCount(tenant string, d int64) error {
	var n int64
	if v := w.cnt.Get([]byte(tenant)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n = max(n+d, 0)
	if n == 0 {
		return w.cnt.Delete([]byte(tenant))
	}
	return w.cnt.Put([]byte(tenant), u64(n))
}

func (w *whTx) count(tenant string) int64 {
	if v := w.cnt.Get([]byte(tenant)); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// push appends it to its chain (due at now when the chain was empty).
func (w *whTx) push(it *store.WebhookItem, now time.Time) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	empty, _ := w.head(it.Chain)
	seq, err := w.q.NextSequence()
	if err != nil {
		return err
	}
	if err := w.q.Put(cat([]byte(it.Chain), []byte{0}, u64(int64(seq))), raw); err != nil {
		return err
	}
	if empty == nil {
		if err := w.setDue(it.Chain, now.UnixMilli()); err != nil {
			return err
		}
	}
	if err := w.age.Put(ageKey(it), nil); err != nil {
		return err
	}
	return w.addCount(it.Tenant, 1)
}

// EnqueueWebhook appends it to its chain; false when the tenant's backlog
// already holds max items.
func (s *Store) EnqueueWebhook(ctx context.Context, it store.WebhookItem, now time.Time, max int) (ok bool, err error) {
	if err := it.Validate(); err != nil {
		return false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		if w.count(it.Tenant) >= int64(max) {
			return nil
		}
		ok = true
		return w.push(&it, now)
	})
	return ok, err
}

// ClaimWebhooks leases up to limit due chains until now+lease and returns
// their heads.
func (s *Store) ClaimWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) (out []store.WebhookClaim, err error) {
	limit = min(max(limit, 1), store.MaxWebhookClaim)
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	prefix := hex.EncodeToString(b[:]) + ":"
	err = s.db.Update(func(tx *bolt.Tx) error {
		out = out[:0]
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		var chains []string
		nowMS := now.UnixMilli()
		c := w.due.Cursor()
		for k, _ := c.First(); k != nil && len(chains) < limit; k, _ = c.Next() {
			if int64(binary.BigEndian.Uint64(k[:8])) > nowMS {
				break
			}
			chains = append(chains, string(k[8:]))
		}
		for i, chain := range chains {
			_, v := w.head(chain)
			if v == nil {
				if err := w.unsetDue(chain); err != nil {
					return err
				}
				if err := w.lease.Delete([]byte(chain)); err != nil {
					return err
				}
				continue
			}
			var it store.WebhookItem
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("boltstore: webhook item: %w", err)
			}
			tok := prefix + strconv.Itoa(i+1)
			if err := w.setDue(chain, now.Add(lease).UnixMilli()); err != nil {
				return err
			}
			if err := w.lease.Put([]byte(chain), []byte(tok)); err != nil {
				return err
			}
			out = append(out, store.WebhookClaim{Item: it, Token: tok})
		}
		return nil
	})
	return out, err
}

// finish checks c's lease and runs fn on the chain's head (nil when it is
// not c's item any more), then reschedules the chain unless fn did.
func (s *Store) finish(c store.WebhookClaim, fn func(w *whTx, headKey []byte) (rescheduled bool, err error), now time.Time) (ok bool, err error) {
	chain := c.Item.Chain
	err = s.db.Update(func(tx *bolt.Tx) error {
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		if !bytes.Equal(w.lease.Get([]byte(chain)), []byte(c.Token)) {
			return nil
		}
		ok = true
		if err := w.lease.Delete([]byte(chain)); err != nil {
			return err
		}
		k, v := w.head(chain)
		if v != nil {
			var it store.WebhookItem
			if json.Unmarshal(v, &it) != nil || it.ID != c.Item.ID {
				k = nil
			}
		}
		done, err := fn(w, k)
		if err != nil || done {
			return err
		}
		if next, _ := w.head(chain); next != nil {
			return w.setDue(chain, now.UnixMilli())
		}
		return w.unsetDue(chain)
	})
	return ok, err
}

// pop removes the head at k (the claimed item).
func (w *whTx) pop(k []byte, it *store.WebhookItem) error {
	if err := w.q.Delete(k); err != nil {
		return err
	}
	if err := w.age.Delete(ageKey(it)); err != nil {
		return err
	}
	return w.addCount(it.Tenant, -1)
}

// AckWebhook drops the claimed head (delivered); false when the lease was
// lost.
func (s *Store) AckWebhook(ctx context.Context, c store.WebhookClaim, now time.Time) (bool, error) {
	ok, err := s.finish(c, func(w *whTx, k []byte) (bool, error) {
		if k == nil {
			return false, nil
		}
		return false, w.pop(k, &c.Item)
	}, now)
	if ok && err == nil {
		o, _ := store.HealthOutcome(store.OutcomeDelivered, c, c.Item, now)
		s.recordHealth(o, "")
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
	ok, err := s.finish(c, func(w *whTx, k []byte) (bool, error) {
		if k != nil {
			if err := w.q.Put(k, raw); err != nil {
				return false, err
			}
		}
		return true, w.setDue(c.Item.Chain, due.UnixMilli())
	}, due)
	if o, count := store.HealthOutcome(store.OutcomeFailed, c, it, s.now()); ok && err == nil && count {
		s.recordHealth(o, "")
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
	counted := false
	ok, err := s.finish(c, func(w *whTx, k []byte) (bool, error) {
		if k == nil {
			return false, nil
		}
		counted = true
		if err := w.pop(k, &c.Item); err != nil {
			return false, err
		}
		if err := w.dead.Put([]byte(it.ID), raw); err != nil {
			return false, err
		}
		if err := w.deadz.Put(cat(u64(now.UnixMilli()), []byte(it.ID)), nil); err != nil {
			return false, err
		}
		if err := w.addCount(deadCount, 1); err != nil {
			return false, err
		}
		for w.count(deadCount) > int64(maxDead) {
			k, _ := w.deadz.Cursor().First()
			if k == nil {
				break
			}
			if err := w.addCount(deadCount, -1); err != nil {
				return false, err
			}
			if err := w.dead.Delete(append([]byte(nil), k[8:]...)); err != nil {
				return false, err
			}
			if err := w.deadz.Delete(append([]byte(nil), k...)); err != nil {
				return false, err
			}
		}
		return false, nil
	}, now)
	if ok && err == nil {
		o, _ := store.HealthOutcome(store.OutcomeDead, c, it, now)
		id := it.ID
		if !counted {
			id = "" // not the head any more: not in the list
		}
		s.recordHealth(o, id)
	}
	return ok, err
}

// ListDeadWebhooks returns up to limit dead entries, newest first, of one
// tenant ("" for all).
func (s *Store) ListDeadWebhooks(ctx context.Context, tenant string, limit int) (out []store.DeadWebhook, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		w, err := whBuckets(tx)
		if err != nil || w == nil {
			return err
		}
		c := w.deadz.Cursor()
		for k, _ := c.Last(); k != nil && len(out) < limit; k, _ = c.Prev() {
			v := w.dead.Get(k[8:])
			if v == nil {
				continue
			}
			var d store.DeadWebhook
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("boltstore: dead webhook: %w", err)
			}
			if tenant == "" || d.Tenant == tenant {
				out = append(out, d)
			}
		}
		return nil
	})
	return out, err
}

// ReplayDeadWebhook puts a dead entry back at the end of its chain, its
// attempts reset and enqueued now; false when there is no such entry.
func (s *Store) ReplayDeadWebhook(ctx context.Context, id string, now time.Time) (ok bool, err error) {
	var replayed store.DeadWebhook
	err = s.db.Update(func(tx *bolt.Tx) error {
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		v := w.dead.Get([]byte(id))
		if v == nil {
			return nil
		}
		var d store.DeadWebhook
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("boltstore: dead webhook: %w", err)
		}
		if err := w.dead.Delete([]byte(id)); err != nil {
			return err
		}
		if err := w.deadz.Delete(cat(u64(d.Died.UnixMilli()), []byte(id))); err != nil {
			return err
		}
		if err := w.addCount(deadCount, -1); err != nil {
			return err
		}
		it := d.WebhookItem
		it.Attempts, it.LastError, it.Enqueued = 0, "", now.UTC()
		ok = true
		replayed = d
		return w.push(&it, now)
	})
	if ok && err == nil {
		s.forgetDead(replayed)
	}
	return ok, err
}

// WebhookStats returns the backlog of each tenant.
func (s *Store) WebhookStats(ctx context.Context, tenants []string) (map[string]store.WebhookStat, error) {
	out := make(map[string]store.WebhookStat, len(tenants))
	err := s.db.View(func(tx *bolt.Tx) error {
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		for _, t := range tenants {
			var st store.WebhookStat
			if w != nil {
				st.Backlog = w.count(t)
				p := append([]byte(t), 0)
				if k, _ := w.age.Cursor().Seek(p); k != nil && bytes.HasPrefix(k, p) && len(k) >= len(p)+8 {
					st.Oldest = time.UnixMilli(int64(binary.BigEndian.Uint64(k[len(p) : len(p)+8]))).UTC()
				}
			}
			out[t] = st
		}
		return nil
	})
	return out, err
}
