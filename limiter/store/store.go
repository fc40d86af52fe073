package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sesgate/sesgate/gateway"
)

// Store is the shared state of the gateway. Both implementations (Redis in
// store/redisstore, embedded in store/boltstore) satisfy it with the same
// semantics; store/storetest checks that.
type Store interface {
	// Admit makes the one admission decision for a message. An error means
	// the store could not decide (unreachable, timeout); the caller then
	// applies its degraded mode.
	Admit(ctx context.Context, req AdmitRequest) (Decision, error)
	// CheckSuppressed returns the live (not expired) suppressions, tenant
	// and global, that match any of addrs.
	CheckSuppressed(ctx context.Context, tenant string, addrs []string) ([]Suppression, error)

	AddSuppression(ctx context.Context, s Suppression) error
	// RemoveSuppression reports whether an entry was there.
	RemoveSuppression(ctx context.Context, tenant, addr string) (bool, error)
	// ListSuppressions returns at most limit entries of one list (tenant ""
	// is the global list), expired ones included, in no particular order.
	ListSuppressions(ctx context.Context, tenant string, limit int) ([]Suppression, error)

	SetBreaker(ctx context.Context, tenant string, b Breaker) error
	GetBreaker(ctx context.Context, tenant string) (Breaker, error)

	// SetFrozen freezes or unfreezes a tenant; tenant "" is the global flag
	// that freezes every tenant.
	SetFrozen(ctx context.Context, tenant string, frozen bool) error
	Frozen(ctx context.Context, tenant string) (bool, error)

	// Usage returns what tenant used in the current UTC hour and day.
	Usage(ctx context.Context, tenant string) (Usage, error)

	// AddUsage adds add's four figures to the tenant's quota and
	// first-contact counters (Hour to the hourly quota counter, and so on),
	// in the windows that contain at: the limiter's reconcile of what it
	// admitted in degraded mode while the store was unreachable (see the
	// package doc). A window that has ended at the store's clock is skipped
	// (it is never read again); an at ahead of the store's clock counts in
	// the store's current windows. Neither the known-recipient memory nor
	// the sent counters change.
	AddUsage(ctx context.Context, tenant string, at time.Time, add Usage) error

	// Sent returns the recipients admitted for tenant in the whole minutes
	// from..to (the breaker's denominator), within the store's SentTTL.
	Sent(ctx context.Context, tenant string, from, to time.Time) (int64, error)

	Close() error
}

// MaxRecipients bounds AdmitRequest.Recipients (SES's own limit).
const MaxRecipients = gateway.DefaultMaxRecipients

// Defaults of the store options.
const (
	DefaultKnownTTL = 180 * 24 * time.Hour
	// DefaultSentTTL keeps the per-minute sent counters for the
	// dashboard's longest span (SeriesSpan); the breaker reads 2 hours.
	DefaultSentTTL = SeriesSpan
	// FrozenRetry is the Retry-After of a frozen or forced-open tenant, and
	// FrozenCache how long such a refusal may be cached (so an unfreeze or
	// a breaker reset takes effect within it).
	FrozenRetry = 60 * time.Second
	FrozenCache = 5 * time.Second
	// ProbeRetry is the Retry-After when a half-open breaker's probe budget
	// cannot cover a message.
	ProbeRetry = 5 * time.Second
)

// WarningRateFactor multiplies a tenant's GCRA rate while its breaker
// record's warning flag is set (the burst stays).
const WarningRateFactor = 0.5

// AdmitRequest is one message to admit.
type AdmitRequest struct {
	Tenant string
	// Recipients are normalized (gateway.ParseAddress), unique, at most
	// MaxRecipients. The store compares them case-insensitively.
	Recipients []string
	Limits     gateway.Limits
}

// Validate checks the request bounds.
func (r *AdmitRequest) Validate() error {
	switch {
	case r.Tenant == "" || len(r.Tenant) > 64 || strings.ContainsAny(r.Tenant, "{}\x00"):
		return errors.New("store: invalid tenant id")
	case len(r.Recipients) == 0 || len(r.Recipients) > MaxRecipients:
		return fmt.Errorf("store: %d recipients (want 1..%d)", len(r.Recipients), MaxRecipients)
	}
	return nil
}

// Reason says why a message was refused, or a recipient dropped.
type Reason string

// Refusal reasons. Limit refusals use the limit's name (gateway.Limit*).
const (
	ReasonFrozen        Reason = "frozen"
	ReasonBreakerOpen   Reason = "breaker_open"
	ReasonSuppressed    Reason = "suppressed" // every recipient suppressed
	ReasonTooMany       Reason = "too_many"   // cost above a burst: never admissible
	ReasonRate          Reason = gateway.LimitRate
	ReasonPerHour       Reason = gateway.LimitPerHour
	ReasonPerDay        Reason = gateway.LimitPerDay
	ReasonFirstHour     Reason = gateway.LimitFirstContactPerHour
	ReasonFirstDay      Reason = gateway.LimitFirstContactPerDay
	ReasonPerDomainRate Reason = gateway.LimitPerDomainRate
)

// Decision is the answer to an AdmitRequest. When Admitted, every recipient
// not in Suppressed was counted against every limit; when refused, nothing
// was counted.
type Decision struct {
	Admitted   bool
	Reason     Reason        // refusals only
	RetryAfter time.Duration // refusals: when the same message may pass
	// CacheFor is how long the refusal holds for ANY message of the tenant
	// (a one-recipient message to a known address included); 0 when a
	// different message might pass now (first-contact, per-domain rate,
	// a quota with room left for fewer recipients).
	CacheFor time.Duration
	// Suppressed lists dropped recipients (not counted), tenant and global.
	Suppressed []Suppression
	// Shadowed names limits in Limits.Shadow that would have refused.
	Shadowed []string
	// NewRecipients is how many counted recipients were first contacts.
	NewRecipients int
	// Remaining is what the tenant's windowed limits have left after this
	// decision, computed in the same script call or transaction.
	Remaining Remaining
}

// Unlimited is a Remaining field for a limit the tenant does not have.
const Unlimited = -1

// Remaining is what a tenant's windowed limits have left, in recipients,
// in the store's current hour and day windows, right after a decision (the
// message counted when admitted): per_hour, per_day, first_contact_per_hour
// and first_contact_per_day. A limit the tenant does not have (0) reads
// Unlimited; one used up, or over (a shadowed limit), reads 0. Shadow mode
// does not change the figures: the caller knows which limits are shadowed.
// Known is false when the decision stopped before the counters were read
// (frozen, breaker open, every recipient suppressed, half-open probes
// short); every other decision, admitted or refused, fills it.
type Remaining struct {
	Known                          bool
	Hour, Day, FirstHour, FirstDay int64
}

// MaxUsageAdd bounds each figure of AddUsage's add.
const MaxUsageAdd = 1 << 40

// ValidateUsageAdd checks AddUsage's arguments.
func ValidateUsageAdd(tenant string, add Usage) error {
	if tenant == "" || len(tenant) > 64 || strings.ContainsAny(tenant, "{}\x00") {
		return errors.New("store: invalid tenant id")
	}
	for _, n := range []int64{add.Hour, add.Day, add.FirstContactHour, add.FirstContactDay} {
		if n < 0 || n > MaxUsageAdd {
			return fmt.Errorf("store: usage to add %+v (want each 0..%d)", add, int64(MaxUsageAdd))
		}
	}
	return nil
}

// Usage is a tenant's use of its windowed limits, in recipients, in the
// current UTC clock hour and day. Hour and Day are counted for every
// tenant, quota or not, in the same admission call (the operator's usage;
// Redis: two fields of the state hash the script already writes; bbolt:
// two counters in the same transaction); the first-contact figures only
// for a tenant with a first-contact budget or window.
type Usage struct {
	Hour, Day                         int64 // quota counters
	FirstContactHour, FirstContactDay int64 // first contacts
}

// SuppressionReason is why an address is suppressed.
type SuppressionReason string

// Suppression reasons.
const (
	HardBounce SuppressionReason = "hard-bounce"
	Complaint  SuppressionReason = "complaint"
	Manual     SuppressionReason = "manual"
)

// ParseSuppressionReason checks a reason.
func ParseSuppressionReason(s string) (SuppressionReason, error) {
	switch r := SuppressionReason(s); r {
	case HardBounce, Complaint, Manual:
		return r, nil
	}
	return "", fmt.Errorf("suppression reason %q: want hard-bounce, complaint or manual", s)
}

// Suppression is one address that must not be mailed.
type Suppression struct {
	Tenant  string // "" for the global list
	Address string // stored and compared lowercased
	Reason  SuppressionReason
	Added   time.Time
	Expires time.Time // zero: never
}

// Live reports whether s applies at now.
func (s Suppression) Live(now time.Time) bool {
	return s.Expires.IsZero() || now.Before(s.Expires)
}

// Code is the gateway code for a recipient refused by s.
func (s Suppression) Code() gateway.Code {
	if s.Reason == HardBounce {
		return gateway.CodeSuppressedBounce
	}
	return gateway.CodeSuppressed
}

// EncodeValue is the stored form "reason|added_ms|expires_ms" (0: never),
// shared by both stores and the Redis script.
func (s Suppression) EncodeValue() string {
	exp := int64(0)
	if !s.Expires.IsZero() {
		exp = s.Expires.UnixMilli()
	}
	return fmt.Sprintf("%s|%d|%d", s.Reason, s.Added.UnixMilli(), exp)
}

// DecodeSuppression parses EncodeValue's form.
func DecodeSuppression(tenant, addr, v string) (Suppression, error) {
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return Suppression{}, fmt.Errorf("store: bad suppression value %q", v)
	}
	r, err := ParseSuppressionReason(parts[0])
	if err != nil {
		return Suppression{}, err
	}
	var added, exp int64
	if _, err := fmt.Sscan(parts[1], &added); err != nil {
		return Suppression{}, fmt.Errorf("store: bad suppression time %q", v)
	}
	if _, err := fmt.Sscan(parts[2], &exp); err != nil {
		return Suppression{}, fmt.Errorf("store: bad suppression expiry %q", v)
	}
	s := Suppression{Tenant: tenant, Address: addr, Reason: r, Added: time.UnixMilli(added).UTC()}
	if exp > 0 {
		s.Expires = time.UnixMilli(exp).UTC()
	}
	return s, nil
}

// Normalize checks and lowercases s for storing.
func (s *Suppression) Normalize() error {
	addr, err := gateway.ParseAddress(s.Address)
	if err != nil {
		return fmt.Errorf("store: suppression address %q: %w", s.Address, err)
	}
	s.Address = strings.ToLower(addr)
	if _, err := ParseSuppressionReason(string(s.Reason)); err != nil {
		return err
	}
	if s.Tenant != "" && (len(s.Tenant) > 64 || strings.ContainsAny(s.Tenant, "{}\x00")) {
		return errors.New("store: invalid tenant id")
	}
	if s.Added.IsZero() {
		return errors.New("store: suppression without a time")
	}
	return nil
}

// BreakerState is the state of a breaker (a tenant's, or the account
// guard's). It is the one vocabulary of the breaker everywhere: package
// breaker's state machine, the guard, the admin API and its JSON. The text
// is the stored form (the Redis hash field "state", the embedded store's
// value, the Redis admission script) and the API's, so it never changes.
type BreakerState string

// Breaker states.
const (
	Closed     BreakerState = "closed"
	Open       BreakerState = "open"
	HalfOpen   BreakerState = "half_open"
	ForcedOpen BreakerState = "forced_open"
)

// Trip is one time a breaker opened (or was forced open): the history a
// breaker record keeps in its data (package guard writes it) and the admin
// API lists.
type Trip struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Breaker is the part of a tenant's breaker record that admission reads.
// Package guard owns the transitions (package breaker's Step); admission
// only moves open to half_open once OpenUntil passed and spends Probes.
type Breaker struct {
	State     BreakerState // "" reads as Closed
	OpenUntil time.Time    // Open: refused until then
	Probes    int64        // HalfOpen: recipients that may still pass
}

// Validate checks the state name.
func (b Breaker) Validate() error {
	switch b.State {
	case "", Closed, Open, HalfOpen, ForcedOpen:
		return nil
	}
	return fmt.Errorf("store: breaker state %q", b.State)
}

// Keyer computes the keyed hash that stands for an address where only
// membership matters (the first-contact memory).
type Keyer struct {
	key []byte
	// pool holds *keyHasher: a keyed HMAC reset between uses and its
	// scratch buffers, so Hash (twice per message) allocates only the
	// string it returns.
	pool sync.Pool
}

// keyHasher is one HMAC state with its scratch buffers (pooled by Keyer,
// or held by a Hasher).
type keyHasher struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

// appendHash appends Keyer.Hash(addr) to dst.
func (h *keyHasher) appendHash(dst []byte, addr string) []byte {
	h.in = appendLower(h.in[:0], addr)
	h.mac.Reset()
	h.mac.Write(h.in)
	return base64.RawURLEncoding.AppendEncode(dst, h.mac.Sum(h.sum[:0])[:16])
}

// MinKeyBytes is the shortest accepted recipient key.
const MinKeyBytes = 16

// NewKeyer returns a Keyer; key must have at least MinKeyBytes bytes.
func NewKeyer(key []byte) (*Keyer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("store: recipient key has %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	k := &Keyer{key: append([]byte(nil), key...)}
	k.pool.New = func() any { return &keyHasher{mac: hmac.New(sha256.New, k.key)} }
	return k, nil
}

// Hash returns base64url(HMAC-SHA256(key, lowercase(addr)))[:22]: 128 bits.
func (k *Keyer) Hash(addr string) string {
	h := k.pool.Get().(*keyHasher)
	defer k.pool.Put(h)
	var out [HashLen]byte
	return string(h.appendHash(out[:0], addr))
}

// appendLower appends strings.ToLower(s) to b, without the intermediate
// string when s is ASCII.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(b, strings.ToLower(s)...)
		}
	}
	n := len(b)
	b = append(b, s...)
	for i := n; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b
}

// Domain returns the lowercased domain of an address.
func Domain(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}
