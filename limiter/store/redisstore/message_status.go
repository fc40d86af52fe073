package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// statusKey is the list of a message's events (store.MessageEvent JSON),
// under its gateway id (random: these spread over a Cluster).
func statusKey(gatewayID string) string { return "gw:ms:" + gatewayID }

// RecordMessageEvents appends each event to its message's list, capped
// at store.MaxMessageEvents, and keeps the list ttl; one pipeline.
func (s *Store) RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error {
	if len(evs) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ev := range evs {
			raw, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			k := statusKey(ev.GatewayID)
			p.RPush(ctx, k, raw)
			p.LTrim(ctx, k, -store.MaxMessageEvents, -1)
			p.Expire(ctx, k, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: message events: %w", err)
	}
	return nil
}

// MessageEvents returns a message's events, oldest first (none: unknown or
// expired).
func (s *Store) MessageEvents(ctx context.Context, gatewayID string) ([]store.MessageEvent, error) {
	vals, err := s.c.LRange(ctx, statusKey(gatewayID), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]store.MessageEvent, 0, len(vals))
	for _, v := range vals {
		var ev store.MessageEvent
		if err := json.Unmarshal([]byte(v), &ev); err != nil {
			return nil, fmt.Errorf("redisstore: message event: %w", err)
		}
		ev.GatewayID = gatewayID
		out = append(out, ev)
	}
	return out, nil
}
