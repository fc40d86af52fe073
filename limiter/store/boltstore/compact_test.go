package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// TestCompactReadsJSONLists: a file written by a version that stored the
// status and recipient index lists as JSON upgrades in place: the old
// entries are read, kept (capped) on the next append, and the value is then
// stored compactly.
func TestCompactReadsJSONLists(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Millisecond)
	exp := at.Add(time.Hour).UnixMilli()
	// The JSON the earlier version wrote: events oldest first, index newest first.
	oldEvents := []store.MessageEvent{{Tenant: "acme", Type: "accepted", At: at, SESMessageID: "s-old"},
		{Tenant: "acme", Type: "bounce", At: at.Add(time.Second), Recipients: []string{"x@example.com"}, Detail: "Permanent/General"}}
	var oldRefs []store.RecipientMessage
	for i := range store.MaxRecipientMessages {
		oldRefs = append([]store.RecipientMessage{{Tenant: "acme", GatewayID: fmt.Sprint("old", i), At: at.Add(time.Duration(i) * time.Second)}}, oldRefs...)
	}
	put := func(key string, v any) {
		raw, _ := json.Marshal(v)
		val := binary.BigEndian.AppendUint64(nil, uint64(exp))
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKV).Put([]byte(key), append(val, raw...)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("gw:ms:g-old", oldEvents)
	put("gw:rcpt:"+s.keyer.Hash("ann@example.com"), oldRefs)
	put("gw:ms:g-read", oldEvents)

	// Read as they are.
	if evs, err := s.MessageEvents(ctx, "g-read"); err != nil || len(evs) != 2 || evs[1].Detail != "Permanent/General" || !evs[0].At.Equal(at) {
		t.Fatalf("old events: %+v %v", evs, err)
	}
	if got, err := s.MessagesTo(ctx, "ann@example.com"); err != nil || len(got) != store.MaxRecipientMessages || got[0].GatewayID != fmt.Sprint("old", store.MaxRecipientMessages-1) {
		t.Fatalf("old index: %+v %v", got, err)
	}

	// Appended to: old entries kept, capped, newest first.
	if err := s.RecordMessageEvents(ctx, []store.MessageEvent{{GatewayID: "g-old", Tenant: "acme", Type: "delivery", At: at.Add(2 * time.Second)}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.RememberAccepted(ctx, []store.MessageRef{{SESMessageID: "s-new", Tenant: "beta", GatewayID: "g-new", At: at.Add(time.Hour), Recipients: []string{"Ann@Example.com"}}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	evs, err := s.MessageEvents(ctx, "g-old")
	if err != nil || len(evs) != 3 || evs[0].SESMessageID != "s-old" || evs[1].Recipients[0] != "x@example.com" || evs[2].Type != "delivery" || evs[2].GatewayID != "g-old" {
		t.Fatalf("appended events: %+v %v", evs, err)
	}
	got, err := s.MessagesTo(ctx, "ann@example.com")
	if err != nil || len(got) != store.MaxRecipientMessages || got[0].GatewayID != "g-new" || got[0].Tenant != "beta" ||
		got[1].GatewayID != fmt.Sprint("old", store.MaxRecipientMessages-1) || got[len(got)-1].GatewayID != "old1" {
		t.Fatalf("appended index: %+v %v", got, err)
	}
	if tenant, gid, found, err := s.LookupMessage(ctx, "s-new"); err != nil || !found || tenant != "beta" || gid != "g-new" {
		t.Fatalf("attribution: %q %q %v %v", tenant, gid, found, err)
	}
	// Now compact on disk.
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, k := range []string{"gw:ms:g-old", "gw:ms:g-new", "gw:rcpt:" + s.keyer.Hash("ann@example.com")} {
			if v := tx.Bucket(bucketKV).Get([]byte(k)); len(v) < 9 || v[8] != compactV1 {
				return fmt.Errorf("%s not compact: %q", k, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCompactEventCodecCoversEveryField: every field of store.MessageEvent
// but its key (GatewayID) survives the compact codec, times with their
// zone offset: a field added to the type fails here until the codec keeps
// it.
func TestCompactEventCodecCoversEveryField(t *testing.T) {
	var ev store.MessageEvent
	v := reflect.ValueOf(&ev).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch name := v.Type().Field(i).Name; {
		case name == "GatewayID":
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Date(2026, 12, 1, 10, 2, 3, 4, time.FixedZone("", -5*3600))))
		case f.Kind() == reflect.String:
			f.SetString("value of " + name)
		case f.Type() == reflect.TypeOf([]string(nil)):
			f.Set(reflect.ValueOf([]string{name + "1", name + "2"}))
		default:
			t.Fatalf("field %s of type %s: teach the compact codec (compact.go) and this test", name, f.Type())
		}
	}
	raw := appendEvent(appendEvent([]byte{compactV1}, &ev), &store.MessageEvent{Type: "zero"})
	got, err := decodeEvents(raw)
	if err != nil || len(got) != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, off := got[0].At.Zone(); off != -5*3600 || !got[0].At.Equal(ev.At) {
		t.Fatalf("time %v, want %v", got[0].At, ev.At)
	}
	got[0].At = ev.At
	if !reflect.DeepEqual(got[0], ev) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got[0], ev)
	}
	if !got[1].At.IsZero() || got[1].Type != "zero" {
		t.Fatalf("zero event: %+v", got[1])
	}
	for n := 2; n < len(raw); n++ { // every truncation is an error, not a panic
		if _, err := decodeEvents(raw[:n]); err == nil && n != len(raw)-len(appendEvent(nil, &store.MessageEvent{Type: "zero"})) {
			t.Fatalf("truncated at %d: no error", n)
		}
	}
}
