package guard

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

// countingStatus counts the status writes of a Remember.
type countingStatus struct {
	*boltstore.Store
	events, accepted atomic.Int64
}

func (c *countingStatus) RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error {
	c.events.Add(1)
	return c.Store.RecordMessageEvents(ctx, evs, ttl)
}

func (c *countingStatus) RecordAccepted(ctx context.Context, msgs []store.AcceptedMessage, ttl time.Duration) error {
	c.accepted.Add(1)
	return c.Store.RecordAccepted(ctx, msgs, ttl)
}

type idSink struct{ n atomic.Int64 }

func (s *idSink) Send(context.Context, *gateway.Envelope) (string, error) {
	return "ses-" + string(rune('a'+s.n.Add(1)-1)), nil
}

// TestRememberIndexesRecipients: the messages a batch records as accepted
// are indexed by recipient in the same store write (one RecordAccepted per
// batch, no RecordMessageEvents), and found by any recipient afterwards.
func TestRememberIndexesRecipients(t *testing.T) {
	bs, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	cs := &countingStatus{Store: bs}
	r, err := NewRemember(RememberOptions{Store: bs, Status: cs, Batch: 100, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sink := r.Sink(&idSink{})
	ten := &gateway.Tenant{ID: "acme"}
	for i := range 5 {
		rcpts := []string{"ann@example.com", "other" + string(rune('0'+i)) + "@example.com"}
		env := &gateway.Envelope{ID: "gw" + string(rune('0'+i)), Tenant: ten, Recipients: rcpts}
		if _, err := sink.Send(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		rcpts[0] = "overwritten@example.com" // the front end reuses its slice
	}
	r.Close()
	if cs.accepted.Load() != 1 || cs.events.Load() != 0 {
		t.Fatalf("writes: %d RecordAccepted, %d RecordMessageEvents; want 1 and 0", cs.accepted.Load(), cs.events.Load())
	}
	ctx := context.Background()
	got, err := bs.MessagesTo(ctx, "Ann@Example.com")
	if err != nil || len(got) != 5 || got[0].Tenant != "acme" {
		t.Fatalf("ann: %+v %v", got, err)
	}
	if got, _ := bs.MessagesTo(ctx, "other3@example.com"); len(got) != 1 || got[0].GatewayID != "gw3" {
		t.Fatalf("other3: %+v", got)
	}
	if got, _ := bs.MessagesTo(ctx, "overwritten@example.com"); len(got) != 0 {
		t.Fatalf("the reused slice was indexed: %+v", got)
	}
	evs, err := bs.MessageEvents(ctx, "gw3")
	if err != nil || len(evs) != 1 || evs[0].Type != "accepted" || evs[0].SESMessageID != "ses-d" {
		t.Fatalf("gw3 status: %+v %v", evs, err)
	}
}
