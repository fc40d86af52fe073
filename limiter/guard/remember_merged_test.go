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

// countingMerged counts every write a Remember makes to one store that
// keeps both the attribution records and the status.
type countingMerged struct {
	countingStatus
	remembered, merged atomic.Int64
}

func (c *countingMerged) RememberMessages(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error {
	c.remembered.Add(1)
	return c.Store.RememberMessages(ctx, refs, ttl)
}

func (c *countingMerged) RememberAccepted(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error {
	c.merged.Add(1)
	return c.Store.RememberAccepted(ctx, refs, ttl)
}

// TestRememberOneWritePerBatch: when Store and Status are one store with
// RememberAccepted, a batch is one write (one bbolt commit) holding the
// attribution records, the "accepted" events and the recipient index, all
// read back; a store that is only the attribution store keeps two writes.
func TestRememberOneWritePerBatch(t *testing.T) {
	bs, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "s.db"), RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	cs := &countingMerged{countingStatus: countingStatus{Store: bs}}
	r, err := NewRemember(RememberOptions{Store: cs, Status: cs, Batch: 3, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sink := r.Sink(&idSink{})
	ten := &gateway.Tenant{ID: "acme"}
	for i := range 6 {
		env := &gateway.Envelope{ID: "gw" + string(rune('0'+i)), Tenant: ten, Recipients: []string{"ann@example.com", "b" + string(rune('0'+i)) + "@example.com"}}
		if _, err := sink.Send(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	if cs.merged.Load() != 2 || cs.remembered.Load() != 0 || cs.accepted.Load() != 0 || cs.events.Load() != 0 {
		t.Fatalf("writes: %d RememberAccepted, %d RememberMessages, %d RecordAccepted, %d RecordMessageEvents; want 2, 0, 0, 0",
			cs.merged.Load(), cs.remembered.Load(), cs.accepted.Load(), cs.events.Load())
	}
	ctx := context.Background()
	if tenant, gid, found, err := r.LookupMessage(ctx, "ses-e"); err != nil || !found || tenant != "acme" || gid != "gw4" {
		t.Fatalf("attribution: %q %q %v %v", tenant, gid, found, err)
	}
	if got, err := bs.MessagesTo(ctx, "ann@example.com"); err != nil || len(got) != 6 || got[0].GatewayID != "gw5" {
		t.Fatalf("ann: %+v %v", got, err)
	}
	if evs, err := bs.MessageEvents(ctx, "gw4"); err != nil || len(evs) != 1 || evs[0].Type != "accepted" || evs[0].SESMessageID != "ses-e" {
		t.Fatalf("gw4 status: %+v %v", evs, err)
	}

	// Status a different store: the two writes as before.
	other := &countingMerged{countingStatus: countingStatus{Store: bs}}
	r, err = NewRemember(RememberOptions{Store: other, Status: cs, Batch: 3, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sink = r.Sink(&idSink{})
	for i := range 3 {
		if _, err := sink.Send(ctx, &gateway.Envelope{ID: "x" + string(rune('0'+i)), Tenant: ten, Recipients: []string{"c@example.com"}}); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	if other.remembered.Load() != 1 || other.merged.Load() != 0 || cs.accepted.Load() != 1 {
		t.Fatalf("separate stores: %d RememberMessages, %d RememberAccepted, %d RecordAccepted; want 1, 0, 1",
			other.remembered.Load(), other.merged.Load(), cs.accepted.Load())
	}
}
