package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

// Webhook health (store.WebhookHealth), in the bucket "whh":
//
//	hc     tenant NUL hour(8) outcome NUL endpoint -> attempts in that UTC
//	       hour (unix seconds of its start); older hours are deleted when
//	       the tenant's next outcome is written
//	hl     tenant NUL kind NUL endpoint -> ms(8) error; kind "ok" (last
//	       delivery) or "err" (last failure)
//	deadt  tenant NUL died ms(8) id -> "": the tenant's dead letters;
//	       entries no longer in wh/dead (trimmed) are deleted when the
//	       tenant's next one is written, and never counted
//
// The figures are written in their own transaction after the queue's.
var (
	bucketWHH = []byte("whh")
	whhSubs   = []string{"hc", "hl", "deadt"}
)

type whhTx struct{ hc, hl, deadt *bolt.Bucket }

func whhBuckets(tx *bolt.Tx) (*whhTx, error) {
	root := tx.Bucket(bucketWHH)
	if root == nil {
		if !tx.Writable() {
			return nil, nil
		}
		var err error
		if root, err = tx.CreateBucket(bucketWHH); err != nil {
			return nil, err
		}
	}
	bs := make([]*bolt.Bucket, len(whhSubs))
	for i, name := range whhSubs {
		if bs[i] = root.Bucket([]byte(name)); bs[i] == nil {
			if !tx.Writable() {
				return nil, nil
			}
			var err error
			if bs[i], err = root.CreateBucket([]byte(name)); err != nil {
				return nil, err
			}
		}
	}
	return &whhTx{hc: bs[0], hl: bs[1], deadt: bs[2]}, nil
}

func tenantPrefix(t string) []byte { return append([]byte(t), 0) }

func hourOf(t time.Time) int64 { return t.Unix() / 3600 * 3600 }

// deleteWhere deletes the keys under prefix for which drop says so.
func deleteWhere(b *bolt.Bucket, prefix []byte, drop func(k, v []byte) bool) error {
	var doomed [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if drop(k, v) {
			doomed = append(doomed, slices.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// recordHealth adds o to the figures; deadID is the dead entry's id (op
// dead). A failure is logged, never returned: the queue call it follows
// has succeeded.
func (s *Store) recordHealth(o store.WebhookOutcome, deadID string) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		h, err := whhBuckets(tx)
		if err != nil {
			return err
		}
		p := tenantPrefix(o.Tenant)
		cutoff := hourOf(o.At) - (store.WebhookHealthHours-1)*3600
		if err := deleteWhere(h.hc, p, func(k, _ []byte) bool {
			return len(k) < len(p)+8 || int64(binary.BigEndian.Uint64(k[len(p):])) < cutoff
		}); err != nil {
			return err
		}
		ck := cat(p, u64(hourOf(o.At)), []byte(o.Outcome), []byte{0}, []byte(o.Endpoint))
		var n int64
		if v := h.hc.Get(ck); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		if err := h.hc.Put(ck, u64(n+1)); err != nil {
			return err
		}
		keep := o.At.Add(-store.WebhookHealthKeep).UnixMilli()
		if err := deleteWhere(h.hl, p, func(_, v []byte) bool {
			return len(v) < 8 || int64(binary.BigEndian.Uint64(v)) < keep
		}); err != nil {
			return err
		}
		kind := "err"
		if o.Outcome == store.OutcomeDelivered {
			kind = "ok"
		}
		if err := h.hl.Put(cat(p, []byte(kind), []byte{0}, []byte(o.Endpoint)), cat(u64(o.At.UnixMilli()), []byte(o.Error))); err != nil {
			return err
		}
		if deadID == "" {
			return nil
		}
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		if err := deleteWhere(h.deadt, p, func(k, _ []byte) bool { return w.dead.Get(k[len(p)+8:]) == nil }); err != nil {
			return err
		}
		return h.deadt.Put(cat(p, u64(o.At.UnixMilli()), []byte(deadID)), nil)
	})
	if err != nil {
		s.log.Warn("webhook health not recorded", "tenant", o.Tenant, "outcome", o.Outcome, "err", err.Error())
	}
}

// forgetDead drops a replayed entry from its tenant's dead letters.
func (s *Store) forgetDead(d store.DeadWebhook) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		h, err := whhBuckets(tx)
		if err != nil {
			return err
		}
		return h.deadt.Delete(cat(tenantPrefix(d.Tenant), u64(d.Died.UnixMilli()), []byte(d.ID)))
	})
	if err != nil {
		s.log.Warn("webhook health: replayed entry not dropped", "tenant", d.Tenant, "err", err.Error())
	}
}

// WebhookHealth returns each tenant's webhook health at now.
func (s *Store) WebhookHealth(ctx context.Context, tenants []string, now time.Time) (map[string]store.WebhookHealth, error) {
	stats, err := s.WebhookStats(ctx, tenants)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.WebhookHealth, len(tenants))
	err = s.db.View(func(tx *bolt.Tx) error {
		h, err := whhBuckets(tx)
		if err != nil {
			return err
		}
		w, err := whBuckets(tx)
		if err != nil {
			return err
		}
		for _, t := range tenants {
			wh := store.WebhookHealth{WebhookStat: stats[t]}
			if h != nil {
				wh.Dead, wh.Webhooks = h.tenant(w, t, now)
			}
			out[t] = wh
		}
		return nil
	})
	return out, err
}

// tenant reads one tenant's dead-letter count and webhooks.
func (h *whhTx) tenant(w *whTx, t string, now time.Time) (int64, []store.WebhookEndpointHealth) {
	p := tenantPrefix(t)
	eps := map[string]*store.WebhookEndpointHealth{}
	ep := func(url string) *store.WebhookEndpointHealth {
		if eps[url] == nil {
			eps[url] = &store.WebhookEndpointHealth{Endpoint: url}
		}
		return eps[url]
	}
	from := hourOf(now) - (store.WebhookHealthHours-1)*3600
	c := h.hc.Cursor()
	for k, v := c.Seek(cat(p, u64(from))); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if len(k) < len(p)+8 || len(v) != 8 || int64(binary.BigEndian.Uint64(k[len(p):])) > hourOf(now) {
			continue
		}
		outcome, url, ok := strings.Cut(string(k[len(p)+8:]), "\x00")
		if !ok {
			continue
		}
		n := int64(binary.BigEndian.Uint64(v))
		switch outcome {
		case store.OutcomeDelivered:
			ep(url).Delivered += n
		case store.OutcomeFailed:
			ep(url).Failed += n
		case store.OutcomeDead:
			ep(url).Dead += n
		}
	}
	keep := now.Add(-store.WebhookHealthKeep).UnixMilli()
	c = h.hl.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		kind, url, ok := strings.Cut(string(k[len(p):]), "\x00")
		if !ok || len(v) < 8 || int64(binary.BigEndian.Uint64(v)) < keep {
			continue
		}
		at := time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC()
		switch kind {
		case "ok":
			ep(url).LastDelivered = at
		case "err":
			e := ep(url)
			e.LastFailed, e.LastError = at, string(v[8:])
		}
	}
	var dead int64
	c = h.deadt.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if len(k) > len(p)+8 && w != nil && w.dead.Get(k[len(p)+8:]) != nil {
			dead++
		}
	}
	list := make([]store.WebhookEndpointHealth, 0, len(eps))
	for _, e := range eps {
		list = append(list, *e)
	}
	slices.SortFunc(list, func(a, b store.WebhookEndpointHealth) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return dead, list
}
