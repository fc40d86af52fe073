package boltstore

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// RecordMessageEvents appends each event to its message's record (a
// compact list, compact.go, in the kv bucket under gw:ms:<gateway id>,
// with the kv expiry),
// capped at store.MaxMessageEvents; one transaction.
func (s *Store) RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error {
	if len(evs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		w := s.newListWriter(tx, ttl, len(evs))
		for i := range evs {
			if err := w.event(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// MessageEvents returns a message's events, oldest first.
func (s *Store) MessageEvents(ctx context.Context, gatewayID string) (out []store.MessageEvent, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v, ok := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}.get("gw:ms:" + gatewayID)
		if !ok {
			return nil
		}
		var err error
		if out, err = decodeEvents([]byte(v)); err != nil {
			return err
		}
		for i := range out {
			out[i].GatewayID = gatewayID
		}
		return nil
	})
	return out, err
}
