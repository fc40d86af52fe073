// Package boltstore is the embedded store: the semantics of the Redis store
// (store/redisstore) in one process, durable in a bbolt file under the data
// directory.
//
// Admission state (quota and first-contact counters, TATs, the
// known-recipient memory, the half-open probe budget) is written behind:
// Admit decides in memory over the file and the flusher commits the
// admissions of each interval in one fsynced transaction (writebehind.go;
// Options.SyncEvery; 0 commits before Admit answers). A crash forgets at
// most the admissions answered within one SyncEvery before it; Close
// forgets nothing. Suppressions, breaker records, freeze flags and every
// other write are committed (fsync) before their call returns. State lives in a "kv" bucket under names like the Redis keys (see
// store/redisstore; counters and TATs as separate entries here), each value
// prefixed with its expiry (unix ms, 0 for none); expired entries read as
// absent and are swept at Open and hourly by Admit. Writes are serialized
// by bbolt (one writer), so admission is exact within the process.
// Suppressions live in a "sup" bucket keyed tenant NUL address ("" tenant:
// global). Only one process may open the file (bbolt takes a file lock).
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/limiter/store"
)

var (
	bucketKV  = []byte("kv")
	bucketSup = []byte("sup")
)

// DefaultSyncEvery is Options.SyncEvery's default: a crash forgets at most
// the admissions answered within this long (see writeBehind).
const DefaultSyncEvery = 100 * time.Millisecond

// MaxSyncEvery bounds Options.SyncEvery.
const MaxSyncEvery = 10 * time.Second

// Options configure Open. Path and RecipientKey are required.
type Options struct {
	Path         string // the bbolt file, e.g. <data-dir>/store.db
	RecipientKey []byte
	KnownTTL     time.Duration // default store.DefaultKnownTTL
	SentTTL      time.Duration // default store.DefaultSentTTL
	Now          func() time.Time
	Logger       *slog.Logger
	// OpenTimeout bounds the wait for the file lock (another process).
	OpenTimeout time.Duration // default 2s
	// SyncEvery is how often admissions are committed to the file (1ms to
	// MaxSyncEvery; 0: DefaultSyncEvery); a crash forgets at most those
	// answered within one SyncEvery before it. Always commits each
	// admission before Admit answers, concurrent callers sharing commits.
	SyncEvery time.Duration
}

// Always is the Options.SyncEvery that commits every admission before
// Admit answers.
const Always time.Duration = -1

// Store is the embedded store. It is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	keyer     *store.Keyer
	knownTTL  time.Duration
	sentTTL   time.Duration
	now       func() time.Time
	log       *slog.Logger
	lastSweep atomic.Int64
	subs      subscribers

	// Write-behind of admissions (writebehind.go): mu serializes the
	// decisions and guards wb and closed; flushMu one overlay commit at
	// a time.
	syncEvery time.Duration // 0: always
	mu        sync.Mutex
	flushMu   sync.Mutex
	wb        writeBehind
	closed    bool
	closeState
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the store file.
func Open(opts Options) (*Store, error) {
	k, err := store.NewKeyer(opts.RecipientKey)
	if err != nil {
		return nil, err
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 2 * time.Second
	}
	switch {
	case opts.SyncEvery == Always:
		opts.SyncEvery = 0
	case opts.SyncEvery == 0:
		opts.SyncEvery = DefaultSyncEvery
	case opts.SyncEvery < time.Millisecond || opts.SyncEvery > MaxSyncEvery:
		return nil, fmt.Errorf("boltstore: SyncEvery %v: want Always or 1ms to %v", opts.SyncEvery, MaxSyncEvery)
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", opts.Path, err)
	}
	s := &Store{db: db, keyer: k, knownTTL: opts.KnownTTL, sentTTL: opts.SentTTL, now: opts.Now, log: opts.Logger,
		syncEvery: opts.SyncEvery, wb: writeBehind{dirty: make(map[string][]byte)},
		closeState: closeState{kick: make(chan struct{}, 1), stop: make(chan struct{}), flushed: make(chan struct{})}}
	if s.knownTTL <= 0 {
		s.knownTTL = store.DefaultKnownTTL
	}
	if s.sentTTL <= 0 {
		s.sentTTL = store.DefaultSentTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketSup} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	if err := s.sweep(); err != nil {
		db.Close()
		return nil, err
	}
	go s.flusher()
	return s, nil
}

// SyncName is the store's SyncEvery as the setting reads: "always" or a
// duration such as "100ms".
func (s *Store) SyncName() string {
	if s.syncEvery == 0 {
		return "always"
	}
	return s.syncEvery.String()
}

// Close commits the admissions not yet in the file and closes it. Calls
// after the first return the file's answer (nil).
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeWriteBehind()
	return s.db.Close()
}

// sweep deletes expired kv entries.
func (s *Store) sweep() error {
	now := s.now().UnixMilli()
	s.lastSweep.Store(now)
	return s.updateKV(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		var dead [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if exp := expiry(v); exp > 0 && exp <= now {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func expiry(v []byte) int64 {
	if len(v) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// kv is the view of the kv bucket inside one transaction at one time;
// with wb set (Store.mu held), seen through the write-behind overlay, and
// put writes into the overlay (the transaction is then read-only).
type kv struct {
	b   *bolt.Bucket
	now int64
	wb  *writeBehind
}

// raw is key's stored value, expired or not; nil when absent.
func (k kv) raw(key string) []byte {
	if k.wb != nil {
		if v, ok := k.wb.get(key); ok {
			return v
		}
	}
	return k.b.Get([]byte(key))
}

func (k kv) get(key string) (string, bool) {
	v := k.raw(key)
	if v == nil {
		return "", false
	}
	if exp := expiry(v); exp > 0 && exp <= k.now {
		return "", false
	}
	return string(v[8:]), true
}

func (k kv) num(key string) float64 {
	v, ok := k.get(key)
	if !ok {
		return 0
	}
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

// put stores val until exp (unix ms; 0 none).
func (k kv) put(key, val string, exp int64) error {
	buf := make([]byte, 8+len(val))
	binary.BigEndian.PutUint64(buf, uint64(exp))
	copy(buf[8:], val)
	if k.wb != nil {
		k.wb.put(key, buf, time.Now())
		return nil
	}
	return k.b.Put([]byte(key), buf)
}

// incr adds by to a counter, setting its expiry when it is created.
func (k kv) incr(key string, by int64, ttl int64) error {
	v := k.raw(key)
	exp := k.now + ttl
	var cur int64
	if v != nil && (expiry(v) == 0 || expiry(v) > k.now) {
		cur, _ = strconv.ParseInt(string(v[8:]), 10, 64)
		exp = expiry(v)
	}
	return k.put(key, strconv.FormatInt(cur+by, 10), exp)
}

func prefix(tenant string) string { return "gw:{t:" + tenant + "}:" }

func supKey(tenant, addr string) []byte { return []byte(tenant + "\x00" + addr) }

// Admit decides in one read-write transaction; admit runs the steps.
func (s *Store) Admit(ctx context.Context, req store.AdmitRequest) (store.Decision, error) {
	if err := req.Validate(); err != nil {
		return store.Decision{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Decision{}, err
	}
	nowT := s.now()
	now := nowT.UnixMilli()
	if now-s.lastSweep.Load() > time.Hour.Milliseconds() {
		if err := s.sweep(); err != nil {
			return store.Decision{}, err
		}
	}
	if req.Limits.FirstContactWindow.On() {
		// The window's step scans and deletes entries (a cursor over the
		// file): it runs in one transaction with the overlay committed.
		var d store.Decision
		err := s.updateKV(func(tx *bolt.Tx) error {
			var err error
			d, err = s.admit(tx, kv{b: tx.Bucket(bucketKV), now: now}, req, nowT)
			return err
		})
		if err != nil {
			return store.Decision{}, fmt.Errorf("boltstore: admit: %w", err)
		}
		return d, nil
	}
	d, w, err := s.admitBehind(req, nowT)
	if err != nil {
		return store.Decision{}, fmt.Errorf("boltstore: admit: %w", err)
	}
	if w != nil {
		select {
		case <-w.done:
		case <-ctx.Done():
			// Counted (it will be committed) but not answered: the
			// conservative side.
			return store.Decision{}, fmt.Errorf("boltstore: admit: %w", ctx.Err())
		}
		if w.err != nil {
			return store.Decision{}, fmt.Errorf("boltstore: admit: commit: %w", w.err)
		}
	}
	return d, nil
}

// admitBehind decides under s.mu through the overlay (writebehind.go) and
// returns the flush to wait for before answering, if any.
func (s *Store) admitBehind(req store.AdmitRequest, nowT time.Time) (store.Decision, *flushWait, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.Decision{}, nil, errClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return store.Decision{}, nil, err
	}
	defer tx.Rollback()
	// Only the commit step writes, and writes into the overlay cannot
	// fail, so a decision is either refused with nothing written or
	// admitted with everything written.
	d, err := s.admit(tx, kv{b: tx.Bucket(bucketKV), now: nowT.UnixMilli(), wb: &s.wb}, req, nowT)
	if err != nil || !d.Admitted {
		return d, nil, err
	}
	return d, s.mustWait(), nil
}

// The breaker record is "state|open_until_ms|probes".
func readBreaker(k kv, tenant string) (store.Breaker, error) {
	v, ok := k.get(prefix(tenant) + keyBreaker)
	b := store.Breaker{State: store.Closed}
	if !ok {
		return b, nil
	}
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return b, fmt.Errorf("boltstore: bad breaker record %q", v)
	}
	b.State = store.BreakerState(parts[0])
	if ms, _ := strconv.ParseInt(parts[1], 10, 64); ms > 0 {
		b.OpenUntil = time.UnixMilli(ms).UTC()
	}
	b.Probes, _ = strconv.ParseInt(parts[2], 10, 64)
	return b, b.Validate()
}

func writeBreaker(k kv, tenant string, b store.Breaker) error {
	var until int64
	if !b.OpenUntil.IsZero() {
		until = b.OpenUntil.UnixMilli()
	}
	return k.put(prefix(tenant)+keyBreaker, fmt.Sprintf("%s|%d|%d", b.State, until, b.Probes), 0)
}

// CheckSuppressed reads the tenant and global lists.
func (s *Store) CheckSuppressed(ctx context.Context, tenant string, addrs []string) ([]store.Suppression, error) {
	if len(addrs) == 0 || len(addrs) > store.MaxRecipients {
		return nil, fmt.Errorf("boltstore: %d addresses", len(addrs))
	}
	now := s.now()
	var out []store.Suppression
	err := s.db.View(func(tx *bolt.Tx) error {
		sup := tx.Bucket(bucketSup)
		for _, a := range addrs {
			a = strings.ToLower(a)
			for _, t := range []string{tenant, ""} {
				v := sup.Get(supKey(t, a))
				if v == nil {
					continue
				}
				sp, err := store.DecodeSuppression(t, a, string(v))
				if err != nil {
					return err
				}
				if sp.Live(now) {
					out = append(out, sp)
					break
				}
			}
		}
		return nil
	})
	return out, err
}

// AddSuppression adds or replaces an entry.
func (s *Store) AddSuppression(ctx context.Context, sp store.Suppression) error {
	if err := sp.Normalize(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSup).Put(supKey(sp.Tenant, sp.Address), []byte(sp.EncodeValue()))
	})
}

// RemoveSuppression deletes an entry.
func (s *Store) RemoveSuppression(ctx context.Context, tenant, addr string) (bool, error) {
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSup)
		key := supKey(tenant, strings.ToLower(addr))
		found = b.Get(key) != nil
		return b.Delete(key)
	})
	return found, err
}

// ListSuppressions lists one list.
func (s *Store) ListSuppressions(ctx context.Context, tenant string, limit int) ([]store.Suppression, error) {
	var out []store.Suppression
	pfx := []byte(tenant + "\x00")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSup).Cursor()
		for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx) && len(out) < limit; k, v = c.Next() {
			sp, err := store.DecodeSuppression(tenant, string(k[len(pfx):]), string(v))
			if err != nil {
				return err
			}
			out = append(out, sp)
		}
		return nil
	})
	return out, err
}

// SetBreaker writes a tenant's breaker record.
func (s *Store) SetBreaker(ctx context.Context, tenant string, b store.Breaker) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.State == "" {
		b.State = store.Closed
	}
	return s.updateKV(func(tx *bolt.Tx) error {
		return writeBreaker(kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}, tenant, b)
	})
}

// GetBreaker reads a tenant's breaker record; a missing one is Closed.
func (s *Store) GetBreaker(ctx context.Context, tenant string) (store.Breaker, error) {
	var b store.Breaker
	err := s.viewKV(func(k kv) error {
		var err error
		b, err = readBreaker(k, tenant)
		return err
	})
	return b, err
}

func frozenKey(tenant string) string {
	if tenant == "" {
		return "gw:{g}:frozen"
	}
	return prefix(tenant) + keyFrozen
}

// SetFrozen sets or clears a freeze flag.
func (s *Store) SetFrozen(ctx context.Context, tenant string, frozen bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}
		if frozen {
			return k.put(frozenKey(tenant), "1", 0)
		}
		return k.b.Delete([]byte(frozenKey(tenant)))
	})
}

// Frozen reads a freeze flag.
func (s *Store) Frozen(ctx context.Context, tenant string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		_, ok = kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}.get(frozenKey(tenant))
		return nil
	})
	return ok, err
}

// Usage reads the tenant's window counters.
func (s *Store) Usage(ctx context.Context, tenant string) (store.Usage, error) {
	var u store.Usage
	now := s.now().UnixMilli()
	hs, ds := strconv.FormatInt(now/windowHour.Milliseconds(), 10), strconv.FormatInt(now/windowDay.Milliseconds(), 10)
	err := s.viewKV(func(k kv) error {
		k.now = now
		P := prefix(tenant)
		u = store.Usage{Hour: int64(k.num(P + keyQuotaHour + hs)), Day: int64(k.num(P + keyQuotaDay + ds)),
			FirstContactHour: int64(k.num(P + keyFirstHour + hs)), FirstContactDay: int64(k.num(P + keyFirstDay + ds))}
		return nil
	})
	return u, err
}

// AddUsage adds to the window counters of at, in one transaction (see
// store.Store).
func (s *Store) AddUsage(ctx context.Context, tenant string, at time.Time, add store.Usage) error {
	if err := store.ValidateUsageAdd(tenant, add); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now, spent := s.now().UnixMilli(), at.UnixMilli()
	grace := counterGrace.Milliseconds()
	err := s.updateKV(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: now}
		for _, c := range []struct {
			key string
			w   time.Duration
			by  int64
		}{
			{keyQuotaHour, windowHour, add.Hour},
			{keyQuotaDay, windowDay, add.Day},
			{keyFirstHour, windowHour, add.FirstContactHour},
			{keyFirstDay, windowDay, add.FirstContactDay},
		} {
			cur, left := window(now, c.w)
			if c.by <= 0 || spent/c.w.Milliseconds() < now/c.w.Milliseconds() {
				continue // nothing to add, or that window is over
			}
			if err := k.incr(prefix(tenant)+c.key+cur, c.by, left+grace); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: add usage: %w", err)
	}
	return nil
}

// Sent sums the per-minute sent counters.
func (s *Store) Sent(ctx context.Context, tenant string, from, to time.Time) (int64, error) {
	first, last := from.UnixMilli()/sentBucket.Milliseconds(), to.UnixMilli()/sentBucket.Milliseconds()
	if n := int64(s.sentTTL / sentBucket); last-first > n {
		first = last - n
	}
	var sum int64
	err := s.viewKV(func(k kv) error {
		for m := first; m <= last; m++ {
			sum += int64(k.num(prefix(tenant) + keySent + strconv.FormatInt(m, 10)))
		}
		return nil
	})
	return sum, err
}
