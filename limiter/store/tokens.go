package store

import (
	"context"
	"errors"
	"time"
)

// TokenRecord is a sending token minted through the admin API, kept only
// as its hash. Revoked and Expires may also be set for a key id that is not
// in the store (a policy-file token revoked by an operator).
type TokenRecord struct {
	KeyID    string
	Tenant   string // "" for a revocation of a policy-file token
	SHA256   string // hex; "" for a revocation of a policy-file token
	Created  time.Time
	Revoked  time.Time // zero: not revoked
	Expires  time.Time // zero: no deadline
	LastUsed time.Time
}

// FreezeInfo says who froze a tenant (or all sending, tenant "") and why.
type FreezeInfo struct {
	Reason string
	By     string
	At     time.Time
}

// ErrExists is returned by CreateToken when the key id is taken.
var ErrExists = errors.New("store: already exists")

// DefaultAuditKeep is how many audit entries the stores keep.
const DefaultAuditKeep = 10000

// Ops is the operator state both stores keep besides admission: tokens
// minted through the admin API, the audit log, who froze what, and a
// change generation that every replica watches (Changes) so a revocation
// or a freeze is seen everywhere within a second.
type Ops interface {
	// CreateToken stores a new record (ErrExists when the key id is taken).
	CreateToken(ctx context.Context, r TokenRecord) error
	// RevokeToken and ExpireToken set the deadline of keyID (whether or
	// not it was minted through the store).
	RevokeToken(ctx context.Context, keyID string, at time.Time) error
	ExpireToken(ctx context.Context, keyID string, at time.Time) error
	// ListTokens returns every record, including bare revocations.
	ListTokens(ctx context.Context) ([]TokenRecord, error)
	// TouchTokens records last-used times (one call for a batch).
	TouchTokens(ctx context.Context, used map[string]time.Time) error

	// AddAudit appends one entry (opaque JSON), keeping the newest keep.
	AddAudit(ctx context.Context, entry []byte, keep int) error
	// ListAudit returns the newest limit entries, newest first.
	ListAudit(ctx context.Context, limit int) ([][]byte, error)

	// SetFreezeInfo records (info non-nil) or clears who froze tenant.
	SetFreezeInfo(ctx context.Context, tenant string, info *FreezeInfo) error
	FreezeInfos(ctx context.Context) (map[string]FreezeInfo, error)

	// PageSuppressions returns up to limit entries of one list (tenant ""
	// is the global list) whose address starts with prefix and sorts after
	// after, ordered by address, expired ones included.
	PageSuppressions(ctx context.Context, tenant, prefix, after string, limit int) ([]Suppression, error)

	// SentMinutes returns the per-minute sent counters of the whole
	// minutes from..to (at most SentTTL of them, the newest), oldest first,
	// with the unix minute of the first, in one store call.
	SentMinutes(ctx context.Context, tenant string, from, to time.Time) (first int64, counts []int64, err error)

	// Bump announces a change of tokens or freezes to every replica.
	Bump(ctx context.Context) error
	// Generation is the change counter Bump increments.
	Generation(ctx context.Context) (int64, error)
	// Changes calls f on every Bump (of any replica) until ctx ends. It
	// may miss some (a reconnect): callers also poll Generation.
	Changes(ctx context.Context, f func())
}
