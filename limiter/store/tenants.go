package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// TenantRecord is a tenant created through the admin API. The store keeps
// its entry (Spec: JSON in the shape of a tenant entry of the policy file)
// as given and never reads it: the gateway decodes it with the policy
// file's decoder, so a key the file gains is a key of the API at once.
type TenantRecord struct {
	ID   string
	Spec []byte
	// Version is set by the store at every change (create, update,
	// delete) from one counter of all tenants: ChangedTenants returns the
	// records changed after a version.
	Version int64
	Created time.Time // kept by an update
	Updated time.Time
	// Deleted marks a tombstone: a deleted tenant is kept as its id and
	// version so that ChangedTenants reports the deletion.
	Deleted bool
}

// ErrNotFound is returned for a tenant that is not in the store (or only
// as a tombstone).
var ErrNotFound = errors.New("store: not found")

// Bounds of a TenantRecord.
const (
	MaxTenantSpec = 1 << 20
	// MaxTenantPage bounds the limit of PageTenants and ChangedTenants.
	MaxTenantPage = 10000
)

var tenantIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateTenantRecord checks what PutTenant stores.
func ValidateTenantRecord(r TenantRecord) error {
	switch {
	case !tenantIDRE.MatchString(r.ID):
		return fmt.Errorf("store: invalid tenant id %q", r.ID)
	case len(r.Spec) == 0 || len(r.Spec) > MaxTenantSpec:
		return fmt.Errorf("store: tenant spec of %d bytes (want 1..%d)", len(r.Spec), MaxTenantSpec)
	}
	return nil
}

// TenantStore keeps the tenants of the admin API. Every change stamps the
// record with the next version of one counter, so a replica that applied
// everything up to version v reads only what changed since
// (ChangedTenants) and applies one change without rebuilding the others.
// Callers announce a change with Ops.Bump.
type TenantStore interface {
	// PutTenant stores r with the next version and returns it as stored.
	// create: ErrExists when a live record has the id (a tombstone is
	// replaced); else ErrNotFound when none has, and Created is kept.
	PutTenant(ctx context.Context, r TenantRecord, create bool) (TenantRecord, error)
	// DeleteTenant leaves a tombstone with the next version (ErrNotFound
	// when there is no live record).
	DeleteTenant(ctx context.Context, id string, at time.Time) (TenantRecord, error)
	// GetTenant returns the live record (ErrNotFound otherwise).
	GetTenant(ctx context.Context, id string) (TenantRecord, error)
	// PageTenants returns up to limit live records whose id starts with
	// prefix and sorts after after, ordered by id.
	PageTenants(ctx context.Context, prefix, after string, limit int) ([]TenantRecord, error)
	// ChangedTenants returns up to limit records, tombstones included,
	// whose version is above since, ordered by version.
	ChangedTenants(ctx context.Context, since int64, limit int) ([]TenantRecord, error)
}

// PageLimit clamps a page size to 1..MaxTenantPage.
func PageLimit(limit int) int { return min(max(limit, 1), MaxTenantPage) }

// TokenChange is a token record (without LastUsed) with the version of its
// last change.
type TokenChange struct {
	Version int64
	TokenRecord
}

// TokenLog is the change log of the token records of Ops: CreateToken,
// RevokeToken and ExpireToken stamp the key id with the next version of
// one counter (TouchTokens does not), so that a replica with 100,000
// tokens reads only what changed since it last looked.
type TokenLog interface {
	// TokenVersion is the version of the last change.
	TokenVersion(ctx context.Context) (int64, error)
	// ChangedTokens returns up to limit records changed after since, by
	// version, each key id once (at its last change).
	ChangedTokens(ctx context.Context, since int64, limit int) ([]TokenChange, error)
}
