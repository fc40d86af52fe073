package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// The first-contact window's entries, after the tenant's prefix (the Redis
// store's figures, one entry each): the outstanding first contacts (one
// entry per HMAC, expiring with it), the shrink markers, and the window's
// figures.
const (
	keyOutstanding = "fco:" // + HMAC: outstanding until its expiry
	keyShrunk      = "fcs:" // + HMAC: a complaint's shrink was applied (store.SettleMemory)
	keyWinWindow   = "fcw:w"
	keyWinThresh   = "fcw:th"
	keyWinHeld     = "fcw:h"
	keyWinDeliv    = "fcw:dl"
	keyWinExpired  = "fcw:exp"
	keyWinEpochD   = "fcw:ed" // the epoch's settled Deliveries
	keyWinEpochB   = "fcw:eb" // the epoch's settled hard bounces
)

// outstanding counts the tenant's live outstanding first contacts, deleting
// (and counting in keyWinExpired) the expired ones, and returns the
// earliest expiry (unix ms; 0 none).
func outstanding(k kv, p string) (n int64, oldest int64, err error) {
	pre := []byte(p + keyOutstanding)
	var dead [][]byte
	c := k.b.Cursor()
	for key, v := c.Seek(pre); key != nil && bytes.HasPrefix(key, pre); key, v = c.Next() {
		exp := expiry(v)
		if exp > 0 && exp <= k.now {
			dead = append(dead, append([]byte(nil), key...))
			continue
		}
		n++
		if oldest == 0 || exp < oldest {
			oldest = exp
		}
	}
	for _, key := range dead {
		if err := k.b.Delete(key); err != nil {
			return 0, 0, err
		}
	}
	if len(dead) > 0 {
		if err := k.add(p+keyWinExpired, int64(len(dead))); err != nil {
			return 0, 0, err
		}
	}
	return n, oldest, nil
}

// window reads the tenant's window and threshold under w.
func readWindow(k kv, p string, w gateway.FirstContactWindow) (float64, int64) {
	cwnd, thresh := store.WindowStart(w)
	if v, ok := k.get(p + keyWinWindow); ok {
		cwnd, _ = strconv.ParseFloat(v, 64)
	}
	if v, ok := k.get(p + keyWinThresh); ok {
		thresh, _ = strconv.ParseInt(v, 10, 64)
	}
	return store.ClampWindow(cwnd, w), thresh
}

// checkWindow is step 4b: the outstanding first contacts plus the
// message's new ones must fit in the window, unless none is outstanding.
func (a *admission) checkWindow() (*store.Decision, error) {
	w := a.l.FirstContactWindow
	if !w.On() || a.newc == 0 {
		return nil, nil
	}
	out, oldest, err := outstanding(a.k, a.p)
	if err != nil {
		return nil, err
	}
	cwnd, _ := readWindow(a.k, a.p, w)
	if out == 0 || out+a.newc <= int64(cwnd) || !a.enforced(store.ReasonFirstWindow) {
		return nil, nil
	}
	if err := a.k.add(a.p+keyWinHeld, 1); err != nil {
		return nil, err
	}
	retry := store.WindowRetry.Milliseconds()
	if oldest > 0 {
		retry = max(1, min(retry, oldest-a.ms))
	}
	d, _ := a.refuse(store.ReasonFirstWindow, ms(float64(retry)), 0)
	d.NewRecipients = int(a.newc)
	return d, nil
}

// rememberOutstanding marks the message's first contacts outstanding.
func (a *admission) rememberOutstanding() error {
	w := a.l.FirstContactWindow
	if !w.On() || a.newc == 0 {
		return nil
	}
	exp := a.ms + w.OutstandingTimeout.Milliseconds()
	for i, h := range a.hashes {
		if a.isNew[i] {
			if err := a.k.put(a.p+keyOutstanding+h, "1", exp); err != nil {
				return err
			}
		}
	}
	return nil
}

var _ store.WindowStore = (*Store)(nil)

// SettleFirstContacts implements store.WindowStore in one transaction.
func (s *Store) SettleFirstContacts(ctx context.Context, req store.SettleRequest) (store.SettleResult, error) {
	if err := req.Validate(); err != nil {
		return store.SettleResult{}, err
	}
	return s.settle(ctx, req)
}

// FirstContactWindow implements store.WindowStore.
func (s *Store) FirstContactWindow(ctx context.Context, tenant string, w gateway.FirstContactWindow) (store.WindowStatus, error) {
	if !w.On() {
		w = gateway.FirstContactWindow{Initial: 1, Min: 1, Max: 1}
	}
	r, err := s.settle(ctx, store.SettleRequest{Tenant: tenant, Outcome: store.SettleNeutral, Window: w})
	return r.Status, err
}

func (s *Store) settle(ctx context.Context, req store.SettleRequest) (store.SettleResult, error) {
	if err := ctx.Err(); err != nil {
		return store.SettleResult{}, err
	}
	if err := req.Validate(); err != nil {
		return store.SettleResult{}, err
	}
	now := s.now().UnixMilli()
	var res store.SettleResult
	err := s.updateKV(func(tx *bolt.Tx) error {
		res = store.SettleResult{}
		k := kv{b: tx.Bucket(bucketKV), now: now}
		p, w := prefix(req.Tenant), req.Window
		if _, _, err := outstanding(k, p); err != nil {
			return err
		}
		fresh := false
		for _, a := range req.Recipients {
			h := s.keyer.Hash(strings.ToLower(a))
			key := []byte(p + keyOutstanding + h)
			if _, ok := k.get(string(key)); ok {
				res.Settled++
				if err := k.b.Delete(key); err != nil {
					return err
				}
			}
			if req.Outcome == store.SettleComplaint {
				if _, ok := k.get(p + keyShrunk + h); !ok {
					fresh = true
					if err := k.put(p+keyShrunk+h, "1", now+store.SettleMemory.Milliseconds()); err != nil {
						return err
					}
				}
			}
		}
		cwnd, thresh := readWindow(k, p, w)
		ed, eb := int64(k.num(p+keyWinEpochD)), int64(k.num(p+keyWinEpochB))
		changed := false
		switch {
		case req.Outcome == store.SettleDelivery:
			if err := k.add(p+keyWinDeliv, int64(len(req.Recipients))); err != nil {
				return err
			}
			cwnd, changed = store.GrowWindow(cwnd, thresh, res.Settled, w), res.Settled > 0
			ed += int64(res.Settled)
		case req.Outcome == store.SettleBounce:
			eb += int64(res.Settled)
			changed = res.Settled > 0
		case req.Outcome == store.SettleComplaint && fresh:
			cwnd, thresh = store.ShrinkWindow(cwnd, w)
			changed, res.Shrunk = true, true
		}
		if ed+eb >= w.SampleSize() {
			var bad bool
			cwnd, thresh, ed, eb, bad = store.EndEpoch(cwnd, thresh, ed, eb, w)
			changed, res.Shrunk = true, res.Shrunk || bad
		}
		if changed {
			for key, v := range map[string]int64{keyWinEpochD: ed, keyWinEpochB: eb} {
				if err := k.put(p+key, strconv.FormatInt(v, 10), 0); err != nil {
					return err
				}
			}
			if err := k.put(p+keyWinWindow, strconv.FormatFloat(cwnd, 'g', 17, 64), 0); err != nil {
				return err
			}
			if err := k.put(p+keyWinThresh, strconv.FormatInt(thresh, 10), 0); err != nil {
				return err
			}
		}
		out, _, err := outstanding(k, p)
		if err != nil {
			return err
		}
		res.Status = store.WindowStatus{Window: cwnd, Threshold: thresh, Outstanding: out,
			Held: int64(k.num(p + keyWinHeld)), Deliveries: int64(k.num(p + keyWinDeliv)), Expired: int64(k.num(p + keyWinExpired)),
			EpochDelivered: ed, EpochBounced: eb}
		return nil
	})
	if err != nil {
		return store.SettleResult{}, fmt.Errorf("boltstore: window: %w", err)
	}
	return res, nil
}

// add adds by to a counter that never expires.
func (k kv) add(key string, by int64) error {
	return k.put(key, strconv.FormatInt(int64(k.num(key))+by, 10), 0)
}
