package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// RememberAccepted writes a batch of sent messages in one transaction (one
// fsynced commit): the attribution records (as RememberMessages), and for
// those with a gateway id their "accepted" status events with the
// recipient index (as RecordAccepted). limiter/guard.Remember uses it
// when one store keeps both, instead of two commits per batch.
func (s *Store) RememberAccepted(ctx context.Context, refs []store.MessageRef, ttl time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	msgs := store.Accepted(refs)
	return s.db.Update(func(tx *bolt.Tx) error {
		w := s.newListWriter(tx, ttl, len(refs))
		for _, r := range refs {
			if err := w.attribution(r); err != nil {
				return err
			}
		}
		return w.accepted(msgs)
	})
}

// listWriter writes kv entries in one read-write transaction without an
// allocation per entry: keys and values are carved out of one growing
// arena (bbolt needs both to stay valid until the commit; a slice is never
// written again once handed to Put, so a reallocation leaves the earlier
// ones intact).
type listWriter struct {
	s       *Store
	b       *bolt.Bucket
	c       *bolt.Cursor // reused for the reads
	now     int64
	exp     int64
	arena   []byte
	scratch []byte // an old list with the new entries, before the cap
	evbuf   []byte // the event being appended
}

func (s *Store) newListWriter(tx *bolt.Tx, ttl time.Duration, n int) *listWriter {
	now := s.now().UnixMilli()
	b := tx.Bucket(bucketKV)
	return &listWriter{s: s, b: b, c: b.Cursor(), now: now, exp: now + ttl.Milliseconds(), arena: make([]byte, 0, 1024*n+4096)}
}

// carve returns arena[start:] as a slice of its own.
func (w *listWriter) carve(start int) []byte { return w.arena[start:len(w.arena):len(w.arena)] }

func (w *listWriter) key(prefix, id string) []byte {
	start := len(w.arena)
	w.arena = append(append(w.arena, prefix...), id...)
	return w.carve(start)
}

// live returns key's stored value without its expiry; nil when absent or
// expired. It aliases the transaction's pages.
func (w *listWriter) live(key []byte) []byte {
	k, v := w.c.Seek(key) // as Bucket.Get, without a new Cursor per read
	if !bytes.Equal(k, key) || len(v) < 8 {
		return nil
	}
	if exp := expiry(v); exp > 0 && exp <= w.now {
		return nil
	}
	return v[8:]
}

func (w *listWriter) attribution(r store.MessageRef) error {
	k := w.key("gw:msg:", r.SESMessageID)
	start := len(w.arena)
	w.arena = binary.BigEndian.AppendUint64(w.arena, uint64(w.exp))
	w.arena = append(append(append(w.arena, r.Tenant...), '|'), r.GatewayID...)
	return w.b.Put(k, w.carve(start))
}

// appendList stores key = old entries (compact or JSON) + add (compact
// entries), the oldest dropped beyond max, with the writer's expiry.
func (w *listWriter) appendList(key, add []byte, max int, events bool) error {
	old := w.live(key)
	start := len(w.arena)
	w.arena = binary.BigEndian.AppendUint64(w.arena, uint64(w.exp))
	w.arena = append(w.arena, compactV1)
	if old == nil {
		body, err := capEntries(add, max, events)
		if err != nil {
			return err
		}
		w.arena = append(w.arena, body...)
		return w.b.Put(key, w.carve(start))
	}
	body, err := compactBody(w.scratch[:0], old, events)
	if err != nil {
		return err
	}
	body = append(body, add...)
	w.scratch = body
	if body, err = capEntries(body, max, events); err != nil {
		return err
	}
	w.arena = append(w.arena, body...)
	return w.b.Put(key, w.carve(start))
}

// event appends ev to its message's status list.
func (w *listWriter) event(ev *store.MessageEvent) error {
	w.evbuf = appendEvent(w.evbuf[:0], ev)
	return w.appendList(w.key("gw:ms:", ev.GatewayID), w.evbuf, store.MaxMessageEvents, true)
}

// accepted writes each message's "accepted" event and its recipient index
// entries: one read and write per message and per distinct recipient of
// the batch, a few allocations per batch rather than per entry.
func (w *listWriter) accepted(msgs []store.AcceptedMessage) error {
	type entry struct{ group, msg int }
	var (
		keys    [][]byte // per distinct recipient, its gw:rcpt: key
		entries []entry
		h       = w.s.keyer.Hasher()
		groups  = make(map[string]int, len(msgs))
	)
	for i := range msgs {
		m := &msgs[i]
		if err := w.event(&m.Event); err != nil {
			return err
		}
		for _, a := range m.Recipients {
			start := len(w.arena)
			w.arena = h.AppendHash(append(w.arena, "gw:rcpt:"...), a)
			j, ok := groups[string(w.arena[start:])]
			if ok {
				w.arena = w.arena[:start]
			} else {
				j = len(keys)
				keys = append(keys, w.carve(start))
				groups[string(keys[j])] = j
			}
			entries = append(entries, entry{j, i})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return a.group - b.group })
	for len(entries) > 0 {
		n := 1
		for n < len(entries) && entries[n].group == entries[0].group {
			n++
		}
		w.evbuf = w.evbuf[:0]
		for _, e := range entries[:n] {
			ev := &msgs[e.msg].Event
			w.evbuf = appendRef(w.evbuf, ev.Tenant, ev.GatewayID, ev.At)
		}
		if err := w.appendList(keys[entries[0].group], w.evbuf, store.MaxRecipientMessages, false); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}
