// Package boltstore is the embedded store: the semantics of the Redis store
// (store/redisstore) in one process, durable in a bbolt file under the data
// directory.
//
// Every admission is one bbolt read-write transaction, committed (fsync)
// before Admit returns, so suppressions, the first-contact memory, quota
// counters, breaker records and freeze flags survive a restart or a crash.
// State lives in a "kv" bucket under names like the Redis keys (see
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
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

var (
	bucketKV  = []byte("kv")
	bucketSup = []byte("sup")
)

// admitBatchDelay is how long an admission waits for others to share its
// commit: one fsync per batch instead of one per message (about 3x the
// admissions per second with 16 callers, BenchmarkAdmitParallel), for at
// most this much added latency.
const admitBatchDelay = 100 * time.Microsecond

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
}

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
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", opts.Path, err)
	}
	// Admissions that arrive within admitBatchDelay share one commit (and
	// one fsync): Admit runs in db.Batch.
	db.MaxBatchDelay = admitBatchDelay
	s := &Store{db: db, keyer: k, knownTTL: opts.KnownTTL, sentTTL: opts.SentTTL, now: opts.Now, log: opts.Logger}
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
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// sweep deletes expired kv entries.
func (s *Store) sweep() error {
	now := s.now().UnixMilli()
	s.lastSweep.Store(now)
	return s.db.Update(func(tx *bolt.Tx) error {
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

// kv is the view of the kv bucket inside one transaction at one time.
type kv struct {
	b   *bolt.Bucket
	now int64
}

func (k kv) get(key string) (string, bool) {
	v := k.b.Get([]byte(key))
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
	return k.b.Put([]byte(key), buf)
}

// incr adds by to a counter, setting its expiry when it is created.
func (k kv) incr(key string, by int64, ttl int64) error {
	v := k.b.Get([]byte(key))
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

// Admit decides in one read-write transaction, in the order of the Redis
// script: frozen (global, tenant), breaker, suppression (tenant, global),
// first-contact, quotas, rate, per-domain rate, then commit.
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
	// db.Batch may run the function more than once (when another call in
	// the same batch fails, the batch is rolled back and retried without
	// it): admit only reads and writes the transaction, and d is set anew
	// by every run, so the decision is the one of the committed run.
	var d store.Decision
	err := s.db.Batch(func(tx *bolt.Tx) error {
		var err error
		d, err = s.admit(tx, req, nowT)
		return err
	})
	if err != nil {
		return store.Decision{}, fmt.Errorf("boltstore: admit: %w", err)
	}
	return d, nil
}

func (s *Store) admit(tx *bolt.Tx, req store.AdmitRequest, nowT time.Time) (store.Decision, error) {
	now := nowT.UnixMilli()
	k := kv{b: tx.Bucket(bucketKV), now: now}
	P := prefix(req.Tenant)
	l := req.Limits
	ms := func(v float64) time.Duration { return time.Duration(math.Ceil(v)) * time.Millisecond }

	// 1. frozen
	if _, ok := k.get("gw:{g}:frozen"); ok {
		return store.Decision{Reason: store.ReasonFrozen, RetryAfter: store.FrozenRetry, CacheFor: store.FrozenCache}, nil
	}
	if _, ok := k.get(P + "frozen"); ok {
		return store.Decision{Reason: store.ReasonFrozen, RetryAfter: store.FrozenRetry, CacheFor: store.FrozenCache}, nil
	}
	// 2. breaker
	b, err := readBreaker(k, req.Tenant)
	if err != nil {
		return store.Decision{}, err
	}
	probing := false
	switch b.State {
	case store.ForcedOpen:
		return store.Decision{Reason: store.ReasonBreakerOpen, RetryAfter: store.FrozenRetry, CacheFor: store.FrozenCache}, nil
	case store.Open:
		if left := b.OpenUntil.UnixMilli() - now; left > 0 {
			return store.Decision{Reason: store.ReasonBreakerOpen, RetryAfter: ms(float64(left)), CacheFor: ms(float64(left))}, nil
		}
		probing = true
	case store.HalfOpen:
		probing = true
	}
	// 3. suppression, tenant then global
	lower := make([]string, len(req.Recipients))
	for i, r := range req.Recipients {
		lower[i] = strings.ToLower(r)
	}
	sup := tx.Bucket(bucketSup)
	var d store.Decision
	var live []string
	for _, a := range lower {
		hit := false
		for _, t := range []string{req.Tenant, ""} {
			v := sup.Get(supKey(t, a))
			if v == nil {
				continue
			}
			sp, err := store.DecodeSuppression(t, a, string(v))
			if err != nil {
				return store.Decision{}, err
			}
			if sp.Live(nowT) {
				d.Suppressed = append(d.Suppressed, sp)
				hit = true
				break
			}
		}
		if !hit {
			live = append(live, a)
		}
	}
	m := int64(len(live))
	if m == 0 {
		return store.Decision{Reason: store.ReasonSuppressed, Suppressed: d.Suppressed}, nil
	}
	refuse := func(r store.Reason, retry, cache time.Duration) (store.Decision, error) {
		return store.Decision{Reason: r, RetryAfter: retry, CacheFor: cache, Suppressed: d.Suppressed}, nil
	}
	if probing && b.Probes < m {
		cache := time.Duration(0)
		if b.Probes <= 0 {
			cache = store.ProbeRetry
		}
		return refuse(store.ReasonBreakerOpen, store.ProbeRetry, cache)
	}
	shadow := store.ShadowMask(l.Shadow)
	over := func(name string) bool {
		for i, n := range gateway.LimitNames() {
			if n == name && shadow&(1<<i) != 0 {
				if !slices.Contains(d.Shadowed, name) {
					d.Shadowed = append(d.Shadowed, name)
				}
				return false
			}
		}
		return true
	}
	hour, day := now/3600000, now/86400000
	hourEnd, dayEnd := (hour+1)*3600000-now, (day+1)*86400000-now
	hs, ds := strconv.FormatInt(hour, 10), strconv.FormatInt(day, 10)

	// 4. first contact
	var newc int64
	hashes := make([]string, len(live))
	if l.FirstContactPerHour > 0 || l.FirstContactPerDay > 0 {
		for i, a := range live {
			hashes[i] = s.keyer.Hash(a)
			if _, ok := k.get(P + "k:" + hashes[i]); !ok {
				newc++
			}
		}
	}
	d.NewRecipients = int(newc)
	if l.FirstContactPerHour > 0 && newc > 0 && int64(k.num(P+"fh:"+hs))+newc > l.FirstContactPerHour && over(gateway.LimitFirstContactPerHour) {
		return refuse(store.ReasonFirstHour, ms(float64(hourEnd)), 0)
	}
	if l.FirstContactPerDay > 0 && newc > 0 && int64(k.num(P+"fd:"+ds))+newc > l.FirstContactPerDay && over(gateway.LimitFirstContactPerDay) {
		return refuse(store.ReasonFirstDay, ms(float64(dayEnd)), 0)
	}
	// 5. quotas
	if l.PerHour > 0 {
		used := int64(k.num(P + "qh:" + hs))
		if used+m > l.PerHour && over(gateway.LimitPerHour) {
			cache := time.Duration(0)
			if used >= l.PerHour {
				cache = ms(float64(hourEnd))
			}
			return refuse(store.ReasonPerHour, ms(float64(hourEnd)), cache)
		}
	}
	if l.PerDay > 0 {
		used := int64(k.num(P + "qd:" + ds))
		if used+m > l.PerDay && over(gateway.LimitPerDay) {
			cache := time.Duration(0)
			if used >= l.PerDay {
				cache = ms(float64(dayEnd))
			}
			return refuse(store.ReasonPerDay, ms(float64(dayEnd)), cache)
		}
	}
	// 6. GCRA
	fnow := float64(now)
	newTAT := -1.0
	if l.Rate > 0 {
		burst := l.EffectiveBurst()
		cost := 1.0
		if l.RatePerRecipient {
			cost = float64(m)
		}
		T := 1000 / l.Rate
		if warned(k, req.Tenant) { // the breaker's warning level halves the rate
			T *= 2
		}
		tau := float64(burst) * T
		tat := max(k.num(P+"gcra"), fnow)
		tat = min(tat, fnow+tau)
		if cost > float64(burst) && over(gateway.LimitRate) {
			return refuse(store.ReasonTooMany, 0, 0)
		}
		if allow := tat + cost*T - tau; allow > fnow+0.001 && over(gateway.LimitRate) {
			return refuse(store.ReasonRate, ms(allow-fnow), ms(max(0, tat+T-tau-fnow)))
		}
		newTAT = tat + cost*T
	}
	// 7. per-domain rate
	domTAT := map[string]float64{}
	if l.PerDomainRate > 0 {
		burst := l.EffectivePerDomainBurst()
		count := map[string]int{}
		var order []string
		for _, a := range live {
			dom := store.Domain(a)
			if count[dom] == 0 {
				order = append(order, dom)
			}
			count[dom]++
		}
		T := 1000 / l.PerDomainRate
		tau := float64(burst) * T
		for _, dom := range order {
			c := float64(count[dom])
			tat := min(max(k.num(P+"d:"+dom), fnow), fnow+tau)
			if c > float64(burst) && over(gateway.LimitPerDomainRate) {
				return refuse(store.ReasonTooMany, 0, 0)
			}
			if allow := tat + c*T - tau; allow > fnow+0.001 && over(gateway.LimitPerDomainRate) {
				return refuse(store.ReasonPerDomainRate, ms(allow-fnow), 0)
			}
			domTAT[dom] = tat + c*T
		}
	}
	// 8. commit
	err = errors.Join(
		incrIf(k, l.PerHour > 0, P+"qh:"+hs, m, hourEnd+60000),
		incrIf(k, l.PerDay > 0, P+"qd:"+ds, m, dayEnd+60000),
		incrIf(k, l.FirstContactPerHour > 0 && newc > 0, P+"fh:"+hs, newc, hourEnd+60000),
		incrIf(k, l.FirstContactPerDay > 0 && newc > 0, P+"fd:"+ds, newc, dayEnd+60000),
		k.incr(P+"sent:"+strconv.FormatInt(now/60000, 10), m, s.sentTTL.Milliseconds()),
	)
	if err != nil {
		return store.Decision{}, err
	}
	if l.FirstContactPerHour > 0 || l.FirstContactPerDay > 0 {
		for _, h := range hashes {
			if err := k.put(P+"k:"+h, "1", now+s.knownTTL.Milliseconds()); err != nil {
				return store.Decision{}, err
			}
		}
	}
	if newTAT >= 0 {
		if err := k.put(P+"gcra", strconv.FormatFloat(newTAT, 'f', 3, 64), int64(math.Ceil(newTAT))+1000); err != nil {
			return store.Decision{}, err
		}
	}
	for dom, tat := range domTAT {
		if err := k.put(P+"d:"+dom, strconv.FormatFloat(tat, 'f', 3, 64), int64(math.Ceil(tat))+1000); err != nil {
			return store.Decision{}, err
		}
	}
	if probing {
		b.State, b.Probes = store.HalfOpen, b.Probes-m
		if err := writeBreaker(k, req.Tenant, b); err != nil {
			return store.Decision{}, err
		}
	}
	d.Admitted = true
	return d, nil
}

func incrIf(k kv, cond bool, key string, by, ttl int64) error {
	if !cond || by <= 0 {
		return nil
	}
	return k.incr(key, by, ttl)
}

// The breaker record is "state|open_until_ms|probes".
func readBreaker(k kv, tenant string) (store.Breaker, error) {
	v, ok := k.get(prefix(tenant) + "brk")
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
	return k.put(prefix(tenant)+"brk", fmt.Sprintf("%s|%d|%d", b.State, until, b.Probes), 0)
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
	return s.db.Update(func(tx *bolt.Tx) error {
		return writeBreaker(kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}, tenant, b)
	})
}

// GetBreaker reads a tenant's breaker record; a missing one is Closed.
func (s *Store) GetBreaker(ctx context.Context, tenant string) (store.Breaker, error) {
	var b store.Breaker
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		b, err = readBreaker(kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}, tenant)
		return err
	})
	return b, err
}

func frozenKey(tenant string) string {
	if tenant == "" {
		return "gw:{g}:frozen"
	}
	return prefix(tenant) + "frozen"
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
	hs, ds := strconv.FormatInt(now/3600000, 10), strconv.FormatInt(now/86400000, 10)
	err := s.db.View(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: now}
		P := prefix(tenant)
		u = store.Usage{Hour: int64(k.num(P + "qh:" + hs)), Day: int64(k.num(P + "qd:" + ds)),
			FirstContactHour: int64(k.num(P + "fh:" + hs)), FirstContactDay: int64(k.num(P + "fd:" + ds))}
		return nil
	})
	return u, err
}

// Sent sums the per-minute sent counters.
func (s *Store) Sent(ctx context.Context, tenant string, from, to time.Time) (int64, error) {
	first, last := from.UnixMilli()/60000, to.UnixMilli()/60000
	if n := int64(s.sentTTL / time.Minute); last-first > n {
		first = last - n
	}
	var sum int64
	err := s.db.View(func(tx *bolt.Tx) error {
		k := kv{b: tx.Bucket(bucketKV), now: s.now().UnixMilli()}
		for m := first; m <= last; m++ {
			sum += int64(k.num(prefix(tenant) + "sent:" + strconv.FormatInt(m, 10)))
		}
		return nil
	})
	return sum, err
}
