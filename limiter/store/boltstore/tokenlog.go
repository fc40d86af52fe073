package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// Buckets of the token change log (store.TokenLog).
var (
	bucketTokVer   = []byte("tokens_ver")   // big-endian version -> key id; its sequence is the counter
	bucketTokVerID = []byte("tokens_verid") // key id -> its version's key in tokens_ver
)

var _ store.TokenLog = (*Store)(nil)

// logToken stamps keyID with the next version, in the writing transaction.
func logToken(tx *bolt.Tx, keyID string) error {
	vb, err := tx.CreateBucketIfNotExists(bucketTokVer)
	if err != nil {
		return err
	}
	ib, err := tx.CreateBucketIfNotExists(bucketTokVerID)
	if err != nil {
		return err
	}
	if old := ib.Get([]byte(keyID)); old != nil {
		if err := vb.Delete(old); err != nil {
			return err
		}
	}
	seq, err := vb.NextSequence()
	if err != nil {
		return err
	}
	k := binary.BigEndian.AppendUint64(nil, seq)
	if err := vb.Put(k, []byte(keyID)); err != nil {
		return err
	}
	return ib.Put([]byte(keyID), k)
}

// TokenVersion reads the counter.
func (s *Store) TokenVersion(ctx context.Context) (int64, error) {
	var n int64
	err := s.view(bucketTokVer, func(b *bolt.Bucket) error { n = int64(b.Sequence()); return nil })
	return n, err
}

// ChangedTokens walks the log from since+1.
func (s *Store) ChangedTokens(ctx context.Context, since int64, limit int) ([]store.TokenChange, error) {
	limit = store.PageLimit(limit)
	var out []store.TokenChange
	err := s.db.View(func(tx *bolt.Tx) error {
		vb, tb := tx.Bucket(bucketTokVer), tx.Bucket(bucketTokens)
		if vb == nil || tb == nil {
			return nil
		}
		c := vb.Cursor()
		for k, id := c.Seek(u64(since + 1)); k != nil && len(out) < limit; k, id = c.Next() {
			ch := store.TokenChange{Version: int64(binary.BigEndian.Uint64(k)), TokenRecord: store.TokenRecord{KeyID: string(id)}}
			if v := tb.Get(id); v != nil {
				if err := json.Unmarshal(v, &ch.TokenRecord); err != nil {
					return err
				}
			}
			ch.LastUsed = time.Time{} // not logged (TouchTokens)
			out = append(out, ch)
		}
		return nil
	})
	return out, err
}
