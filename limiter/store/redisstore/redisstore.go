package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

var (
	//go:embed admit.lua
	admitSrc string
	//go:embed lease.lua
	leaseSrc string
	//go:embed usage.lua
	usageSrc string
)

// Key names (the package doc lists them). Every key of a tenant carries the
// hash tag {t:<tenant>}; the global keys carry {g}.
const (
	keyGlobalSup    = "gw:{g}:sup"
	keyGlobalFrozen = "gw:{g}:frozen"
	keySESRate      = "gw:{g}:ses"

	// After tenantPrefix.
	keyBreaker = "brk"   // hash of the field* below, and the feedback side's
	keySup     = "sup"   // hash: lowercased address -> store.Suppression.EncodeValue
	keyState   = "st"    // hash: fieldTAT and the window counters
	keyKnown   = "kn:"   // + period: hash HMAC -> expiry (unix ms)
	keyDomain  = "d:"    // + domain: the domain's GCRA TAT (ms)
	keySent    = "sent:" // + minute (sentBucket): recipients admitted

	// fieldKnownTTL is a field of a known-recipient hash (keyKnown), set
	// with its expiry: admit.lua sets the expiry only where it is missing.
	// Never an HMAC (22 characters).
	fieldKnownTTL = "_ttl"
)

// Fields of the breaker hash (keyBreaker).
const (
	fieldFrozen    = "frozen" // the operator's freeze flag: frozen while present
	fieldState     = "state"
	fieldOpenUntil = "open_until" // unix ms
	fieldProbes    = "probes"
	fieldWarning   = "warning" // flagSet while the rate is slowed (store.WarningRateFactor)
	fieldData      = "data"    // the feedback side's state, opaque here
)

// Fields of the state hash (keyState): the rate's TAT (ms) and the window
// counters, "<window>:<count>" (hour or day number since the epoch).
const (
	fieldTAT       = "gcra"
	fieldQuotaHour = "qh"
	fieldQuotaDay  = "qd"
	fieldFirstHour = "fh"
	fieldFirstDay  = "fd"
)

// The values of a boolean field or script argument.
const (
	flagSet   = "1"
	flagUnset = "0"
)

// Windows and lifetimes of the tenant's keys.
const (
	windowHour = time.Hour      // quota and first-contact windows (UTC clock)
	windowDay  = 24 * time.Hour // quota and first-contact windows (UTC clock)
	sentBucket = time.Minute    // one sent counter per minute
	knownGrace = time.Minute    // a known-recipient hash outlives its last expiry by this
	tatGrace   = time.Second    // a domain TAT key outlives its TAT by this
)

// tenantPrefix is the prefix of every key of tenant.
func tenantPrefix(tenant string) string { return "gw:{t:" + tenant + "}:" }

// Options configure a Store. Client and RecipientKey are required.
type Options struct {
	Client       redis.UniversalClient
	RecipientKey []byte        // HMAC key for the first-contact memory (store.MinKeyBytes at least)
	KnownTTL     time.Duration // default store.DefaultKnownTTL
	SentTTL      time.Duration // lifetime of the per-minute sent counters; default store.DefaultSentTTL
	Logger       *slog.Logger
	// Now replaces Redis's TIME in the scripts. Tests only: in production
	// every replica must use the one Redis clock.
	Now func() time.Time
	// AdmitBatch is the most admissions one pipeline carries (see
	// admitbatch.go); default 64; 1 sends each admission alone, at once,
	// without queueing (tests and benchmarks compare the two).
	AdmitBatch int
	// View tunes the in-process view of the suppression lists and the
	// global freeze flag (see the package doc).
	View ViewOptions
}

// Store is the Redis store. It is safe for concurrent use.
type Store struct {
	c        redis.UniversalClient
	keyer    *store.Keyer
	knownTTL time.Duration
	sentTTL  time.Duration
	log      *slog.Logger
	now      func() time.Time
	admit    *redis.Script
	lease    *redis.Script
	usage    *redis.Script
	window   *redis.Script
	batch    *batchers
	view     *view    // nil when Options.View.Off
	heads    argHeads // admit.lua's per-tenant KEYS and ARGV heads
}

var _ store.Store = (*Store)(nil)

// New returns a Store and preloads its scripts (SCRIPT LOAD on every
// primary of a Cluster). A failed preload is logged, not fatal: Script.Run
// loads a missing script itself.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redisstore: Client is required")
	}
	k, err := store.NewKeyer(opts.RecipientKey)
	if err != nil {
		return nil, err
	}
	s := &Store{
		c: opts.Client, keyer: k, knownTTL: opts.KnownTTL, sentTTL: opts.SentTTL, log: opts.Logger, now: opts.Now,
		admit: redis.NewScript(admitScript()), lease: redis.NewScript(leaseSrc), usage: redis.NewScript(usageScript()),
		window: redis.NewScript(windowScript()),
	}
	s.batch = newBatchers(s, opts.AdmitBatch)
	if s.knownTTL <= 0 {
		s.knownTTL = store.DefaultKnownTTL
	}
	if s.sentTTL <= 0 {
		s.sentTTL = store.DefaultSentTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.preload(ctx); err != nil {
		s.log.Warn("redis script preload failed; scripts load on first use", "err", err)
	}
	if !opts.View.Off {
		if s.view, err = startView(s.c, opts.View, s.log); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// preload loads the scripts (SCRIPT LOAD; on a Cluster on every shard).
func (s *Store) preload(ctx context.Context) error {
	return errors.Join(s.admit.Load(ctx, s.c).Err(), s.lease.Load(ctx, s.c).Err(), s.usage.Load(ctx, s.c).Err(), s.window.Load(ctx, s.c).Err())
}

// Client returns the Redis client.
func (s *Store) Client() redis.UniversalClient { return s.c }

// Close stops the view and closes the client.
func (s *Store) Close() error {
	if s.view != nil {
		s.view.stop()
	}
	return s.c.Close()
}

func (s *Store) nowArg() int64 {
	if s.now == nil {
		return 0
	}
	return s.now().UnixMilli()
}

func (s *Store) clock() time.Time {
	if s.now == nil {
		return time.Now()
	}
	return s.now()
}

// Admit runs the admission script on the tenant's slot. The global state
// comes from the view (see the package doc): a frozen flag refuses with no
// call; the global list is read, in parallel with the script, only for the
// recipients the filter may hold, and the flag only when the view's copy is
// stale. Not ready, the view answers nothing and both are read.
func (s *Store) Admit(ctx context.Context, req store.AdmitRequest) (store.Decision, error) {
	if err := req.Validate(); err != nil {
		return store.Decision{}, err
	}
	lower := make([]string, len(req.Recipients))
	for i, r := range req.Recipients {
		lower[i] = strings.ToLower(r)
	}
	frozenKnown, frozen, hits := false, false, lower
	if s.view != nil {
		frozenKnown, frozen = s.view.freeze()
		if _, g, ok := s.view.hits(req.Tenant, lower, false); ok {
			hits = g
		}
	}
	if frozenKnown && frozen {
		return frozenDecision(), nil
	}
	if frozenKnown && len(hits) == 0 {
		return s.runAdmit(ctx, req, lower)
	}

	type globalResult struct {
		frozen bool
		sup    []store.Suppression
		err    error
	}
	gch := make(chan globalResult, 1)
	go func() {
		var g globalResult
		g.frozen, g.sup, g.err = s.readGlobal(ctx, !frozenKnown, hits)
		gch <- g
	}()

	d, err := s.runAdmit(ctx, req, lower)
	g := <-gch
	if err != nil {
		return store.Decision{}, err
	}
	if g.err != nil {
		return store.Decision{}, g.err
	}
	if g.frozen {
		// The tenant script may have counted the message: conservative.
		return frozenDecision(), nil
	}
	if len(g.sup) > 0 {
		d.Suppressed = mergeSuppressed(d.Suppressed, g.sup)
		if len(d.Suppressed) == len(lower) && d.Reason != store.ReasonSuppressed {
			d = store.Decision{Reason: store.ReasonSuppressed, Suppressed: d.Suppressed}
		}
	}
	return d, nil
}

func frozenDecision() store.Decision {
	return store.Decision{Reason: store.ReasonFrozen, RetryAfter: store.FrozenRetry, CacheFor: store.FrozenCache}
}

// mergeSuppressed adds the global entries for addresses not already
// suppressed by the tenant list.
func mergeSuppressed(tenant, global []store.Suppression) []store.Suppression {
	out := tenant
	for _, g := range global {
		dup := false
		for _, t := range tenant {
			dup = dup || t.Address == g.Address
		}
		if !dup {
			out = append(out, g)
		}
	}
	return out
}

// readGlobal reads, in one pipeline, the global freeze flag (withFrozen)
// and the global list's entries for lower (when any).
func (s *Store) readGlobal(ctx context.Context, withFrozen bool, lower []string) (bool, []store.Suppression, error) {
	var frozen *redis.IntCmd
	var sup *redis.SliceCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if withFrozen {
			frozen = p.Exists(ctx, keyGlobalFrozen)
		}
		if len(lower) > 0 {
			sup = p.HMGet(ctx, keyGlobalSup, lower...)
		}
		return nil
	})
	if err != nil {
		return false, nil, fmt.Errorf("redisstore: global read: %w", err)
	}
	var out []store.Suppression
	if sup != nil {
		if out, err = decodeHMGet("", lower, sup.Val(), s.clock()); err != nil {
			return false, nil, err
		}
	}
	return frozen != nil && frozen.Val() == 1, out, nil
}

func decodeHMGet(tenant string, addrs []string, vals []any, now time.Time) ([]store.Suppression, error) {
	var out []store.Suppression
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		sp, err := store.DecodeSuppression(tenant, addrs[i], str)
		if err != nil {
			return nil, err
		}
		if sp.Live(now) {
			out = append(out, sp)
		}
	}
	return out, nil
}

func supKey(tenant string) string {
	if tenant == "" {
		return keyGlobalSup
	}
	return tenantPrefix(tenant) + keySup
}

// CheckSuppressed answers from the view: addresses the filter holds on
// neither list cost no call; the others are read (one HMGET per list with a
// hit, in one pipeline). Not ready, the view answers nothing and both lists
// are read for every address, as one pipeline (one round trip on a
// standalone Redis; one per slot on a Cluster, in parallel).
func (s *Store) CheckSuppressed(ctx context.Context, tenant string, addrs []string) ([]store.Suppression, error) {
	if len(addrs) == 0 || len(addrs) > store.MaxRecipients {
		return nil, fmt.Errorf("redisstore: %d addresses", len(addrs))
	}
	lower := make([]string, len(addrs))
	for i, a := range addrs {
		lower[i] = strings.ToLower(a)
	}
	tHits, gHits := lower, lower
	if s.view != nil {
		if th, gh, ok := s.view.hits(tenant, lower, true); ok {
			tHits, gHits = th, gh
		}
	}
	if len(tHits) == 0 && len(gHits) == 0 {
		return nil, nil
	}
	var tcmd, gcmd *redis.SliceCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(tHits) > 0 {
			tcmd = p.HMGet(ctx, supKey(tenant), tHits...)
		}
		if len(gHits) > 0 {
			gcmd = p.HMGet(ctx, keyGlobalSup, gHits...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: suppression read: %w", err)
	}
	now := s.clock()
	var out, g []store.Suppression
	if tcmd != nil {
		if out, err = decodeHMGet(tenant, tHits, tcmd.Val(), now); err != nil {
			return nil, err
		}
	}
	if gcmd != nil {
		if g, err = decodeHMGet("", gHits, gcmd.Val(), now); err != nil {
			return nil, err
		}
	}
	return mergeSuppressed(out, g), nil
}

// AddSuppression adds or replaces an entry.
func (s *Store) AddSuppression(ctx context.Context, sp store.Suppression) error {
	if err := sp.Normalize(); err != nil {
		return err
	}
	return s.addSuppression(ctx, sp)
}

// RemoveSuppression deletes an entry.
func (s *Store) RemoveSuppression(ctx context.Context, tenant, addr string) (bool, error) {
	return s.removeSuppression(ctx, tenant, strings.ToLower(addr))
}

// ListSuppressions scans one list with HSCAN.
func (s *Store) ListSuppressions(ctx context.Context, tenant string, limit int) ([]store.Suppression, error) {
	var out []store.Suppression
	var cursor uint64
	for {
		kv, next, err := s.c.HScan(ctx, supKey(tenant), cursor, "", 500).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv) && len(out) < limit; i += 2 {
			sp, err := store.DecodeSuppression(tenant, kv[i], kv[i+1])
			if err != nil {
				return nil, err
			}
			out = append(out, sp)
		}
		cursor = next
		if cursor == 0 || len(out) >= limit {
			return out, nil
		}
	}
}

// SetBreaker writes state, open_until (unix ms) and probes; other fields of
// the breaker hash (the feedback package's) are kept.
func (s *Store) SetBreaker(ctx context.Context, tenant string, b store.Breaker) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.State == "" {
		b.State = store.Closed
	}
	var until int64
	if !b.OpenUntil.IsZero() {
		until = b.OpenUntil.UnixMilli()
	}
	return s.c.HSet(ctx, tenantPrefix(tenant)+keyBreaker, fieldState, string(b.State), fieldOpenUntil, until, fieldProbes, b.Probes).Err()
}

// GetBreaker reads the breaker record; a missing one is Closed.
func (s *Store) GetBreaker(ctx context.Context, tenant string) (store.Breaker, error) {
	v, err := s.c.HMGet(ctx, tenantPrefix(tenant)+keyBreaker, fieldState, fieldOpenUntil, fieldProbes).Result()
	if err != nil {
		return store.Breaker{}, err
	}
	b := store.Breaker{State: store.Closed}
	if st, ok := v[0].(string); ok {
		b.State = store.BreakerState(st)
	}
	if u, ok := v[1].(string); ok {
		if ms, _ := strconv.ParseInt(u, 10, 64); ms > 0 {
			b.OpenUntil = time.UnixMilli(ms).UTC()
		}
	}
	if p, ok := v[2].(string); ok {
		b.Probes, _ = strconv.ParseInt(p, 10, 64)
	}
	return b, b.Validate()
}

// SetFrozen sets or clears a freeze flag: the field frozen of the tenant's
// breaker hash (read by the admission script with the breaker), or the
// global key.
func (s *Store) SetFrozen(ctx context.Context, tenant string, frozen bool) error {
	switch {
	case tenant == "":
		return s.setGlobalFrozen(ctx, frozen)
	case frozen:
		return s.c.HSet(ctx, tenantPrefix(tenant)+keyBreaker, fieldFrozen, flagSet).Err()
	}
	return s.c.HDel(ctx, tenantPrefix(tenant)+keyBreaker, fieldFrozen).Err()
}

// Frozen reads a freeze flag.
func (s *Store) Frozen(ctx context.Context, tenant string) (bool, error) {
	if tenant == "" {
		n, err := s.c.Exists(ctx, keyGlobalFrozen).Result()
		return n == 1, err
	}
	return s.c.HExists(ctx, tenantPrefix(tenant)+keyBreaker, fieldFrozen).Result()
}

// Usage reads the tenant's window counters (at the gateway's clock, which
// may differ from Redis's by the clock skew at a window's edge).
func (s *Store) Usage(ctx context.Context, tenant string) (store.Usage, error) {
	v, err := s.c.HMGet(ctx, tenantPrefix(tenant)+keyState, fieldQuotaHour, fieldQuotaDay, fieldFirstHour, fieldFirstDay).Result()
	if err != nil {
		return store.Usage{}, err
	}
	now := s.clock().UnixMilli()
	hour, day := now/windowHour.Milliseconds(), now/windowDay.Milliseconds()
	used := func(x any, window int64) int64 {
		str, ok := x.(string)
		if !ok {
			return 0
		}
		w, c, ok := strings.Cut(str, ":")
		if !ok || w != strconv.FormatInt(window, 10) {
			return 0
		}
		n, _ := strconv.ParseInt(c, 10, 64)
		return n
	}
	return store.Usage{Hour: used(v[0], hour), Day: used(v[1], day), FirstContactHour: used(v[2], hour), FirstContactDay: used(v[3], day)}, nil
}

// AddUsage runs usage.lua on the tenant's state hash (see store.Store).
func (s *Store) AddUsage(ctx context.Context, tenant string, at time.Time, add store.Usage) error {
	if err := store.ValidateUsageAdd(tenant, add); err != nil {
		return err
	}
	if add == (store.Usage{}) {
		return nil
	}
	err := s.usage.Run(ctx, s.c, []string{tenantPrefix(tenant) + keyState}, s.nowArg(), at.UnixMilli(),
		add.Hour, add.Day, add.FirstContactHour, add.FirstContactDay).Err()
	if err != nil {
		return fmt.Errorf("redisstore: add usage: %w", err)
	}
	return nil
}

// Sent sums the per-minute sent counters (one MGET on the tenant's slot).
func (s *Store) Sent(ctx context.Context, tenant string, from, to time.Time) (int64, error) {
	first, last := from.UnixMilli()/sentBucket.Milliseconds(), to.UnixMilli()/sentBucket.Milliseconds()
	if last < first {
		return 0, nil
	}
	if n := int64(s.sentTTL / sentBucket); last-first > n {
		first = last - n
	}
	keys := make([]string, 0, last-first+1)
	for m := first; m <= last; m++ {
		keys = append(keys, tenantPrefix(tenant)+keySent+strconv.FormatInt(m, 10))
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, v := range vals {
		if str, ok := v.(string); ok {
			n, _ := strconv.ParseInt(str, 10, 64)
			sum += n
		}
	}
	return sum, nil
}

// Lease takes up to want tokens of the account-wide SES rate (GCRA on one
// {g} key). It returns how many it got and, when none, how long until one.
func (s *Store) Lease(ctx context.Context, rate float64, burst, want int) (int, time.Duration, error) {
	res, err := s.lease.Run(ctx, s.c, []string{keySESRate},
		strconv.FormatFloat(rate, 'g', -1, 64), burst, want, s.nowArg()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("redisstore: lease: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, errors.New("redisstore: lease script returned a bad answer")
	}
	return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
}
