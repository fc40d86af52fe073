package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestWebhookHealthConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunWebhookHealth(t, factory(func(t *testing.T) redis.UniversalClient {
		return flushed(t, ConnOptions{URL: "redis://" + srv.Addr})
	}))
}

// TestWebhookHealthConformanceCluster: the figures' keys share the queue's
// slot.
func TestWebhookHealthConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	storetest.RunWebhookHealth(t, factory(func(t *testing.T) redis.UniversalClient {
		return flushed(t, ConnOptions{Addrs: cl.Addrs()})
	}))
}
