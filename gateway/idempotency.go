package gateway

import (
	"context"
	"time"
)

// Idempotency: a front end that lets an app name a request (HTTP
// Idempotency-Key) keeps the first answer in the shared store under the
// tenant, so that a repeat, on any replica, gets that answer and sends
// nothing.
const (
	// IdempotencyTTL is how long a completed answer is kept.
	IdempotencyTTL = 24 * time.Hour
	// MaxIdempotencyKey bounds a key (printable ASCII).
	MaxIdempotencyKey = 255
	// MaxIdempotencyAnswer bounds a stored answer.
	MaxIdempotencyAnswer = 64 << 10
)

// IdemState is what a claim found.
type IdemState int

const (
	// IdemClaimed: the key was free; the caller owns it until it completes
	// or releases it, or the lease ends.
	IdemClaimed IdemState = iota
	// IdemInFlight: another request with the same key and fingerprint holds
	// it and has not answered yet.
	IdemInFlight
	// IdemDone: a request with the same key and fingerprint was answered;
	// IdemClaim.Answer holds that answer.
	IdemDone
	// IdemMismatch: the key was used (in flight or answered) by a request
	// with another fingerprint.
	IdemMismatch
)

// IdemClaim is the outcome of IdempotencyStore.ClaimIdempotency.
type IdemClaim struct {
	State  IdemState
	Answer []byte        // IdemDone: the answer given to Complete
	Left   time.Duration // IdemInFlight: what is left of the holder's lease
}

// IdempotencyStore keeps idempotency records in the shared store, one per
// (tenant, key), so that every replica sees them. Implemented by
// limiter/store/redisstore and limiter/store/boltstore (conformance:
// storetest.RunIdempotency). Errors are the store's (unreachable, timeout).
type IdempotencyStore interface {
	// ClaimIdempotency takes (tenant, key) for a request with fingerprint
	// (a digest of what the request asks) on behalf of owner (unique per
	// request), for lease, when no record exists (or the last holder's
	// lease ended); otherwise it reports what the record holds.
	ClaimIdempotency(ctx context.Context, tenant, key, fingerprint, owner string, lease time.Duration) (IdemClaim, error)
	// CompleteIdempotency stores owner's answer and keeps it for ttl. It
	// does nothing when owner no longer holds the key (its lease ended and
	// another request claimed it).
	CompleteIdempotency(ctx context.Context, tenant, key, owner string, answer []byte, ttl time.Duration) error
	// ReleaseIdempotency deletes the record when owner holds it, so that
	// the key may be used again (the request failed).
	ReleaseIdempotency(ctx context.Context, tenant, key, owner string) error
}
