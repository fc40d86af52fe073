package boltstore

import (
	"errors"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Admission writes go through an in-memory overlay of the kv bucket,
// committed to the file by one goroutine (the flusher) in one bbolt
// transaction (two fdatasyncs) per flush:
//
//   - Admit decides under Store.mu against a read transaction seen through
//     the overlay (dirty, then pending, then the file) and writes its
//     counters, TATs and known-recipient marks into dirty. Decisions are
//     serialized by mu, so admission stays exact in the process.
//   - The flusher moves dirty to pending, commits pending, then drops it;
//     readers see pending until the file has it, so no state is ever
//     invisible.
//   - Options.SyncEvery 0 ("always"): an admitting Admit waits for the flush
//     that carries its writes before it answers (group commit without a
//     timer: a flush starts at once when the flusher is idle; admissions
//     that arrive while it runs share the next one).
//   - SyncEvery > 0: Admit answers at once; the flusher commits every
//     SyncEvery/2; an Admit that finds a write older than SyncEvery not yet
//     in the file waits for the next flush (a slow or failing disk slows or
//     refuses admissions instead of stretching the loss window). So a crash
//     (process or power) forgets at most the admissions answered within
//     one span of SyncEvery before it; the file itself is always a
//     committed bbolt state.
//   - Every other writer of an admission key (AddUsage, breaker records,
//     the first-contact window, the sweep) runs in Store.updateKV: the
//     overlay is committed in the same transaction first, with mu held, so
//     the two never overwrite each other. Readers of those keys use
//     Store.viewKV (through the overlay).
type writeBehind struct {
	dirty        map[string][]byte // written since the last flush began
	dirtySince   time.Time         // when dirty got its first entry
	pending      map[string][]byte // being committed by a flush
	pendingSince time.Time
	next         *flushWait // the flush that will carry dirty, when waited for
	commits      int64      // overlay flushes committed (for the tests)
}

// flushWait is one flush's outcome, for the Admits waiting on it.
type flushWait struct {
	done chan struct{}
	err  error
}

// get reads key through the overlay: ok false when it is in neither map.
func (w *writeBehind) get(key string) (v []byte, ok bool) {
	if v, ok := w.dirty[key]; ok {
		return v, true
	}
	v, ok = w.pending[key]
	return v, ok
}

func (w *writeBehind) put(key string, v []byte, now time.Time) {
	if len(w.dirty) == 0 {
		w.dirtySince = now
	}
	w.dirty[key] = v
}

// oldest is when the oldest write not yet in the file was made (zero: none).
func (w *writeBehind) oldest() time.Time {
	if w.pending != nil {
		return w.pendingSince
	}
	return w.dirtySince
}

// waiter returns the flush that will carry dirty. Caller holds Store.mu.
func (w *writeBehind) waiter() *flushWait {
	if w.next == nil {
		w.next = &flushWait{done: make(chan struct{})}
	}
	return w.next
}

// putAll writes an overlay batch into tx, in key order (bbolt fills pages
// best with sorted keys).
func putAll(tx *bolt.Tx, batch map[string][]byte) error {
	keys := make([]string, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := tx.Bucket(bucketKV)
	for _, k := range keys {
		if err := b.Put([]byte(k), batch[k]); err != nil {
			return err
		}
	}
	return nil
}

// errClosed is returned to an Admit whose flush never ran.
var errClosed = errors.New("boltstore: closed")

// mustWait reports whether an Admit that wrote must wait for the flush
// (always, or the oldest unwritten write is older than SyncEvery), and
// kicks the flusher if so. Caller holds s.mu.
func (s *Store) mustWait() *flushWait {
	if s.syncEvery > 0 && time.Since(s.wb.oldest()) <= s.syncEvery {
		return nil
	}
	w := s.wb.waiter()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return w
}

// flusher commits the overlay: on a kick, on every tick (SyncEvery/2), and
// once more at Close.
func (s *Store) flusher() {
	defer close(s.flushed)
	var tick <-chan time.Time
	if s.syncEvery > 0 {
		t := time.NewTicker(s.syncEvery / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.kick:
		case <-tick:
		case <-s.stop:
			if err := s.flush(); err != nil {
				s.log.Error("embedded store: admissions not written at close", "err", err.Error())
			}
			return
		}
		if err := s.flush(); err != nil {
			s.log.Warn("embedded store: admissions not written, retrying", "err", err.Error())
		}
	}
}

// flush commits what is dirty in one transaction and wakes its waiters.
// On failure the batch goes back under dirty (newer writes win) for the
// next flush, and the waiters get the error.
func (s *Store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch, since, w := s.wb.dirty, s.wb.dirtySince, s.wb.next
	s.wb.next = nil
	if len(batch) == 0 {
		s.mu.Unlock()
		if w != nil {
			close(w.done)
		}
		return nil
	}
	s.wb.pending, s.wb.pendingSince = batch, since
	s.wb.dirty, s.wb.dirtySince = make(map[string][]byte), time.Time{}
	s.mu.Unlock()

	err := s.db.Update(func(tx *bolt.Tx) error { return putAll(tx, batch) })

	s.mu.Lock()
	if err != nil {
		for k, v := range batch {
			if _, ok := s.wb.dirty[k]; !ok {
				s.wb.dirty[k] = v
			}
		}
		s.wb.dirtySince = since
	} else {
		s.wb.commits++
	}
	s.wb.pending, s.wb.pendingSince = nil, time.Time{}
	s.mu.Unlock()
	if w != nil {
		w.err = err
		close(w.done)
	}
	return err
}

// updateKV runs fn in a read-write transaction that first commits the
// overlay, with admissions held: the way every writer of a key Admit also
// writes goes (see writeBehind).
func (s *Store) updateKV(fn func(tx *bolt.Tx) error) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	batch, w := s.wb.dirty, s.wb.next
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putAll(tx, batch); err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		s.wb.commits++
	}
	s.wb.dirty, s.wb.dirtySince, s.wb.next = make(map[string][]byte), time.Time{}, nil
	if w != nil {
		close(w.done)
	}
	return nil
}

// viewKV runs fn with the kv bucket seen through the overlay (with
// admissions held for its duration; keep fn short).
func (s *Store) viewKV(fn func(k kv) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin(false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli(), wb: &s.wb})
}

// closeWriteBehind stops the flusher after a last flush.
func (s *Store) closeWriteBehind() {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.flushed
}

// closeState is the flusher's lifecycle.
type closeState struct {
	kick      chan struct{}
	stop      chan struct{}
	flushed   chan struct{}
	closeOnce sync.Once
}
