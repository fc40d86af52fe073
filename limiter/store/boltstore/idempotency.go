package boltstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/gateway"
)

// Idempotency records live in the kv bucket under the Redis store's names
// (gw:{t:<tenant>}:idem:<hex SHA-256 of the key>), with the kv expiry: the
// end of the lease, then of the answer's life; expired records read as
// absent and are swept like every kv entry.
const keyIdem = "idem:"

var _ gateway.IdempotencyStore = (*Store)(nil)

// idemRecord is the value of an idempotency entry.
type idemRecord struct {
	FP     string `json:"fp"`
	Owner  string `json:"owner"`
	Answer []byte `json:"answer,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

func idemKey(tenant, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix(tenant) + keyIdem + hex.EncodeToString(sum[:])
}

// idemUpdate runs f on the record of (tenant, key) (nil when absent or
// expired) in one read-write transaction, with the kv view.
func (s *Store) idemUpdate(ctx context.Context, tenant, key string, f func(k kv, name string, rec *idemRecord, exp int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := idemKey(tenant, key)
	err := s.db.Update(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}
		var rec *idemRecord
		var exp int64
		if v, ok := k.get(name); ok {
			rec = &idemRecord{}
			if err := json.Unmarshal([]byte(v), rec); err != nil {
				return fmt.Errorf("idempotency record %s: %w", name, err)
			}
			exp = expiry(k.b.Get([]byte(name)))
		}
		return f(k, name, rec, exp)
	})
	if err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	return nil
}

func putIdem(k kv, name string, rec *idemRecord, exp int64) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return k.put(name, string(b), exp)
}

// ClaimIdempotency implements gateway.IdempotencyStore.
func (s *Store) ClaimIdempotency(ctx context.Context, tenant, key, fingerprint, owner string, lease time.Duration) (gateway.IdemClaim, error) {
	var c gateway.IdemClaim
	err := s.idemUpdate(ctx, tenant, key, func(k kv, name string, rec *idemRecord, exp int64) error {
		switch {
		case rec == nil:
			c = gateway.IdemClaim{State: gateway.IdemClaimed}
			return putIdem(k, name, &idemRecord{FP: fingerprint, Owner: owner}, k.now+lease.Milliseconds())
		case rec.FP != fingerprint:
			c = gateway.IdemClaim{State: gateway.IdemMismatch}
		case rec.Done:
			c = gateway.IdemClaim{State: gateway.IdemDone, Answer: rec.Answer}
		default:
			c = gateway.IdemClaim{State: gateway.IdemInFlight, Left: time.Duration(exp-k.now) * time.Millisecond}
		}
		return nil
	})
	return c, err
}

// CompleteIdempotency implements gateway.IdempotencyStore.
func (s *Store) CompleteIdempotency(ctx context.Context, tenant, key, owner string, answer []byte, ttl time.Duration) error {
	return s.idemUpdate(ctx, tenant, key, func(k kv, name string, rec *idemRecord, _ int64) error {
		if rec == nil || rec.Owner != owner {
			return nil
		}
		rec.Answer, rec.Done = answer, true
		return putIdem(k, name, rec, k.now+ttl.Milliseconds())
	})
}

// ReleaseIdempotency implements gateway.IdempotencyStore.
func (s *Store) ReleaseIdempotency(ctx context.Context, tenant, key, owner string) error {
	return s.idemUpdate(ctx, tenant, key, func(k kv, name string, rec *idemRecord, _ int64) error {
		if rec == nil || rec.Owner != owner {
			return nil
		}
		return k.b.Delete([]byte(name))
	})
}
