package admin

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
)

// Errors a backend wraps (fmt.Errorf("%w: ...", ErrNotFound)) so the API can
// answer with the right status (guard.ErrUnknownTenant is a 404 too). The
// wrapped message is shown to the caller, so it must not carry internal
// detail; any other error is a 500 whose text is logged only.
var (
	ErrNotFound = errors.New("not found") // 404
	ErrConflict = errors.New("conflict")  // 409
	ErrInvalid  = errors.New("invalid")   // 400
)

// TokenInfo describes one sending token. The token itself is never stored.
type TokenInfo struct {
	KeyID     string    `json:"key_id"`
	Tenant    string    `json:"tenant"`
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Revoked   time.Time `json:"revoked,omitzero"`    // zero: not revoked
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: no expiry (set by a rotation)
	// Kind is KindAWS for an AWS key (SigV4, the SES API), with its
	// AccessKeyID; empty for a token.
	Kind        string `json:"kind,omitempty"`
	AccessKeyID string `json:"access_key_id,omitempty"`
}

// KindAWS is the Kind of an AWS key.
const KindAWS = "aws"

// KindOf fills the Kind and AccessKeyID of t from its record.
func (t *TokenInfo) KindOf(r auth.Record) {
	if r.IsAWSKey() {
		t.Kind, t.AccessKeyID = KindAWS, auth.AccessKeyID(r.KeyID)
	}
}

// Usable reports whether the token is accepted at now.
func (t TokenInfo) Usable(now time.Time) bool {
	return t.Revoked.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// Tokens stores sending-token records. The API mints tokens itself (auth.NewToken)
// and hands the store only the record, so minting, rotation deadlines and
// validation live here once, whatever the store.
type Tokens interface {
	// List returns every token record, revoked and expired ones included.
	List(ctx context.Context) ([]TokenInfo, error)
	// Create stores a new record created at created; ErrConflict when the
	// key id exists. The token must be accepted on every replica at once.
	Create(ctx context.Context, rec auth.Record, created time.Time) error
	// Revoke refuses keyID from at on (ErrNotFound when unknown).
	Revoke(ctx context.Context, keyID string, at time.Time) error
	// Expire makes keyID refused from at on (a rotation's grace deadline).
	Expire(ctx context.Context, keyID string, at time.Time) error
}

// Limits is the JSON view of a tenant's configured limits (gateway.Limits);
// zero means unlimited, or the gateway default for the per-message limits.
type Limits struct {
	Rate                float64  `json:"rate"`
	Burst               int      `json:"burst"`
	RatePerRecipient    bool     `json:"rate_per_recipient,omitempty"`
	MaxRecipients       int      `json:"max_recipients"`
	MaxMessageBytes     int64    `json:"max_message_bytes"`
	PerHour             int64    `json:"per_hour"`
	PerDay              int64    `json:"per_day"`
	FirstContactPerHour int64    `json:"first_contact_per_hour"`
	FirstContactPerDay  int64    `json:"first_contact_per_day"`
	PerDomainRate       float64  `json:"per_domain_rate"`
	Shadow              []string `json:"shadow,omitempty"`
}

// Usage is what a tenant used in the current UTC clock hour and day, in
// recipients, and its first-contact budget left (-1: no such limit).
type Usage struct {
	Hour                 int64 `json:"hour"`
	Day                  int64 `json:"day"`
	FirstContactLeftHour int64 `json:"first_contact_left_hour"`
	FirstContactLeftDay  int64 `json:"first_contact_left_day"`
}

// Rates are measured over the breaker's window (the backend says which in
// Window): recipients sent per minute, and bounces and complaints per
// recipient sent (0.02 is 2 %).
type Rates struct {
	Window        string  `json:"window"`
	SentPerMinute float64 `json:"sent_per_minute"`
	BounceRate    float64 `json:"bounce_rate"`
	ComplaintRate float64 `json:"complaint_rate"`
}

// Freeze is the state of a kill switch.
type Freeze struct {
	Frozen bool      `json:"frozen"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"` // admin key id
	At     time.Time `json:"at,omitzero"`
}

// TenantStatus is one tenant as an operator sees it.
type TenantStatus struct {
	ID      string             `json:"id"`
	Limits  Limits             `json:"limits"`
	Usage   Usage              `json:"usage"`
	Rates   Rates              `json:"rates"`
	Freeze  Freeze             `json:"freeze"`
	Breaker store.BreakerState `json:"breaker"`
	// Window is the first-contact window (window.go); nil: none configured.
	Window *Window `json:"first_contact_window,omitempty"`
}

// Point is one minute of a tenant's traffic, in recipients.
type Point struct {
	At         time.Time `json:"at"` // start of the minute, UTC
	Sent       int64     `json:"sent"`
	Bounces    int64     `json:"bounces"`
	Complaints int64     `json:"complaints"`
}

// GlobalTenant is the id that Tenants.SetFrozen takes for the global kill
// switch (it freezes every tenant), as the store's SetFrozen does.
const GlobalTenant = ""

// Tenants reads tenant status and flips the kill switches.
type Tenants interface {
	// List returns every configured tenant, sorted by id.
	List(ctx context.Context) ([]TenantStatus, error)
	// Status returns one tenant (ErrNotFound when unknown).
	Status(ctx context.Context, id string) (TenantStatus, error)
	// Series returns one point per minute for the 60 minutes up to now,
	// oldest first, zeros included (ErrNotFound when unknown).
	Series(ctx context.Context, id string) ([]Point, error)
	// SetFrozen sets tenant id's kill switch, or the global one when id is
	// GlobalTenant. Unknown tenant: ErrNotFound and nothing changed. It must
	// take effect on every replica within a second.
	SetFrozen(ctx context.Context, id string, f Freeze) error
	// GlobalFreeze returns the global kill switch.
	GlobalFreeze(ctx context.Context) (Freeze, error)
}

// BreakerStatus is a tenant's breaker as an operator sees it (BreakerView
// of the guard's Status).
type BreakerStatus struct {
	Tenant    string             `json:"tenant"`
	State     store.BreakerState `json:"state"`
	Reason    string             `json:"reason,omitempty"`
	OpenUntil time.Time          `json:"open_until,omitzero"`
	Warning   bool               `json:"warning,omitempty"`
	Rates     Rates              `json:"rates"`
	// Windows describes the configured windows and thresholds, e.g.
	// {"window": "1h", "min_volume": "100", "bounce_threshold": "0.05"}.
	Windows map[string]string `json:"windows,omitempty"`
	Trips   []store.Trip      `json:"trips"` // newest first
	// Timeline: trips, half-open probes and their outcomes, resets,
	// forced opens and warnings, newest first (the breaker record's, the
	// same on every replica).
	Timeline []guard.TimelineEntry `json:"timeline"`
}

// BreakerView is the API's view of a breaker's status: rates and windows
// from its config and window sums.
func BreakerView(s guard.Status) BreakerStatus {
	cfg, st := s.Config, s.Stats
	out := BreakerStatus{
		Tenant: s.Tenant, State: s.State, Reason: s.Reason, OpenUntil: s.OpenUntil, Warning: s.Warning,
		Rates: Rates{Window: cfg.Window.String(), BounceRate: st.BounceRate, ComplaintRate: st.ComplaintRate},
		Windows: map[string]string{
			"window": cfg.Window.String(), "min_volume": strconv.FormatInt(cfg.MinSent, 10),
			"bounce_threshold":    strconv.FormatFloat(cfg.TripBounceRate, 'g', -1, 64),
			"complaint_window":    cfg.ComplaintWindow.String(),
			"complaint_threshold": strconv.FormatFloat(cfg.TripComplaintRate, 'g', -1, 64),
		},
		Trips:    append([]store.Trip{}, s.Trips...),
		Timeline: append([]guard.TimelineEntry{}, s.Timeline...),
	}
	if cfg.Window > 0 {
		out.Rates.SentPerMinute = float64(st.Sent) / cfg.Window.Minutes()
	}
	return out
}

// Breakers inspects and overrides tenants' breakers: limiter/guard.Guard.
// Every method answers guard.ErrUnknownTenant for an unknown tenant.
type Breakers interface {
	Status(ctx context.Context, tenant string) (guard.Status, error)
	// Reset closes the breaker and forgets the counts that tripped it.
	Reset(ctx context.Context, tenant string) error
	// ForceOpen opens the breaker until a Reset.
	ForceOpen(ctx context.Context, tenant, reason string) error
}

// Suppression reasons, as package store names them.
const (
	ReasonHardBounce = "hard-bounce"
	ReasonComplaint  = "complaint"
	ReasonManual     = "manual"
)

// Suppression is an address that must not be mailed.
type Suppression struct {
	Tenant  string    `json:"tenant"` // "" for the global list
	Address string    `json:"address"`
	Reason  string    `json:"reason"`
	Added   time.Time `json:"added"`
	Expires time.Time `json:"expires,omitzero"`
}

// AllLists is the SuppressionQuery.Tenant that lists every list.
const AllLists = "*"

// SuppressionQuery selects suppressions: one list (Tenant, "" for the
// global one, AllLists for all), addresses starting with Prefix, after
// the opaque Cursor a previous page returned, at most Limit.
type SuppressionQuery struct {
	Tenant string
	Prefix string
	Cursor string
	Limit  int
}

// Suppressions is the suppression list. Addresses arrive normalized
// (gateway.ParseAddress, then lowercased).
type Suppressions interface {
	// Add adds or replaces entries. It adds all of them or, on error, as
	// few as the store can manage (a single store call where possible).
	Add(ctx context.Context, s []Suppression) error
	// Remove deletes one entry (ErrNotFound when it was not there).
	Remove(ctx context.Context, tenant, address string) error
	// List returns one page, ordered by (tenant, address), and the cursor
	// of the next page ("" at the end).
	List(ctx context.Context, q SuppressionQuery) ([]Suppression, string, error)
}

// Audit results.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// AuditEntry records one admin action.
type AuditEntry struct {
	Time      time.Time `json:"time"`
	Who       string    `json:"who"`    // admin key id
	Action    string    `json:"action"` // e.g. "tenant.freeze"
	Target    string    `json:"target"` // e.g. the tenant id or key id
	Result    string    `json:"result"` // ResultOK or ResultError
	Detail    string    `json:"detail,omitempty"`
	Source    string    `json:"source"` // client address
	RequestID string    `json:"request_id"`
}

// Audit keeps the record of admin actions. It never holds a token.
type Audit interface {
	Record(ctx context.Context, e AuditEntry) error
	// List returns the newest limit entries, newest first.
	List(ctx context.Context, limit int) ([]AuditEntry, error)
}
