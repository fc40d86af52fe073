package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// RecordMessageEvents appends each event to its message's record (a JSON
// list in the kv bucket under gw:ms:<gateway id>, with the kv expiry),
// capped at store.MaxMessageEvents; one transaction.
func (s *Store) RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error {
	if len(evs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		now := s.now().UnixMilli()
		k := kv{b: tx.Bucket(bucketKV), now: now}
		for _, ev := range evs {
			key := "gw:ms:" + ev.GatewayID
			var list []store.MessageEvent
			if v, ok := k.get(key); ok {
				if err := json.Unmarshal([]byte(v), &list); err != nil {
					return fmt.Errorf("boltstore: message events: %w", err)
				}
			}
			list = append(list, ev)
			if len(list) > store.MaxMessageEvents {
				list = list[len(list)-store.MaxMessageEvents:]
			}
			raw, err := json.Marshal(list)
			if err != nil {
				return err
			}
			if err := k.put(key, string(raw), now+ttl.Milliseconds()); err != nil {
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
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return fmt.Errorf("boltstore: message events: %w", err)
		}
		for i := range out {
			out[i].GatewayID = gatewayID
		}
		return nil
	})
	return out, err
}
