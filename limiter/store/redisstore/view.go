package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/redis/go-redis/v9"
)

// ViewChannel is the pub/sub channel of the suppression lists' and the
// global freeze's changes (see the package doc, "The view").
const ViewChannel = "sesgate:view"

// Defaults of ViewOptions.
const (
	DefaultFreezePoll    = time.Second
	DefaultViewRebuild   = time.Hour
	DefaultFalsePositive = 0.01
	DefaultMinCapacity   = 100_000
)

// freezeStalePolls: the pushed freeze flag is trusted while a poll or a
// push confirmed it within this many poll intervals; after that Admit reads
// it per message again.
const freezeStalePolls = 3

// maxPending bounds the adds a build keeps while it lists and sizes the
// lists; past it the build fails and is retried.
const maxPending = 1 << 20

// keyGlobalFrozenVer counts the writes of the global freeze flag, so a late
// push or poll never overwrites a newer value (same slot as the flag).
const keyGlobalFrozenVer = "gw:{g}:frozen:v"

// Messages on ViewChannel: kind, NUL, then the fields, NUL-separated
// (tenant ids never hold a NUL, store.Suppression.Normalize checks).
const (
	msgSupAdd    = "sup+"   // tenant, lowercased address
	msgSupRemove = "sup-"   // tenant, lowercased address
	msgFreeze    = "frozen" // write version, flagSet or flagUnset
)

// ViewOptions tune the in-process view of the suppression lists and the
// global freeze flag (see the package doc).
type ViewOptions struct {
	// Off: no view; every RCPT check and every admission reads the
	// global state from Redis.
	Off bool
	// FreezePoll: how often the global freeze flag is read as a backstop
	// of the push, and the pub/sub connection pinged (DefaultFreezePoll).
	FreezePoll time.Duration
	// Rebuild: how often the filter is rebuilt from a full scan of the
	// lists (DefaultViewRebuild): removed addresses leave it only then.
	Rebuild time.Duration
	// FalsePositive: the filter's false-positive rate at its capacity
	// (DefaultFalsePositive).
	FalsePositive float64
	// MinCapacity: the smallest filter built (DefaultMinCapacity entries).
	MinCapacity uint
	// Clock reads the time for the freshness of the freeze flag
	// (time.Now; tests inject one).
	Clock func() time.Time

	afterList func() // tests: runs in a build between SCAN and HLEN
}

func (o *ViewOptions) defaults() error {
	if o.FreezePoll <= 0 {
		o.FreezePoll = DefaultFreezePoll
	}
	if o.Rebuild <= 0 {
		o.Rebuild = DefaultViewRebuild
	}
	if o.FalsePositive == 0 {
		o.FalsePositive = DefaultFalsePositive
	}
	if o.FalsePositive <= 0 || o.FalsePositive >= 1 {
		return fmt.Errorf("redisstore: view false-positive rate %g: want 0 < rate < 1", o.FalsePositive)
	}
	if o.MinCapacity == 0 {
		o.MinCapacity = DefaultMinCapacity
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return nil
}

// ViewStats describe the view (for tests, the admin and metrics).
type ViewStats struct {
	Ready       bool   // suppression answers come from the filter
	FreezeFresh bool   // the global freeze flag is answered locally
	Frozen      bool   // the local global freeze flag
	Capacity    uint   // entries the filter was sized for
	Count       uint   // entries added since it was built
	Bytes       uint   // size of the filter's bit array
	Rebuilds    uint64 // completed builds
	Drops       uint64 // subscriptions lost
	Subscribed  uint64 // subscriptions confirmed
	Messages    uint64 // messages received on ViewChannel
}

// view is the in-process view: a Bloom filter over (tenant, address) and
// ("", address) of every suppression list, fed by ViewChannel, and the
// pushed global freeze flag.
type view struct {
	c   redis.UniversalClient
	o   ViewOptions
	log *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // rebuild requests (buffer 1: they coalesce)

	// The global freeze flag, its write version and when it was last
	// confirmed (o.Clock, unix ns; 0 never).
	fmu       sync.Mutex
	frozenVer int64
	pushes    uint64 // pushed or locally written values seen (fmu)
	confirmed atomic.Int64
	frozenNow atomic.Bool

	mu         sync.RWMutex
	filter     *bloom.BloomFilter // nil before the first build
	capacity   uint
	count      uint
	pending    []string           // non-nil while a build lists and sizes: adds kept for it
	overflow   bool               // more than maxPending adds came: the build fails
	building   *bloom.BloomFilter // non-nil while a build fills: adds go to both
	buildCount uint
	epoch      uint64 // subscriptions confirmed
	subscribed bool
	ready      bool // built since the current subscription was confirmed
	rebuilds   uint64
	drops      uint64
	messages   atomic.Uint64
}

func startView(c redis.UniversalClient, o ViewOptions, log *slog.Logger) (*view, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	v := &view{c: c, o: o, log: log, kick: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.wg.Add(3)
	go func() { defer v.wg.Done(); v.subscribeLoop(ctx) }()
	go func() { defer v.wg.Done(); v.buildLoop(ctx) }()
	go func() { defer v.wg.Done(); v.pollLoop(ctx) }()
	return v, nil
}

func (v *view) stop() {
	v.cancel()
	v.wg.Wait()
}

func (v *view) stats() ViewStats {
	known, frozen := v.freeze()
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := ViewStats{Ready: v.ready, FreezeFresh: known, Frozen: frozen, Capacity: v.capacity, Count: v.count,
		Rebuilds: v.rebuilds, Drops: v.drops, Subscribed: v.epoch, Messages: v.messages.Load()}
	if v.filter != nil {
		st.Bytes = v.filter.Cap() / 8
	}
	return st
}

// --- the global freeze flag

// freeze returns the flag and whether it is fresh enough to answer from.
func (v *view) freeze() (known, frozen bool) {
	at := v.confirmed.Load()
	if at == 0 {
		return false, false
	}
	age := time.Duration(v.o.Clock().UnixNano() - at)
	return age <= freezeStalePolls*v.o.FreezePoll, v.frozenNow.Load()
}

// setFrozen applies a value of the flag pushed (or written here) at write
// version ver; an older version than the one held is ignored (a late
// push).
func (v *view) setFrozen(ver int64, frozen bool) {
	v.fmu.Lock()
	defer v.fmu.Unlock()
	v.pushes++
	if ver >= v.frozenVer {
		v.applyFrozen(ver, frozen)
	}
}

// polledFrozen applies a polled value. An older version than the one held
// is a late answer when a push came in meanwhile (ignored); otherwise the
// version went back (the key lost: FLUSHALL, a restart without
// persistence) and the poll, being the current state, wins.
func (v *view) polledFrozen(pushesBefore uint64, ver int64, frozen bool) {
	v.fmu.Lock()
	defer v.fmu.Unlock()
	if ver >= v.frozenVer || v.pushes == pushesBefore {
		v.applyFrozen(ver, frozen)
	}
}

func (v *view) applyFrozen(ver int64, frozen bool) {
	v.frozenVer = ver
	v.frozenNow.Store(frozen)
	v.confirmed.Store(v.o.Clock().UnixNano())
}

// pollLoop reads the flag now and every FreezePoll.
func (v *view) pollLoop(ctx context.Context) {
	t := time.NewTicker(v.o.FreezePoll)
	defer t.Stop()
	for {
		v.pollFreeze(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pollFreeze reads the version, then the flag, in one round trip: a write
// between the two pairs the newer flag with the older version, which is
// either ignored or the true current value.
func (v *view) pollFreeze(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, v.o.FreezePoll)
	defer cancel()
	v.fmu.Lock()
	before := v.pushes
	v.fmu.Unlock()
	var ver *redis.StringCmd
	var ex *redis.IntCmd
	_, err := v.c.Pipelined(cctx, func(p redis.Pipeliner) error {
		ver = p.Get(cctx, keyGlobalFrozenVer)
		ex = p.Exists(cctx, keyGlobalFrozen)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		if ctx.Err() == nil {
			v.log.Debug("global freeze poll failed", "err", err)
		}
		return
	}
	n, _ := ver.Int64() // missing: 0
	v.polledFrozen(before, n, ex.Val() == 1)
}

// --- the suppression filter

func filterKey(tenant, addr string) string { return tenant + "\x00" + addr }

// add puts an entry in the filter (and in the one being built); past the
// capacity it asks for a larger filter.
func (v *view) add(tenant, addr string) {
	k := filterKey(tenant, addr)
	v.mu.Lock()
	grow := false
	if v.filter != nil {
		v.filter.AddString(k)
		v.count++
		grow = v.count > v.capacity
	}
	if v.pending != nil {
		if len(v.pending) < maxPending {
			v.pending = append(v.pending, k)
		} else {
			v.overflow = true
		}
	}
	if v.building != nil {
		v.building.AddString(k)
		v.buildCount++
	}
	v.mu.Unlock()
	if grow {
		v.requestBuild()
	}
}

func (v *view) requestBuild() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// hits returns the addresses of lower that may be on tenant's list (only
// withTenant) and on the global list; ok is false when the view is not
// ready (the caller then reads every address).
func (v *view) hits(tenant string, lower []string, withTenant bool) (tenantHits, globalHits []string, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if !v.ready {
		return nil, nil, false
	}
	for _, a := range lower {
		if withTenant && v.filter.TestString(filterKey(tenant, a)) {
			tenantHits = append(tenantHits, a)
		}
		if v.filter.TestString(filterKey("", a)) {
			globalHits = append(globalHits, a)
		}
	}
	return tenantHits, globalHits, true
}

// subscribed marks a confirmed subscription: until the next build
// completes, messages may have been missed, so the view is not ready.
func (v *view) up() {
	v.mu.Lock()
	v.epoch++
	v.subscribed, v.ready = true, false
	v.mu.Unlock()
	v.requestBuild()
}

func (v *view) down(err error) {
	v.mu.Lock()
	was := v.subscribed
	v.subscribed, v.ready = false, false
	if was {
		v.drops++
	}
	v.mu.Unlock()
	if was {
		v.log.Warn("suppression view: subscription lost; reading Redis until it is rebuilt", "err", err)
	}
}

// subscribeLoop keeps one subscription to ViewChannel, pinging it every
// FreezePoll; a missing answer for two intervals counts as lost.
func (v *view) subscribeLoop(ctx context.Context) {
	for ctx.Err() == nil {
		err := v.subscribeOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		v.down(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(v.o.FreezePoll/4, time.Second)):
		}
	}
}

func (v *view) subscribeOnce(ctx context.Context) error {
	sub := v.c.Subscribe(ctx, ViewChannel)
	defer sub.Close()
	// A read waits for its timeout, not for ctx: closing unblocks it.
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	pinged := false
	for ctx.Err() == nil {
		msg, err := sub.ReceiveTimeout(ctx, v.o.FreezePoll)
		var nerr interface{ Timeout() bool }
		switch {
		case err != nil && errors.As(err, &nerr) && nerr.Timeout():
			if pinged {
				return fmt.Errorf("no answer to a ping in %s", 2*v.o.FreezePoll)
			}
			if err := sub.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		case err != nil:
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe":
				v.up()
				// Pushes may have been missed while away: read the flag now.
				v.pollFreeze(ctx)
			default:
				return fmt.Errorf("unexpected %s", m.Kind)
			}
		case *redis.Message:
			v.apply(m.Payload)
		}
	}
	return ctx.Err()
}

// apply reads one message of ViewChannel; a malformed one is logged and
// dropped (the periodic rebuild and the poll cover what it said).
func (v *view) apply(payload string) {
	v.messages.Add(1)
	kind, rest, _ := strings.Cut(payload, "\x00")
	a, b, ok := strings.Cut(rest, "\x00")
	switch {
	case ok && kind == msgSupAdd:
		v.add(a, b)
	case ok && kind == msgSupRemove:
		// A Bloom filter cannot forget: the entry stays a hit, confirmed
		// negative by the read, until the next rebuild.
	case ok && kind == msgFreeze:
		n, err := strconv.ParseInt(a, 10, 64)
		if err == nil {
			v.setFrozen(n, b == flagSet)
			return
		}
		fallthrough
	default:
		v.log.Warn("suppression view: malformed message dropped", "len", len(payload))
	}
}

// buildLoop rebuilds on request (subscription, growth) and every Rebuild
// give or take 10% (replicas started together spread their scans); a
// failed build is retried every FreezePoll.
func (v *view) buildLoop(ctx context.Context) {
	every := func() time.Duration { return time.Duration(float64(v.o.Rebuild) * (0.9 + 0.2*rand.Float64())) }
	t := time.NewTimer(every())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.kick:
		case <-t.C:
			t.Reset(every())
		}
		if err := v.build(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("suppression view: build failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(v.o.FreezePoll):
			}
			v.requestBuild()
		}
	}
}

// build sizes a new filter from the lists' lengths, fills it by HSCAN and
// swaps it in. Adds received from its start go to the new filter too (kept
// aside until it is sized: a list created after the SCAN passed is not
// scanned); it becomes ready only if the subscription it started under
// still holds.
func (v *view) build(ctx context.Context) error {
	v.mu.Lock()
	epoch, subscribed := v.epoch, v.subscribed
	if subscribed {
		v.pending, v.overflow = []string{}, false
	}
	v.mu.Unlock()
	if !subscribed {
		return nil // the next subscription asks again
	}
	start := time.Now()
	var f *bloom.BloomFilter
	defer func() {
		v.mu.Lock()
		if f != nil && v.building == f {
			v.building = nil
		}
		v.pending = nil
		v.mu.Unlock()
	}()
	keys, err := v.listKeys(ctx)
	if err != nil {
		return err
	}
	if v.o.afterList != nil {
		v.o.afterList()
	}
	var n uint
	lens := make([]*redis.IntCmd, len(keys))
	if _, err := v.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			lens[i] = p.HLen(ctx, k.key)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list lengths: %w", err)
	}
	for _, l := range lens {
		n += uint(l.Val())
	}
	capacity := max(v.o.MinCapacity, n+n/2)
	f = bloom.NewWithEstimates(capacity, v.o.FalsePositive)
	v.mu.Lock()
	if v.overflow {
		v.mu.Unlock()
		return fmt.Errorf("more than %d adds while sizing", maxPending)
	}
	for _, k := range v.pending {
		f.AddString(k)
	}
	v.building, v.buildCount, v.pending = f, uint(len(v.pending)), nil
	v.mu.Unlock()
	for _, k := range keys {
		if err := v.scanList(ctx, f, k); err != nil {
			return err
		}
	}
	v.mu.Lock()
	v.filter, v.capacity, v.count, v.building = f, capacity, v.buildCount, nil
	v.rebuilds++
	if v.epoch == epoch && v.subscribed {
		v.ready = true
	}
	grow := v.count > v.capacity
	ready, count, capacity := v.ready, v.count, v.capacity
	v.mu.Unlock()
	v.log.Info("suppression view built", "ready", ready, "entries", count, "capacity", capacity, "took", time.Since(start).Round(time.Millisecond).String())
	if grow {
		v.requestBuild()
	}
	return nil
}

type listKey struct{ tenant, key string }

// listKeys returns the global list and every tenant's (SCAN MATCH on every
// primary of a Cluster).
func (v *view) listKeys(ctx context.Context) ([]listKey, error) {
	out := []listKey{{"", keyGlobalSup}}
	var mu sync.Mutex
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			ks, next, err := c.ScanType(ctx, cursor, "gw:{t:*}:"+keySup, 1000, "hash").Result()
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			mu.Lock()
			for _, k := range ks {
				t, ok := strings.CutPrefix(k, "gw:{t:")
				t, ok2 := strings.CutSuffix(t, "}:"+keySup)
				if ok && ok2 && supKey(t) == k && !strings.ContainsAny(t, "{}") {
					out = append(out, listKey{t, k})
				}
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := v.c.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
		return out, err
	}
	return out, scan(ctx, v.c)
}

// scanList adds one list's addresses to f, a batch at a time.
func (v *view) scanList(ctx context.Context, f *bloom.BloomFilter, k listKey) error {
	var cursor uint64
	for {
		// HSCAN NOVALUES needs Redis 7.4: the values come along.
		kv, next, err := v.c.HScan(ctx, k.key, cursor, "", 1000).Result()
		if err != nil {
			return fmt.Errorf("hscan %s: %w", k.key, err)
		}
		v.mu.Lock()
		for i := 0; i < len(kv); i += 2 {
			f.AddString(filterKey(k.tenant, kv[i]))
		}
		v.buildCount += uint(len(kv) / 2)
		v.mu.Unlock()
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
