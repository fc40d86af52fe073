package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// AddAudit pushes one entry and trims the list to keep entries (one
// MULTI/EXEC).
func (s *Store) AddAudit(ctx context.Context, entry []byte, keep int) error {
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, keyAudit, entry)
		p.LTrim(ctx, keyAudit, 0, int64(keep-1))
		return nil
	})
	return err
}

// ListAudit returns the newest limit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, limit int) ([][]byte, error) {
	vals, err := s.c.LRange(ctx, keyAudit, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}
