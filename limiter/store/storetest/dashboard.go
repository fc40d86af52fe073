package storetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// RunDashboard checks the dashboard's shared state (store.DashboardStore):
// the recipient index (case-insensitive, newest first, capped per
// recipient, expiring with the status TTL, written with the "accepted"
// status events), the per-minute refusal counters (added up across
// writers, by tenant, reason and minute, within the asked minutes, gone
// SeriesSpan after their hour) and the shared feed (newest first, capped).
func RunDashboard(t *testing.T, newStore Factory) {
	ctx := context.Background()
	t.Run("recipient index", func(t *testing.T) {
		c := NewClock(Start)
		s := dash(t, newStore(t, c))
		at := c.Now().UTC()
		msgs := []store.AcceptedMessage{
			{Event: store.MessageEvent{GatewayID: "m1", Tenant: "acme", Type: "accepted", At: at, SESMessageID: "s1"}, Recipients: []string{"Ann@Example.com", "bob@example.com"}},
			{Event: store.MessageEvent{GatewayID: "m2", Tenant: "beta", Type: "accepted", At: at.Add(time.Second)}, Recipients: []string{"ann@example.com"}},
		}
		if err := s.RecordAccepted(ctx, msgs, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := s.MessagesTo(ctx, "ANN@example.COM")
		if err != nil || len(got) != 2 || got[0].GatewayID != "m2" || got[0].Tenant != "beta" || got[1].GatewayID != "m1" ||
			got[1].Tenant != "acme" || !got[1].At.Equal(at) {
			t.Fatalf("ann: %+v, %v", got, err)
		}
		if got, _ := s.MessagesTo(ctx, "bob@example.com"); len(got) != 1 || got[0].GatewayID != "m1" {
			t.Fatalf("bob: %+v", got)
		}
		if got, _ := s.MessagesTo(ctx, "carol@example.com"); len(got) != 0 {
			t.Fatalf("carol: %+v", got)
		}
		// The status events were written in the same call.
		if ms, ok := s.(MessageStatusStore); ok {
			evs, err := ms.MessageEvents(ctx, "m1")
			if err != nil || len(evs) != 1 || evs[0].Type != "accepted" || evs[0].SESMessageID != "s1" {
				t.Fatalf("m1 events: %+v, %v", evs, err)
			}
		} else {
			t.Fatal("store does not implement storetest.MessageStatusStore")
		}
		// Capped per recipient: the newest stay.
		var many []store.AcceptedMessage
		for i := range store.MaxRecipientMessages + 5 {
			many = append(many, store.AcceptedMessage{Event: store.MessageEvent{GatewayID: fmt.Sprint("c", i), Tenant: "acme", Type: "accepted",
				At: at.Add(time.Duration(i) * time.Second)}, Recipients: []string{"cap@example.com"}})
		}
		if err := s.RecordAccepted(ctx, many[:10], time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAccepted(ctx, many[10:], time.Hour); err != nil {
			t.Fatal(err)
		}
		got, _ = s.MessagesTo(ctx, "cap@example.com")
		last := fmt.Sprint("c", store.MaxRecipientMessages+4)
		if len(got) != store.MaxRecipientMessages || got[0].GatewayID != last || got[len(got)-1].GatewayID != "c5" {
			t.Fatalf("capped: %d, %+v", len(got), got)
		}
	})
	t.Run("recipient index expires", func(t *testing.T) {
		c := NewClock(Start)
		s := dash(t, newStore(t, c))
		msg := store.AcceptedMessage{Event: store.MessageEvent{GatewayID: "e1", Tenant: "acme", Type: "accepted", At: c.Now()}, Recipients: []string{"x@example.com"}}
		if err := s.RecordAccepted(ctx, []store.AcceptedMessage{msg}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.MessagesTo(ctx, "x@example.com"); len(got) != 1 {
			t.Fatalf("before expiry: %+v", got)
		}
		c.Add(3 * time.Second)
		waitGone(t, func() bool { got, _ := s.MessagesTo(ctx, "x@example.com"); return len(got) == 0 })
	})
	t.Run("refusals per minute", func(t *testing.T) {
		c := NewClock(Start)
		s := dash(t, newStore(t, c))
		m := Start.Unix() / 60
		// Two replicas' flushes add up.
		for range 2 {
			if err := s.AddRefusals(ctx, []store.RefusalCount{
				{Tenant: "acme", Reason: "rate", Minute: m, N: 3},
				{Tenant: "acme", Reason: "breaker_open", Minute: m + 1, N: 2},
				{Tenant: "acme", Reason: "rate", Minute: m - 61, N: 7}, // the previous hour
				{Tenant: "beta", Reason: "frozen", Minute: m, N: 1},
			}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Refusals(ctx, []string{"acme", "beta", "nobody"}, m-120, m+1)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.RefusalCount{
			{Tenant: "acme", Reason: "breaker_open", Minute: m + 1, N: 4},
			{Tenant: "acme", Reason: "rate", Minute: m - 61, N: 14},
			{Tenant: "acme", Reason: "rate", Minute: m, N: 6},
			{Tenant: "beta", Reason: "frozen", Minute: m, N: 2},
		}
		if sortRefusals(got); !slices.Equal(got, want) {
			t.Fatalf("refusals:\n got %+v\nwant %+v", got, want)
		}
		// Only the minutes asked for.
		got, _ = s.Refusals(ctx, []string{"acme"}, m, m)
		if len(got) != 1 || got[0].N != 6 {
			t.Fatalf("minute m: %+v", got)
		}
		// Gone SeriesSpan after their hour ended.
		c.Add(store.SeriesSpan + time.Hour + time.Minute)
		waitGone(t, func() bool { got, _ := s.Refusals(ctx, []string{"acme"}, m-120, m+1); return len(got) == 0 })
		// A count for a minute already past keeping is not written.
		if err := s.AddRefusals(ctx, []store.RefusalCount{{Tenant: "acme", Reason: "rate", Minute: m, N: 1}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Refusals(ctx, []string{"acme"}, m, m); len(got) != 0 {
			t.Fatalf("expired minute written: %+v", got)
		}
	})
	t.Run("shared feed", func(t *testing.T) {
		c := NewClock(Start)
		s := dash(t, newStore(t, c))
		var evs []store.FeedEvent
		for i := range store.MaxFeedEvents + 10 {
			evs = append(evs, store.FeedEvent{At: Start.Add(time.Duration(i) * time.Second), Replica: fmt.Sprint("r", i%2), Kind: "log",
				Tenant: "acme", Level: "warn", Text: fmt.Sprint("event ", i)})
		}
		if err := s.AppendFeed(ctx, evs[:3]); err != nil {
			t.Fatal(err)
		}
		got, err := s.Feed(ctx, 2)
		if err != nil || len(got) != 2 || got[0].Text != "event 2" || got[1].Text != "event 1" || got[0].Replica != "r0" || got[0].Tenant != "acme" ||
			!got[0].At.Equal(Start.Add(2*time.Second)) {
			t.Fatalf("feed: %+v, %v", got, err)
		}
		if err := s.AppendFeed(ctx, evs[3:]); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Feed(ctx, store.MaxFeedEvents+100)
		if len(got) != store.MaxFeedEvents || got[0].Text != fmt.Sprint("event ", len(evs)-1) || got[len(got)-1].Text != "event 10" {
			t.Fatalf("capped feed: %d, first %q last %q", len(got), got[0].Text, got[len(got)-1].Text)
		}
	})
}

func dash(t *testing.T, s store.Store) store.DashboardStore {
	t.Helper()
	d, ok := s.(store.DashboardStore)
	if !ok {
		t.Fatal("store does not implement store.DashboardStore")
	}
	return d
}

func sortRefusals(rs []store.RefusalCount) {
	slices.SortFunc(rs, func(a, b store.RefusalCount) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Reason, b.Reason), cmp.Compare(a.Minute, b.Minute))
	})
}

// waitGone waits for an expiry: the embedded store reads its clock, Redis
// its own (a key's TTL runs in real time there), so allow a few seconds.
func waitGone(t *testing.T, gone func() bool) {
	t.Helper()
	for range 100 {
		if gone() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("still there after its expiry")
}
