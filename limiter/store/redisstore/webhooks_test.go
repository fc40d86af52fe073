package redisstore

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

// flushed returns a client on conn whose server(s) were emptied first:
// the webhook scenarios share key names.
func flushed(t *testing.T, conn ConnOptions) redis.UniversalClient {
	c := connect(conn)(t)
	ctx := context.Background()
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.FlushDB(ctx).Err() })
	} else {
		err = c.FlushDB(ctx).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWebhookConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunWebhooks(t, factory(func(t *testing.T) redis.UniversalClient {
		return flushed(t, ConnOptions{URL: "redis://" + srv.Addr})
	}))
}

// TestWebhookConformanceCluster: the queue's keys share one slot, so its
// scripts run on a Cluster.
func TestWebhookConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	storetest.RunWebhooks(t, factory(func(t *testing.T) redis.UniversalClient {
		return flushed(t, ConnOptions{Addrs: cl.Addrs()})
	}))
}

func TestMessageStatusConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunMessageStatus(t, factory(func(t *testing.T) redis.UniversalClient {
		return flushed(t, ConnOptions{URL: "redis://" + srv.Addr})
	}))
}
