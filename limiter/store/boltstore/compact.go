package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// The message status lists (gw:ms:<gateway id>) and the recipient index
// lists (gw:rcpt:<hash>) are stored compactly: the format byte
// compactV1, then the entries, oldest first, each a run of fields
// (strings as uvarint length + bytes, times as varint unix seconds, uvarint
// nanoseconds, varint zone offset in seconds). Appending is a byte append
// and the cap is kept by skipping the oldest entries, so a write neither
// decodes nor re-encodes the entries already there. Versions before it
// wrote JSON lists (first byte '['): those are still read, and rewritten
// compactly on their next append (a deployment upgrades in place; an older
// binary cannot read the compact values back).
//
// Hand-written rather than a library codec (gob, protobuf): the entries are
// three to seven flat fields, and the point is to append and skip without
// decoding, which a self-describing or length-less codec does not give.
const compactV1 = 0x01

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	_, off := t.Zone()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(off))
}

// appendEvent encodes ev (its GatewayID is the key's, not stored).
func appendEvent(b []byte, ev *store.MessageEvent) []byte {
	b = appendStr(b, ev.Tenant)
	b = appendStr(b, ev.Type)
	b = appendTime(b, ev.At)
	b = appendStr(b, ev.SESMessageID)
	b = binary.AppendUvarint(b, uint64(len(ev.Recipients)))
	for _, r := range ev.Recipients {
		b = appendStr(b, r)
	}
	return appendStr(b, ev.Detail)
}

// appendRef encodes one recipient index entry.
func appendRef(b []byte, tenant, gatewayID string, at time.Time) []byte {
	b = appendStr(b, tenant)
	b = appendStr(b, gatewayID)
	return appendTime(b, at)
}

var errCompact = errors.New("truncated or malformed compact value")

// dec reads a compact value; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCompact
	}
	d.b = nil
}

// bytes returns the next string's bytes (aliasing the value).
func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) time() time.Time {
	sec, nsec, off := d.varint(), d.uvarint(), d.varint()
	if nsec >= 1e9 {
		d.fail()
	}
	t := time.Unix(sec, int64(nsec))
	if off == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(off)))
}

func (d *dec) skipTime() { d.varint(); d.uvarint(); d.varint() }

func (d *dec) skipEvent() {
	d.bytes()
	d.bytes()
	d.skipTime()
	d.bytes()
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		d.bytes()
	}
	d.bytes()
}

func (d *dec) event() store.MessageEvent {
	ev := store.MessageEvent{Tenant: d.str(), Type: d.str(), At: d.time(), SESMessageID: d.str()}
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
		ev.Recipients = make([]string, 0, n)
		for ; n > 0 && d.err == nil; n-- {
			ev.Recipients = append(ev.Recipients, d.str())
		}
	} else if n > 0 {
		d.fail()
	}
	ev.Detail = d.str()
	return ev
}

func (d *dec) skipRef() { d.bytes(); d.bytes(); d.skipTime() }

func (d *dec) ref() store.RecipientMessage {
	return store.RecipientMessage{Tenant: d.str(), GatewayID: d.str(), At: d.time()}
}

// decodeEvents decodes a gw:ms: value (compact or JSON), oldest first.
func decodeEvents(v []byte) ([]store.MessageEvent, error) {
	if len(v) == 0 {
		return nil, nil
	}
	if v[0] != compactV1 {
		var out []store.MessageEvent
		if err := json.Unmarshal(v, &out); err != nil {
			return nil, fmt.Errorf("boltstore: message events: %w", err)
		}
		return out, nil
	}
	d := dec{b: v[1:]}
	var out []store.MessageEvent
	for len(d.b) > 0 && d.err == nil {
		out = append(out, d.event())
	}
	if d.err != nil {
		return nil, fmt.Errorf("boltstore: message events: %w", d.err)
	}
	return out, nil
}

// decodeRefs decodes a gw:rcpt: value (compact or JSON), newest first.
func decodeRefs(v []byte) ([]store.RecipientMessage, error) {
	if len(v) == 0 {
		return nil, nil
	}
	if v[0] != compactV1 {
		var out []store.RecipientMessage
		if err := json.Unmarshal(v, &out); err != nil {
			return nil, fmt.Errorf("boltstore: recipient index: %w", err)
		}
		return out, nil
	}
	d := dec{b: v[1:]}
	var out []store.RecipientMessage
	for len(d.b) > 0 && d.err == nil {
		out = append(out, d.ref())
	}
	if d.err != nil {
		return nil, fmt.Errorf("boltstore: recipient index: %w", d.err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// compactBody returns the entries of old (a stored value without its
// expiry, compact or JSON; nil: none) as compact entries, oldest first,
// appended to dst; JSON lists are converted.
func compactBody(dst, old []byte, events bool) ([]byte, error) {
	if len(old) == 0 {
		return dst, nil
	}
	if old[0] == compactV1 {
		return append(dst, old[1:]...), nil
	}
	if events {
		evs, err := decodeEvents(old)
		for i := range evs {
			dst = appendEvent(dst, &evs[i])
		}
		return dst, err
	}
	refs, err := decodeRefs(old) // newest first
	for i := len(refs) - 1; i >= 0; i-- {
		dst = appendRef(dst, refs[i].Tenant, refs[i].GatewayID, refs[i].At)
	}
	return dst, err
}

// capEntries drops the oldest entries of body beyond max; it never
// allocates.
func capEntries(body []byte, max int, events bool) ([]byte, error) {
	n := 0
	for d := (dec{b: body}); len(d.b) > 0; n++ {
		if events {
			d.skipEvent()
		} else {
			d.skipRef()
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	d := dec{b: body}
	for ; n > max; n-- {
		if events {
			d.skipEvent()
		} else {
			d.skipRef()
		}
	}
	return d.b, nil
}
