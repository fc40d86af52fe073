package boltstore

import (
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// AddAudit appends one entry and drops the oldest beyond keep.
func (s *Store) AddAudit(ctx context.Context, entry []byte, keep int) error {
	return s.update(bucketAudit, func(b *bolt.Bucket) error {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), entry); err != nil {
			return err
		}
		if seq <= uint64(keep) {
			return nil
		}
		first := seq - uint64(keep) + 1 // the oldest sequence kept
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < first; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListAudit returns the newest limit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, limit int) ([][]byte, error) {
	var out [][]byte
	err := s.view(bucketAudit, func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	return out, err
}
