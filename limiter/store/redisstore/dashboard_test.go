package redisstore

import (
	"testing"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestDashboardStandalone(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunDashboard(t, factory(connect(ConnOptions{URL: "redis://" + srv.Addr})))
}

func TestDashboardCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	storetest.RunDashboard(t, factory(connect(ConnOptions{Addrs: cl.Addrs()})))
}
