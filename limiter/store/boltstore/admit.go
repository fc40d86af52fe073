package boltstore

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// Keys of a tenant after its prefix, those of the Redis store where the
// data is the same; window counters and TATs are entries of their own here.
const (
	keyFrozen    = "frozen"
	keyBreaker   = "brk"
	keyTAT       = "gcra"
	keyQuotaHour = "qh:"   // + hour number: recipients counted
	keyQuotaDay  = "qd:"   // + day number
	keyFirstHour = "fh:"   // + hour number: first contacts counted
	keyFirstDay  = "fd:"   // + day number
	keyKnown     = "k:"    // + HMAC: a known recipient, until KnownTTL
	keyDomain    = "d:"    // + domain: the domain's TAT
	keySent      = "sent:" // + minute number (sentBucket): recipients admitted
)

// Windows and lifetimes of the admission entries.
const (
	windowHour   = time.Hour      // quota and first-contact windows (UTC clock)
	windowDay    = 24 * time.Hour // quota and first-contact windows (UTC clock)
	sentBucket   = time.Minute    // one sent counter per minute
	counterGrace = time.Minute    // a window counter outlives its window by this
	tatGrace     = time.Second    // a TAT entry outlives its TAT by this
	// gcraTolerance (ms) absorbs float rounding where a GCRA compares times.
	gcraTolerance = 0.001
)

// admit decides in one read-write transaction, in the order of the store
// package doc (and of the Redis script). A step either refuses the message
// or lets it go on; the message is counted only when every step let it
// through, so a refusal commits nothing.
//
// k is the kv bucket of tx, or its view through the write-behind overlay.
func (s *Store) admit(tx *bolt.Tx, k kv, req store.AdmitRequest, now time.Time) (store.Decision, error) {
	a := s.newAdmission(tx, k, req, now)
	steps := []func(*admission) (*store.Decision, error){
		(*admission).checkFrozen,       // 1. the global and the tenant's freeze flags
		(*admission).checkBreaker,      // 2. forced open or open; open past its time probes
		(*admission).dropSuppressed,    // 3. tenant and global suppression lists
		(*admission).checkProbes,       //    half-open: the probe budget covers the rest
		(*admission).readCounters,      //    the window counters, and what they leave
		(*admission).checkFirstContact, // 4. first-contact budget, hour and day
		(*admission).checkWindow,       // 4b. first-contact window (window.go)
		(*admission).checkQuotas,       // 5. recipients per hour and per day
		(*admission).checkRate,         // 6. the tenant's GCRA rate
		(*admission).checkDomainRate,   // 7. the GCRA rate per recipient domain
	}
	for _, step := range steps {
		refusal, err := step(a)
		if err != nil {
			return store.Decision{}, err
		}
		if refusal != nil {
			return *refusal, nil
		}
	}
	return a.commit() // 8.
}

// admission is one message being admitted: what the steps found, for the
// next steps and the commit.
type admission struct {
	s   *Store
	tx  *bolt.Tx
	k   kv
	req store.AdmitRequest
	l   gateway.Limits
	p   string // the tenant's key prefix
	now time.Time
	ms  int64 // now in unix ms

	// the current windows: their numbers, as in keys, and the ms left
	hour, day         string
	hourLeft, dayLeft int64

	breaker store.Breaker
	probing bool     // the breaker is half open: admission spends probes
	live    []string // the recipients not suppressed, lowercased
	hashes  []string // their HMACs (with a first-contact budget or window)
	isNew   []bool   // per hash: a first contact
	newc    int64    // how many of them are first contacts
	// the window counters: quota hour and day, first contacts hour and day
	qh, qd, fh, fd int64
	newTAT         float64 // the rate's TAT after this message; < 0: no rate
	domTAT         map[string]float64
	d              store.Decision // Suppressed, Shadowed and NewRecipients so far
}

func (s *Store) newAdmission(tx *bolt.Tx, k kv, req store.AdmitRequest, now time.Time) *admission {
	nowMS := now.UnixMilli()
	a := &admission{s: s, tx: tx, k: k, req: req, l: req.Limits,
		p: prefix(req.Tenant), now: now, ms: nowMS, newTAT: -1}
	a.hour, a.hourLeft = window(nowMS, windowHour)
	a.day, a.dayLeft = window(nowMS, windowDay)
	return a
}

// refuse is a refusal for reason, with the recipients dropped so far.
func (a *admission) refuse(reason store.Reason, retry, cache time.Duration) (*store.Decision, error) {
	return &store.Decision{Reason: reason, RetryAfter: retry, CacheFor: cache, Suppressed: a.d.Suppressed, Remaining: a.d.Remaining}, nil
}

// enforced reports whether a limit that would refuse does; a limit in
// Limits.Shadow is recorded in Decision.Shadowed instead. A limit's name is
// the Reason of its refusals.
func (a *admission) enforced(limit store.Reason) bool {
	name := string(limit)
	if !slices.Contains(a.l.Shadow, name) {
		return true
	}
	if !slices.Contains(a.d.Shadowed, name) {
		a.d.Shadowed = append(a.d.Shadowed, name)
	}
	return false
}

// ms rounds a span of milliseconds up to a Duration.
func ms(v float64) time.Duration { return time.Duration(math.Ceil(v)) * time.Millisecond }

// window returns the number of the window of length w at nowMS (unix ms),
// as in keys, and the milliseconds left in it.
func window(nowMS int64, w time.Duration) (string, int64) {
	n := nowMS / w.Milliseconds()
	return strconv.FormatInt(n, 10), (n+1)*w.Milliseconds() - nowMS
}

// counter reads the window counter key (with its window number).
func (a *admission) counter(key string) int64 {
	return int64(a.k.num(a.p + key))
}

func (a *admission) checkFrozen() (*store.Decision, error) {
	for _, key := range []string{frozenKey(""), frozenKey(a.req.Tenant)} {
		if _, ok := a.k.get(key); ok {
			return a.refuse(store.ReasonFrozen, store.FrozenRetry, store.FrozenCache)
		}
	}
	return nil, nil
}

func (a *admission) checkBreaker() (*store.Decision, error) {
	b, err := readBreaker(a.k, a.req.Tenant)
	if err != nil {
		return nil, err
	}
	a.breaker = b
	switch b.State {
	case store.ForcedOpen:
		return a.refuse(store.ReasonBreakerOpen, store.FrozenRetry, store.FrozenCache)
	case store.Open:
		if left := b.OpenUntil.UnixMilli() - a.ms; left > 0 {
			return a.refuse(store.ReasonBreakerOpen, ms(float64(left)), ms(float64(left)))
		}
		a.probing = true
	case store.HalfOpen:
		a.probing = true
	}
	return nil, nil
}

// dropSuppressed drops the recipients on a live entry of the tenant's list,
// else of the global list; when none is left, the message is refused.
func (a *admission) dropSuppressed() (*store.Decision, error) {
	sup := a.tx.Bucket(bucketSup)
	for _, r := range a.req.Recipients {
		addr := strings.ToLower(r)
		hit := false
		for _, t := range []string{a.req.Tenant, ""} {
			v := sup.Get(supKey(t, addr))
			if v == nil {
				continue
			}
			sp, err := store.DecodeSuppression(t, addr, string(v))
			if err != nil {
				return nil, err
			}
			if sp.Live(a.now) {
				a.d.Suppressed = append(a.d.Suppressed, sp)
				hit = true
				break
			}
		}
		if !hit {
			a.live = append(a.live, addr)
		}
	}
	if len(a.live) == 0 {
		return a.refuse(store.ReasonSuppressed, 0, 0)
	}
	return nil, nil
}

// checkProbes refuses a message of a half-open tenant that its remaining
// probe budget does not cover.
func (a *admission) checkProbes() (*store.Decision, error) {
	if !a.probing || a.breaker.Probes >= int64(len(a.live)) {
		return nil, nil
	}
	cache := time.Duration(0)
	if a.breaker.Probes <= 0 {
		cache = store.ProbeRetry
	}
	return a.refuse(store.ReasonBreakerOpen, store.ProbeRetry, cache)
}

// readCounters reads the window counters of the tenant's limits and what
// they leave (Decision.Remaining, kept by every later refusal).
func (a *admission) readCounters() (*store.Decision, error) {
	l := a.l
	read := func(limit int64, key string) int64 {
		if limit <= 0 {
			return 0
		}
		return a.counter(key)
	}
	// The recipients of the hour and day are counted for every tenant,
	// quota or not (the operator's usage), so they are always read.
	a.qh, a.qd = a.counter(keyQuotaHour+a.hour), a.counter(keyQuotaDay+a.day)
	a.fh, a.fd = read(l.FirstContactPerHour, keyFirstHour+a.hour), read(l.FirstContactPerDay, keyFirstDay+a.day)
	a.d.Remaining = a.remaining(0, 0)
	return nil, nil
}

// remaining is what the limits leave once m more recipients, newc of them
// first contacts, are counted.
func (a *admission) remaining(m, newc int64) store.Remaining {
	l := a.l
	left := func(limit, used int64) int64 {
		if limit <= 0 {
			return store.Unlimited
		}
		return max(0, limit-used)
	}
	return store.Remaining{Known: true, Hour: left(l.PerHour, a.qh+m), Day: left(l.PerDay, a.qd+m),
		FirstHour: left(l.FirstContactPerHour, a.fh+newc), FirstDay: left(l.FirstContactPerDay, a.fd+newc)}
}

func (a *admission) checkFirstContact() (*store.Decision, error) {
	l := a.l
	if l.FirstContactPerHour > 0 || l.FirstContactPerDay > 0 || l.FirstContactWindow.On() {
		a.hashes = make([]string, len(a.live))
		a.isNew = make([]bool, len(a.live))
		for i, addr := range a.live {
			a.hashes[i] = a.s.keyer.Hash(addr)
			if _, ok := a.k.get(a.p + keyKnown + a.hashes[i]); !ok {
				a.newc++
				a.isNew[i] = true
			}
		}
	}
	a.d.NewRecipients = int(a.newc)
	if a.newc == 0 {
		return nil, nil
	}
	if l.FirstContactPerHour > 0 && a.fh+a.newc > l.FirstContactPerHour && a.enforced(store.ReasonFirstHour) {
		return a.refuse(store.ReasonFirstHour, ms(float64(a.hourLeft)), 0)
	}
	if l.FirstContactPerDay > 0 && a.fd+a.newc > l.FirstContactPerDay && a.enforced(store.ReasonFirstDay) {
		return a.refuse(store.ReasonFirstDay, ms(float64(a.dayLeft)), 0)
	}
	return nil, nil
}

func (a *admission) checkQuotas() (*store.Decision, error) {
	if refusal, err := a.checkQuota(a.l.PerHour, a.qh, a.hourLeft, store.ReasonPerHour); refusal != nil || err != nil {
		return refusal, err
	}
	return a.checkQuota(a.l.PerDay, a.qd, a.dayLeft, store.ReasonPerDay)
}

// checkQuota refuses a message whose recipients do not fit in what is left
// of quota in the current window (used so far, left ms to go); until the
// window ends when nothing is left.
func (a *admission) checkQuota(quota, used int64, left int64, reason store.Reason) (*store.Decision, error) {
	if quota <= 0 {
		return nil, nil
	}
	if used+int64(len(a.live)) <= quota || !a.enforced(reason) {
		return nil, nil
	}
	cache := time.Duration(0)
	if used >= quota {
		cache = ms(float64(left))
	}
	return a.refuse(reason, ms(float64(left)), cache)
}

func (a *admission) checkRate() (*store.Decision, error) {
	l := a.l
	if l.Rate <= 0 {
		return nil, nil
	}
	rate := l.Rate
	if warned(a.k, a.req.Tenant) {
		rate *= store.WarningRateFactor
	}
	burst := float64(l.EffectiveBurst())
	cost := 1.0
	if l.RatePerRecipient {
		cost = float64(len(a.live))
	}
	now := float64(a.ms)
	T := float64(time.Second.Milliseconds()) / rate
	tau := burst * T
	tat := min(max(a.k.num(a.p+keyTAT), now), now+tau)
	if cost > burst && a.enforced(store.ReasonRate) {
		return a.refuse(store.ReasonTooMany, 0, 0)
	}
	if allow := tat + cost*T - tau; allow > now+gcraTolerance && a.enforced(store.ReasonRate) {
		return a.refuse(store.ReasonRate, ms(allow-now), ms(max(0, tat+T-tau-now)))
	}
	a.newTAT = tat + cost*T
	return nil, nil
}

func (a *admission) checkDomainRate() (*store.Decision, error) {
	l := a.l
	if l.PerDomainRate <= 0 {
		return nil, nil
	}
	count := map[string]int{}
	var order []string
	for _, addr := range a.live {
		dom := store.Domain(addr)
		if count[dom] == 0 {
			order = append(order, dom)
		}
		count[dom]++
	}
	burst := float64(l.EffectivePerDomainBurst())
	now := float64(a.ms)
	T := float64(time.Second.Milliseconds()) / l.PerDomainRate
	tau := burst * T
	a.domTAT = make(map[string]float64, len(order))
	for _, dom := range order {
		c := float64(count[dom])
		tat := min(max(a.k.num(a.p+keyDomain+dom), now), now+tau)
		if c > burst && a.enforced(store.ReasonPerDomainRate) {
			return a.refuse(store.ReasonTooMany, 0, 0)
		}
		if allow := tat + c*T - tau; allow > now+gcraTolerance && a.enforced(store.ReasonPerDomainRate) {
			return a.refuse(store.ReasonPerDomainRate, ms(allow-now), 0)
		}
		a.domTAT[dom] = tat + c*T
	}
	return nil, nil
}

// commit counts the admitted message.
func (a *admission) commit() (store.Decision, error) {
	writes := []func(*admission) error{
		(*admission).countWindows, (*admission).rememberOutstanding, (*admission).rememberRecipients, (*admission).saveTATs, (*admission).spendProbes,
	}
	for _, write := range writes {
		if err := write(a); err != nil {
			return store.Decision{}, err
		}
	}
	a.d.Admitted = true
	a.d.Remaining = a.remaining(int64(len(a.live)), a.newc)
	return a.d, nil
}

// countWindows adds the message to the quota, first-contact and sent
// counters.
func (a *admission) countWindows() error {
	l, m := a.l, int64(len(a.live))
	sent, _ := window(a.ms, sentBucket)
	grace := counterGrace.Milliseconds()
	for _, c := range []struct {
		on   bool
		key  string
		by   int64
		life int64
	}{
		{true, keyQuotaHour + a.hour, m, a.hourLeft + grace}, // counted with or without a quota
		{true, keyQuotaDay + a.day, m, a.dayLeft + grace},
		{l.FirstContactPerHour > 0, keyFirstHour + a.hour, a.newc, a.hourLeft + grace},
		{l.FirstContactPerDay > 0, keyFirstDay + a.day, a.newc, a.dayLeft + grace},
		{true, keySent + sent, m, a.s.sentTTL.Milliseconds()},
	} {
		if c.on && c.by > 0 {
			if err := a.k.incr(a.p+c.key, c.by, c.life); err != nil {
				return err
			}
		}
	}
	return nil
}

// rememberRecipients refreshes the known-recipient memory for every
// recipient sent to (with a first-contact budget only).
func (a *admission) rememberRecipients() error {
	for _, h := range a.hashes {
		if err := a.k.put(a.p+keyKnown+h, "1", a.ms+a.s.knownTTL.Milliseconds()); err != nil {
			return err
		}
	}
	return nil
}

// saveTATs writes the rate's and the domains' new TATs, each kept until it
// has passed.
func (a *admission) saveTATs() error {
	if a.newTAT >= 0 {
		if err := a.putTAT(keyTAT, a.newTAT); err != nil {
			return err
		}
	}
	for dom, tat := range a.domTAT {
		if err := a.putTAT(keyDomain+dom, tat); err != nil {
			return err
		}
	}
	return nil
}

func (a *admission) putTAT(key string, tat float64) error {
	return a.k.put(a.p+key, strconv.FormatFloat(tat, 'f', 3, 64), int64(math.Ceil(tat))+tatGrace.Milliseconds())
}

// spendProbes moves an open breaker past its time to half open and takes
// the message's recipients from the probe budget.
func (a *admission) spendProbes() error {
	if !a.probing {
		return nil
	}
	b := a.breaker
	b.State, b.Probes = store.HalfOpen, b.Probes-int64(len(a.live))
	return writeBreaker(a.k, a.req.Tenant, b)
}
