package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// Buckets of the API tenants (store.TenantStore).
var (
	bucketTenants   = []byte("tenants")     // id -> JSON TenantRecord (tombstones too)
	bucketTenantVer = []byte("tenants_ver") // big-endian version -> id; its sequence is the version counter
)

var _ store.TenantStore = (*Store)(nil)

// PutTenant creates or replaces a tenant record in one transaction.
func (s *Store) PutTenant(ctx context.Context, r store.TenantRecord, create bool) (store.TenantRecord, error) {
	if err := store.ValidateTenantRecord(r); err != nil {
		return store.TenantRecord{}, err
	}
	r.Created, r.Updated, r.Deleted = r.Created.UTC().Truncate(time.Millisecond), r.Updated.UTC().Truncate(time.Millisecond), false
	err := s.changeTenant(r.ID, func(cur *store.TenantRecord) (*store.TenantRecord, error) {
		switch live := cur != nil && !cur.Deleted; {
		case create && live:
			return nil, fmt.Errorf("%w: tenant %q", store.ErrExists, r.ID)
		case !create && !live:
			return nil, fmt.Errorf("%w: tenant %q", store.ErrNotFound, r.ID)
		case !create:
			r.Created = cur.Created
		}
		return &r, nil
	})
	return r, err
}

// DeleteTenant leaves a tombstone.
func (s *Store) DeleteTenant(ctx context.Context, id string, at time.Time) (store.TenantRecord, error) {
	var out store.TenantRecord
	err := s.changeTenant(id, func(cur *store.TenantRecord) (*store.TenantRecord, error) {
		if cur == nil || cur.Deleted {
			return nil, fmt.Errorf("%w: tenant %q", store.ErrNotFound, id)
		}
		out = store.TenantRecord{ID: id, Created: cur.Created, Updated: at.UTC().Truncate(time.Millisecond), Deleted: true}
		return &out, nil
	})
	return out, err
}

// changeTenant writes what f makes of the current record (nil: none) with
// the next version, in one transaction; next's Version is set.
func (s *Store) changeTenant(id string, f func(cur *store.TenantRecord) (*store.TenantRecord, error)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketTenants)
		if err != nil {
			return err
		}
		vb, err := tx.CreateBucketIfNotExists(bucketTenantVer)
		if err != nil {
			return err
		}
		var cur *store.TenantRecord
		if v := b.Get([]byte(id)); v != nil {
			cur = new(store.TenantRecord)
			if err := json.Unmarshal(v, cur); err != nil {
				return err
			}
		}
		next, err := f(cur)
		if err != nil {
			return err
		}
		if cur != nil {
			if err := vb.Delete(u64(cur.Version)); err != nil {
				return err
			}
		}
		seq, err := vb.NextSequence()
		if err != nil {
			return err
		}
		next.Version = int64(seq)
		data, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(id), data); err != nil {
			return err
		}
		return vb.Put(u64(next.Version), []byte(id))
	})
}

// GetTenant reads the live record.
func (s *Store) GetTenant(ctx context.Context, id string) (store.TenantRecord, error) {
	var r store.TenantRecord
	found := false
	err := s.view(bucketTenants, func(b *bolt.Bucket) error {
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &r)
	})
	if err == nil && (!found || r.Deleted) {
		err = fmt.Errorf("%w: tenant %q", store.ErrNotFound, id)
	}
	return r, err
}

// PageTenants walks the ids from max(prefix, after) in order, skipping
// tombstones.
func (s *Store) PageTenants(ctx context.Context, prefix, after string, limit int) ([]store.TenantRecord, error) {
	limit = store.PageLimit(limit)
	var out []store.TenantRecord
	err := s.view(bucketTenants, func(b *bolt.Bucket) error {
		c := b.Cursor()
		start := []byte(prefix)
		if after != "" && after >= prefix {
			start = append([]byte(after), 0)
		}
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, []byte(prefix)) && len(out) < limit; k, v = c.Next() {
			var r store.TenantRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if !r.Deleted && strings.HasPrefix(r.ID, prefix) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// ChangedTenants walks the version index from since+1.
func (s *Store) ChangedTenants(ctx context.Context, since int64, limit int) ([]store.TenantRecord, error) {
	limit = store.PageLimit(limit)
	var out []store.TenantRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		vb, b := tx.Bucket(bucketTenantVer), tx.Bucket(bucketTenants)
		if vb == nil || b == nil {
			return nil
		}
		c := vb.Cursor()
		for k, id := c.Seek(u64(since + 1)); k != nil && len(out) < limit; k, id = c.Next() {
			var r store.TenantRecord
			if err := json.Unmarshal(b.Get(id), &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
