package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// Buckets of the operator state (store.Ops), created on first write.
var (
	bucketTokens = []byte("tokens") // key id -> JSON TokenRecord
	bucketOps    = []byte("ops")    // "freeze/<tenant>" -> JSON FreezeInfo, "gen" -> uint64
	bucketAudit  = []byte("audit")  // big-endian sequence -> entry
)

var _ store.Ops = (*Store)(nil)

func (s *Store) update(bucket []byte, f func(b *bolt.Bucket) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return f(b)
	})
}

func (s *Store) view(bucket []byte, f func(b *bolt.Bucket) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return f(b)
	})
}

// CreateToken stores a new token record.
func (s *Store) CreateToken(ctx context.Context, r store.TokenRecord) error {
	return s.update(bucketTokens, func(b *bolt.Bucket) error {
		if b.Get([]byte(r.KeyID)) != nil {
			return store.ErrExists
		}
		v, _ := json.Marshal(r)
		if err := b.Put([]byte(r.KeyID), v); err != nil {
			return err
		}
		return logToken(b.Tx(), r.KeyID)
	})
}

func (s *Store) editToken(keyID string, f func(r *store.TokenRecord)) error {
	return s.update(bucketTokens, func(b *bolt.Bucket) error {
		r := store.TokenRecord{KeyID: keyID}
		if v := b.Get([]byte(keyID)); v != nil {
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
		}
		f(&r)
		v, _ := json.Marshal(r)
		if err := b.Put([]byte(keyID), v); err != nil {
			return err
		}
		return logToken(b.Tx(), keyID) // tokenlog.go
	})
}

// RevokeToken records the first revocation time of keyID.
func (s *Store) RevokeToken(ctx context.Context, keyID string, at time.Time) error {
	return s.editToken(keyID, func(r *store.TokenRecord) {
		if r.Revoked.IsZero() {
			r.Revoked = at.UTC()
		}
	})
}

// ExpireToken sets the deadline of keyID.
func (s *Store) ExpireToken(ctx context.Context, keyID string, at time.Time) error {
	return s.editToken(keyID, func(r *store.TokenRecord) { r.Expires = at.UTC() })
}

// ListTokens returns every record, ordered by key id.
func (s *Store) ListTokens(ctx context.Context) ([]store.TokenRecord, error) {
	var out []store.TokenRecord
	err := s.view(bucketTokens, func(b *bolt.Bucket) error {
		return b.ForEach(func(_, v []byte) error {
			var r store.TokenRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// TouchTokens records last-used times of known records in one transaction.
func (s *Store) TouchTokens(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.update(bucketTokens, func(b *bolt.Bucket) error {
		for id, t := range used {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			var r store.TokenRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			r.LastUsed = t.UTC()
			nv, _ := json.Marshal(r)
			if err := b.Put([]byte(id), nv); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetFreezeInfo records or clears who froze tenant.
func (s *Store) SetFreezeInfo(ctx context.Context, tenant string, info *store.FreezeInfo) error {
	key := []byte("freeze/" + tenant)
	return s.update(bucketOps, func(b *bolt.Bucket) error {
		if info == nil {
			return b.Delete(key)
		}
		v, _ := json.Marshal(info)
		return b.Put(key, v)
	})
}

// FreezeInfos returns every recorded freeze by tenant ("" is global).
func (s *Store) FreezeInfos(ctx context.Context) (map[string]store.FreezeInfo, error) {
	out := map[string]store.FreezeInfo{}
	err := s.view(bucketOps, func(b *bolt.Bucket) error {
		c := b.Cursor()
		pfx := []byte("freeze/")
		for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
			var fi store.FreezeInfo
			if err := json.Unmarshal(v, &fi); err != nil {
				return err
			}
			out[string(k[len(pfx):])] = fi
		}
		return nil
	})
	return out, err
}

// Bump increments the change counter. The embedded store has one process:
// there is nobody else to tell.
func (s *Store) Bump(ctx context.Context) error {
	return s.update(bucketOps, func(b *bolt.Bucket) error {
		var n uint64
		if v := b.Get([]byte("gen")); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return b.Put([]byte("gen"), binary.BigEndian.AppendUint64(nil, n+1))
	})
}

// Generation reads the change counter.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var n int64
	err := s.view(bucketOps, func(b *bolt.Bucket) error {
		if v := b.Get([]byte("gen")); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, err
}

// Changes waits for ctx: one process, no other replica to hear from.
func (s *Store) Changes(ctx context.Context, f func()) { <-ctx.Done() }

// PageSuppressions returns one page of one list, ordered by address.
func (s *Store) PageSuppressions(ctx context.Context, tenant, prefix, after string, limit int) ([]store.Suppression, error) {
	var out []store.Suppression
	base := tenant + "\x00"
	pfx := []byte(base + strings.ToLower(prefix))
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSup).Cursor()
		start := pfx
		if a := []byte(base + after); after != "" && bytes.Compare(a, pfx) > 0 {
			start = a
		}
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, pfx) && len(out) < limit; k, v = c.Next() {
			addr := string(k[len(base):])
			if addr <= after {
				continue
			}
			sp, err := store.DecodeSuppression(tenant, addr, string(v))
			if err != nil {
				return err
			}
			out = append(out, sp)
		}
		return nil
	})
	return out, err
}
