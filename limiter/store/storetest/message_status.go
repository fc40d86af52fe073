package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// MessageStatusStore keeps the messages' events for their apps.
type MessageStatusStore interface {
	RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error
	MessageEvents(ctx context.Context, gatewayID string) ([]store.MessageEvent, error)
}

// RunMessageStatus checks the message events: kept in order per message,
// capped at store.MaxMessageEvents (the newest stay), none for an unknown
// id.
func RunMessageStatus(t *testing.T, newStore Factory) {
	ctx := context.Background()
	c := NewClock(Start)
	s, ok := newStore(t, c).(MessageStatusStore)
	if !ok {
		t.Fatal("store does not implement storetest.MessageStatusStore")
	}
	at := c.Now().UTC()
	evs := []store.MessageEvent{
		{GatewayID: "g1", Tenant: "acme", Type: "accepted", At: at, SESMessageID: "s1"},
		{GatewayID: "g2", Tenant: "other", Type: "accepted", At: at},
		{GatewayID: "g1", Tenant: "acme", Type: "bounce", At: at.Add(time.Second), Recipients: []string{"a@example.com"}, Detail: "Permanent/General"},
	}
	if err := s.RecordMessageEvents(ctx, evs, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.MessageEvents(ctx, "g1")
	if err != nil || len(got) != 2 || got[0].Type != "accepted" || got[1].Type != "bounce" || got[1].Detail != "Permanent/General" ||
		got[1].Recipients[0] != "a@example.com" || !got[1].At.Equal(at.Add(time.Second)) || got[0].Tenant != "acme" || got[0].GatewayID != "g1" {
		t.Fatalf("g1: %+v, %v", got, err)
	}
	if none, err := s.MessageEvents(ctx, "unknown"); err != nil || len(none) != 0 {
		t.Fatalf("unknown: %+v, %v", none, err)
	}
	var many []store.MessageEvent
	for i := range store.MaxMessageEvents + 5 {
		many = append(many, store.MessageEvent{GatewayID: "g3", Tenant: "acme", Type: fmt.Sprint("e", i), At: at})
	}
	if err := s.RecordMessageEvents(ctx, many, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, _ = s.MessageEvents(ctx, "g3")
	if len(got) != store.MaxMessageEvents || got[0].Type != "e5" || got[len(got)-1].Type != fmt.Sprint("e", store.MaxMessageEvents+4) {
		t.Fatalf("capped list: %d events from %s", len(got), got[0].Type)
	}
}
