package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

// TestOps runs the operator-state suite on a fresh server, then checks that
// Bump reaches a subscriber of another client (another replica).
func TestOps(t *testing.T) {
	tests := []struct {
		name string
		conn func(t *testing.T) ConnOptions
	}{
		{"standalone", func(t *testing.T) ConnOptions { return ConnOptions{URL: "redis://" + redistest.Start(t).Addr} }},
		{"cluster", func(t *testing.T) ConnOptions { return ConnOptions{Addrs: redistest.StartCluster(t).Addrs()} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testOps(t, tc.conn(t)) })
	}
}

func testOps(t *testing.T, co ConnOptions) {
	c := storetest.NewClock(storetest.Start)
	open := func() *Store {
		cl, err := NewClient(co, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), Options{Client: cl, RecipientKey: testKey, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	storetest.RunOps(t, s)

	other := open()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{}, 1)
	go other.Changes(ctx, func() { got <- struct{}{} })
	// The subscription is asynchronous: bump until it is heard.
	deadline := time.After(5 * time.Second)
	for {
		if err := s.Bump(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			return
		case <-deadline:
			t.Fatal("a Bump was not heard by another client within 5s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
