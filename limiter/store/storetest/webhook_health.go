package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// WebhookHealthStore is the webhook queue with its health figures.
type WebhookHealthStore interface {
	WebhookStore
	WebhookHealth(ctx context.Context, tenants []string, now time.Time) (map[string]store.WebhookHealth, error)
}

// RunWebhookHealth checks the health figures (store.WebhookHealth): each
// outcome counted once, per webhook, only by a call that held the lease;
// a give-back without an attempt counts nothing; the last error and its
// time; counts leave the 24-hour window; the dead-letter count follows
// replays and the list's bound.
func RunWebhookHealth(t *testing.T, newStore Factory) {
	ctx := context.Background()
	const lease = 30 * time.Second
	c := NewClock(Start)
	s, ok := newStore(t, c).(WebhookHealthStore)
	if !ok {
		t.Fatal("store does not implement storetest.WebhookHealthStore")
	}
	const good, bad = "https://good.example/h", "https://bad.example/h"
	n := 0
	enqueue := func(tenant, ep string) {
		t.Helper()
		n++
		id := "evt_" + string(rune('a'+n))
		it := store.WebhookItem{ID: id, Tenant: tenant, Endpoint: ep, Chain: ep + "|" + id, Type: "delivery",
			Enqueued: c.Now(), Body: []byte(`{}`)}
		if ok, err := s.EnqueueWebhook(ctx, it, c.Now(), 100); err != nil || !ok {
			t.Fatalf("enqueue: %v %v", ok, err)
		}
	}
	claim := func() []store.WebhookClaim {
		t.Helper()
		cs, err := s.ClaimWebhooks(ctx, c.Now(), lease, 10)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	health := func() store.WebhookHealth {
		t.Helper()
		h, err := s.WebhookHealth(ctx, []string{"shop", "other"}, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		if o := h["other"]; o.Backlog != 0 || o.Dead != 0 || len(o.Webhooks) != 0 {
			t.Fatalf("tenant other: %+v", o)
		}
		return h["shop"]
	}
	byEP := func(h store.WebhookHealth) map[string]store.WebhookEndpointHealth {
		m := map[string]store.WebhookEndpointHealth{}
		for _, e := range h.Webhooks {
			m[e.Endpoint] = e
		}
		return m
	}

	if h := health(); h.Backlog != 0 || h.Dead != 0 || len(h.Webhooks) != 0 {
		t.Fatalf("empty store: %+v", h)
	}
	enqueue("shop", good)
	enqueue("shop", good)
	enqueue("shop", bad)
	c.Add(time.Minute)
	failedAt := c.Now().Add(-time.Second)
	for _, cl := range claim() {
		if cl.Item.Endpoint == good {
			if ok, err := s.AckWebhook(ctx, cl, c.Now()); err != nil || !ok {
				t.Fatalf("ack: %v %v", ok, err)
			}
			// A second ack of the same claim holds no lease: not counted.
			if ok, _ := s.AckWebhook(ctx, cl, c.Now()); ok {
				t.Fatal("second ack held the lease")
			}
			continue
		}
		// A give-back without an attempt counts nothing.
		if ok, err := s.RetryWebhook(ctx, cl, cl.Item, c.Now()); err != nil || !ok {
			t.Fatalf("give back: %v %v", ok, err)
		}
	}
	h := health()
	e := byEP(h)
	if h.Backlog != 1 || !h.Oldest.Equal(Start) || e[good].Delivered != 2 || e[good].Failed != 0 ||
		!e[good].LastDelivered.Equal(c.Now()) || e[good].Failing() || e[bad] != (store.WebhookEndpointHealth{}) {
		t.Fatalf("after two deliveries and a give-back: %+v", h)
	}
	for range 2 {
		cs := claim()
		if len(cs) != 1 || cs[0].Item.Endpoint != bad {
			t.Fatalf("claimed %+v", cs)
		}
		it := cs[0].Item
		it.Attempts++
		it.LastError, it.LastAttempt = "answered 503 Service Unavailable", failedAt
		if ok, err := s.RetryWebhook(ctx, cs[0], it, c.Now()); err != nil || !ok {
			t.Fatalf("retry: %v %v", ok, err)
		}
	}
	h = health()
	e = byEP(h)
	if h.Backlog != 1 || e[bad].Failed != 2 || e[bad].Delivered != 0 || !e[bad].Failing() ||
		e[bad].LastError != "answered 503 Service Unavailable" || !e[bad].LastFailed.Equal(failedAt) || h.Dead != 0 {
		t.Fatalf("after two failures: %+v", h)
	}

	// Dead-lettered: counted, in the tenant's dead letters; replayed: out.
	cs := claim()
	it := cs[0].Item
	it.Attempts++
	it.LastError = "dial: connection refused"
	if ok, err := s.DeadWebhook(ctx, cs[0], it, c.Now(), 100); err != nil || !ok {
		t.Fatalf("dead: %v %v", ok, err)
	}
	h = health()
	e = byEP(h)
	if h.Backlog != 0 || !h.Oldest.IsZero() || h.Dead != 1 || e[bad].Dead != 1 || e[bad].LastError != "dial: connection refused" ||
		!e[bad].LastFailed.Equal(c.Now()) {
		t.Fatalf("after the dead letter: %+v", h)
	}
	if ok, err := s.ReplayDeadWebhook(ctx, it.ID, c.Now()); err != nil || !ok {
		t.Fatalf("replay: %v %v", ok, err)
	}
	if h = health(); h.Dead != 0 || h.Backlog != 1 || byEP(h)[bad].Dead != 1 {
		t.Fatalf("after the replay: %+v", h)
	}

	// The dead-letter list's bound: two entries die with a bound of 1, the
	// tenant counts one.
	enqueue("shop", good)
	for range 2 {
		for _, cl := range claim() {
			if ok, err := s.DeadWebhook(ctx, cl, cl.Item, c.Now(), 1); err != nil || !ok {
				t.Fatalf("dead: %v %v", ok, err)
			}
		}
		c.Add(time.Second)
	}
	if h = health(); h.Dead != 1 {
		t.Fatalf("dead letters with a bound of 1: %d", h.Dead)
	}

	// 24 hours later the counters are gone; the last outcomes stay.
	c.Add(store.WebhookHealthHours * time.Hour)
	h = health()
	e = byEP(h)
	if e[good].Delivered != 0 || e[bad].Failed != 0 || e[bad].Dead != 0 || e[bad].LastFailed.IsZero() || e[good].LastDelivered.IsZero() {
		t.Fatalf("a day later: %+v", h)
	}
}
