package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// WebhookStore is the webhook queue both stores implement, with its
// dead-letter list (store.WebhookItem).
type WebhookStore interface {
	store.WebhookQueue
	ListDeadWebhooks(ctx context.Context, tenant string, limit int) ([]store.DeadWebhook, error)
	ReplayDeadWebhook(ctx context.Context, id string, now time.Time) (bool, error)
}

// RunWebhooks runs the webhook queue scenarios (per-chain order, leases
// that lapse, retries, the dead-letter list and its replay, the backlog
// bound and figures, one claim per head under concurrency) against stores
// from newStore, which must return WebhookStores.
func RunWebhooks(t *testing.T, newStore Factory) {
	ctx := context.Background()
	const lease = 30 * time.Second
	get := func(t *testing.T) (WebhookStore, *Clock) {
		c := NewClock(Start)
		s, ok := newStore(t, c).(WebhookStore)
		if !ok {
			t.Fatal("store does not implement storetest.WebhookStore")
		}
		return s, c
	}
	item := func(c *Clock, tenant, chain, id string) store.WebhookItem {
		return store.WebhookItem{ID: id, Tenant: tenant, Endpoint: "https://hooks.example/" + tenant, Chain: chain,
			Type: "bounce", Enqueued: c.Now(), Body: []byte(`{"id":"` + id + `"}`)}
	}
	enqueue := func(t *testing.T, s WebhookStore, c *Clock, it store.WebhookItem, max int) bool {
		t.Helper()
		ok, err := s.EnqueueWebhook(ctx, it, c.Now(), max)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	claim := func(t *testing.T, s WebhookStore, c *Clock) []store.WebhookClaim {
		t.Helper()
		cs, err := s.ClaimWebhooks(ctx, c.Now(), lease, 10)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(cs, func(a, b store.WebhookClaim) int {
			if a.Item.ID < b.Item.ID {
				return -1
			}
			return 1
		})
		return cs
	}
	ids := func(cs []store.WebhookClaim) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Item.ID)
		}
		return out
	}
	must := func(t *testing.T, ok bool, err error, want bool, what string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if ok != want {
			t.Fatalf("%s: %v, want %v", what, ok, want)
		}
	}

	t.Run("one head per chain, in order", func(t *testing.T) {
		s, c := get(t)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a1"), 100)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a2"), 100)
		enqueue(t, s, c, item(c, "acme", "e|m2", "b1"), 100)
		got := claim(t, s, c)
		if !slices.Equal(ids(got), []string{"a1", "b1"}) {
			t.Fatalf("claimed %v, want the heads a1 b1", ids(got))
		}
		if string(got[0].Item.Body) != `{"id":"a1"}` || got[0].Item.Tenant != "acme" || !got[0].Item.Enqueued.Equal(c.Now()) {
			t.Fatalf("item %+v", got[0].Item)
		}
		if again := claim(t, s, c); len(again) != 0 {
			t.Fatalf("leased chains claimed again: %v", ids(again))
		}
		ok, err := s.AckWebhook(ctx, got[0], c.Now())
		must(t, ok, err, true, "ack a1")
		if next := claim(t, s, c); !slices.Equal(ids(next), []string{"a2"}) {
			t.Fatalf("after the ack of a1: %v, want a2", ids(next))
		}
		ok, err = s.AckWebhook(ctx, got[0], c.Now())
		must(t, ok, err, false, "second ack of a1")
	})

	t.Run("a lapsed lease is taken over", func(t *testing.T) {
		s, c := get(t)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a1"), 100)
		first := claim(t, s, c)
		c.Add(lease - time.Second)
		if got := claim(t, s, c); len(got) != 0 {
			t.Fatalf("claimed within the lease: %v", ids(got))
		}
		c.Add(time.Second)
		second := claim(t, s, c)
		if !slices.Equal(ids(second), []string{"a1"}) || second[0].Token == first[0].Token {
			t.Fatalf("after the lease: %v", second)
		}
		ok, err := s.AckWebhook(ctx, first[0], c.Now())
		must(t, ok, err, false, "ack with the lapsed lease")
		ok, err = s.RetryWebhook(ctx, first[0], first[0].Item, c.Now())
		must(t, ok, err, false, "retry with the lapsed lease")
		ok, err = s.AckWebhook(ctx, second[0], c.Now())
		must(t, ok, err, true, "ack with the new lease")
		if st, _ := s.WebhookStats(ctx, []string{"acme"}); st["acme"].Backlog != 0 {
			t.Fatalf("backlog %+v after the ack", st)
		}
	})

	t.Run("retry later keeps the chain's order", func(t *testing.T) {
		s, c := get(t)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a1"), 100)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a2"), 100)
		got := claim(t, s, c)
		it := got[0].Item
		it.Attempts, it.LastError = 1, "503 Service Unavailable"
		ok, err := s.RetryWebhook(ctx, got[0], it, c.Now().Add(10*time.Second))
		must(t, ok, err, true, "retry")
		c.Add(9 * time.Second)
		if got := claim(t, s, c); len(got) != 0 {
			t.Fatalf("claimed before the retry time: %v", ids(got))
		}
		c.Add(time.Second)
		got = claim(t, s, c)
		if !slices.Equal(ids(got), []string{"a1"}) || got[0].Item.Attempts != 1 || got[0].Item.LastError != "503 Service Unavailable" {
			t.Fatalf("retried head: %+v", got)
		}
	})

	t.Run("dead letters, listed and replayed", func(t *testing.T) {
		s, c := get(t)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a1"), 100)
		enqueue(t, s, c, item(c, "acme", "e|m1", "a2"), 100)
		enqueue(t, s, c, item(c, "other", "f|m9", "z1"), 100)
		got := claim(t, s, c)
		if !slices.Equal(ids(got), []string{"a1", "z1"}) {
			t.Fatalf("claimed %v", ids(got))
		}
		ok, err := s.AckWebhook(ctx, got[1], c.Now())
		must(t, ok, err, true, "ack z1")
		dead := got[0].Item
		dead.Attempts, dead.LastError = 12, "connection refused"
		ok, err = s.DeadWebhook(ctx, got[0], dead, c.Now(), 100)
		must(t, ok, err, true, "dead")
		if next := claim(t, s, c); !slices.Equal(ids(next), []string{"a2"}) {
			t.Fatalf("after the dead letter: %v, want a2 at once", ids(next))
		}
		list, err := s.ListDeadWebhooks(ctx, "acme", 10)
		if err != nil || len(list) != 1 || list[0].ID != "a1" || list[0].Attempts != 12 || list[0].LastError != "connection refused" || !list[0].Died.Equal(c.Now()) {
			t.Fatalf("dead list %+v, %v", list, err)
		}
		if other, _ := s.ListDeadWebhooks(ctx, "other", 10); len(other) != 0 {
			t.Fatalf("other tenant's dead list %+v", other)
		}
		c.Add(time.Minute)
		ok, err = s.ReplayDeadWebhook(ctx, "a1", c.Now())
		must(t, ok, err, true, "replay")
		ok, err = s.ReplayDeadWebhook(ctx, "a1", c.Now())
		must(t, ok, err, false, "second replay")
		if list, _ := s.ListDeadWebhooks(ctx, "", 10); len(list) != 0 {
			t.Fatalf("dead list after the replay %+v", list)
		}
		st, err := s.WebhookStats(ctx, []string{"acme"})
		if err != nil || st["acme"].Backlog != 2 {
			t.Fatalf("stats %+v, %v: want a2 and the replayed a1", st, err)
		}
		// a2 is still leased; once it is acked a1 follows, attempts reset.
		c.Add(lease)
		next := claim(t, s, c)
		if !slices.Equal(ids(next), []string{"a2"}) {
			t.Fatalf("claimed %v, want a2 before the replayed a1", ids(next))
		}
		ok, err = s.AckWebhook(ctx, next[0], c.Now())
		must(t, ok, err, true, "ack a2")
		next = claim(t, s, c)
		if !slices.Equal(ids(next), []string{"a1"}) || next[0].Item.Attempts != 0 || next[0].Item.LastError != "" {
			t.Fatalf("replayed %+v", next)
		}
	})

	t.Run("dead list keeps the newest", func(t *testing.T) {
		s, c := get(t)
		for i := range 4 {
			enqueue(t, s, c, item(c, "acme", fmt.Sprintf("e|m%d", i), fmt.Sprintf("d%d", i)), 100)
		}
		for i, cl := range claim(t, s, c) {
			c.Add(time.Second)
			ok, err := s.DeadWebhook(ctx, cl, cl.Item, c.Now(), 2)
			must(t, ok, err, true, fmt.Sprint("dead ", i))
		}
		list, err := s.ListDeadWebhooks(ctx, "", 10)
		if err != nil || len(list) != 2 || list[0].ID != "d3" || list[1].ID != "d2" {
			t.Fatalf("dead list %+v, %v: want d3 d2", list, err)
		}
		if ok, _ := s.ReplayDeadWebhook(ctx, "d0", c.Now()); ok {
			t.Fatal("replayed a dropped dead letter")
		}
	})

	t.Run("backlog bound and figures", func(t *testing.T) {
		s, c := get(t)
		t0 := c.Now()
		if !enqueue(t, s, c, item(c, "acme", "e|m1", "a1"), 2) {
			t.Fatal("first refused")
		}
		c.Add(time.Second)
		if !enqueue(t, s, c, item(c, "acme", "e|m2", "a2"), 2) {
			t.Fatal("second refused")
		}
		if enqueue(t, s, c, item(c, "acme", "e|m3", "a3"), 2) {
			t.Fatal("third accepted beyond the bound of 2")
		}
		if !enqueue(t, s, c, item(c, "other", "f|m1", "o1"), 2) {
			t.Fatal("another tenant refused")
		}
		st, err := s.WebhookStats(ctx, []string{"acme", "other", "idle"})
		if err != nil {
			t.Fatal(err)
		}
		if st["acme"].Backlog != 2 || !st["acme"].Oldest.Equal(t0) || st["other"].Backlog != 1 || st["idle"].Backlog != 0 || !st["idle"].Oldest.IsZero() {
			t.Fatalf("stats %+v", st)
		}
		cs := claim(t, s, c)
		for _, cl := range cs {
			if cl.Item.ID == "a1" {
				if ok, err := s.AckWebhook(ctx, cl, c.Now()); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
		}
		st, _ = s.WebhookStats(ctx, []string{"acme"})
		if st["acme"].Backlog != 1 || !st["acme"].Oldest.Equal(t0.Add(time.Second)) {
			t.Fatalf("after the ack: %+v", st)
		}
		bad := item(c, "acme", "e|m1", "")
		if _, err := s.EnqueueWebhook(ctx, bad, c.Now(), 10); err == nil {
			t.Fatal("item without an id accepted")
		}
	})

	t.Run("each head is claimed once by concurrent claimers", func(t *testing.T) {
		s, c := get(t)
		const n = 40
		for i := range n {
			enqueue(t, s, c, item(c, "acme", fmt.Sprintf("e|m%d", i), fmt.Sprintf("i%02d", i)), 1000)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5 {
					cs, err := s.ClaimWebhooks(ctx, c.Now(), lease, 3)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, cl := range cs {
						seen[cl.Item.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for id, k := range seen {
			if k != 1 {
				t.Errorf("%s claimed %d times", id, k)
			}
		}
		if len(seen) != n {
			t.Fatalf("claimed %d of %d", len(seen), n)
		}
	})
}
