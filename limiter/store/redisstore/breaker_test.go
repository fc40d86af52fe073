package redisstore

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestBreakerConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunBreaker(t, factory(connect(ConnOptions{URL: "redis://" + srv.Addr})))
}

// TestTripWaitsForReplica: a trip written on a primary with a replica is
// followed by WAIT, and when acknowledged it is on the replica before
// UpdateBreakerRecord returns; without a replica no WAIT is issued; a
// no-trip write never waits.
func TestTripWaitsForReplica(t *testing.T) {
	primary, replica, alone := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	host, port, _ := net.SplitHostPort(primary.Addr)
	if _, err := primary.Do("CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.Do("REPLICAOF", host, port); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for primary.Info("replication", "connected_slaves") != "1" || replica.Info("replication", "master_link_status") != "up" {
		if time.Now().After(deadline) {
			t.Fatal("replica not connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tests := []struct {
		name     string
		srv      *redistest.Server
		state    store.BreakerState
		wantWait bool
	}{
		{name: "trip with a replica", srv: primary, state: store.Open, wantWait: true},
		{name: "warning only", srv: primary, state: store.Closed},
		{name: "trip without replicas", srv: alone, state: store.Open},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(ConnOptions{URL: "redis://" + tc.srv.Addr}, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(context.Background(), Options{Client: c, RecipientKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tenant := fmt.Sprintf("dur%d", i)
			before := tc.srv.Calls("wait")
			waited, err := s.UpdateBreakerRecord(context.Background(), tenant, func(r *store.BreakerRecord) (bool, error) {
				r.State, r.Warning = tc.state, tc.state == store.Closed
				if tc.state == store.Open {
					r.OpenUntil = time.Now().Add(time.Minute)
				}
				return true, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if calls := tc.srv.Calls("wait") - before; (calls == 1) != tc.wantWait || (waited && !tc.wantWait) {
				t.Fatalf("WAIT calls %d, acknowledged %v; want a WAIT: %v", calls, waited, tc.wantWait)
			}
			// The WAIT bound is 100 ms: on a loaded machine the ack may
			// come later, which the gateway logs; when it came in time,
			// the replica has the trip already.
			if waited {
				// Acknowledged means applied on the replica already.
				got, err := replica.Do("HGET", tenantPrefix(tenant)+keyBreaker, fieldState)
				if err != nil || got != "open" {
					t.Fatalf("replica has %q (%v)", got, err)
				}
			}
		})
	}
}
