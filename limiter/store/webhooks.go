package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Webhook queue: the durable queue of app webhook deliveries (package
// limiter/webhook). Both stores implement it with the same semantics,
// checked by storetest.RunWebhooks:
//
//   - Items are kept in chains (WebhookItem.Chain: one endpoint and one
//     message); a chain's items are delivered in the order they were
//     enqueued, one at a time: only a chain's head is ever claimed.
//   - ClaimWebhooks leases due chains: their heads are returned with a
//     lease token, and the chain is not due again until the lease ends
//     (now + lease), so a replica that crashed mid-delivery loses its lease
//     and another replica delivers. Ack, Retry and Dead check the token: a
//     lapsed lease taken over by another replica changes nothing.
//   - AckWebhook drops the head, RetryWebhook rewrites it (attempts, last
//     error) and makes the chain due at a later time, DeadWebhook moves the
//     head to the dead-letter list; the chain's next item is then due at
//     once.
//   - The backlog of a tenant is bounded (EnqueueWebhook refuses beyond
//     max) and so is the dead-letter list (the oldest entries go first).
//
// The Redis store keeps the queue in one hash slot ({wh}); times are the
// caller's clock (replicas' clocks only shift when a lapsed lease is
// taken over).

// WebhookQueue is the webhook queue's part of a store, as the dispatcher
// (package limiter/webhook) uses it; both stores implement it.
type WebhookQueue interface {
	EnqueueWebhook(ctx context.Context, it WebhookItem, now time.Time, max int) (bool, error)
	ClaimWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookClaim, error)
	AckWebhook(ctx context.Context, c WebhookClaim, now time.Time) (bool, error)
	RetryWebhook(ctx context.Context, c WebhookClaim, it WebhookItem, due time.Time) (bool, error)
	DeadWebhook(ctx context.Context, c WebhookClaim, it WebhookItem, now time.Time, maxDead int) (bool, error)
	WebhookStats(ctx context.Context, tenants []string) (map[string]WebhookStat, error)
}

// Bounds of the webhook queue.
const (
	MaxWebhookBody  = 64 << 10 // one payload
	MaxWebhookClaim = 100      // chains per ClaimWebhooks
)

// WebhookItem is one queued delivery.
type WebhookItem struct {
	ID       string    `json:"id"`       // the webhook-id header; unique
	Tenant   string    `json:"tenant"`   // whose backlog it counts in
	Endpoint string    `json:"endpoint"` // the endpoint key (the webhook's URL)
	Chain    string    `json:"chain"`    // endpoint and message: delivered in order
	Type     string    `json:"type"`     // the event type (for listings)
	Enqueued time.Time `json:"enqueued"` // first enqueue (retries stop 24 h after)
	Attempts int       `json:"attempts"` // deliveries tried
	// LastError is the last attempt's failure (status or network error).
	LastError string `json:"last_error,omitempty"`
	// LastAttempt is when the last attempt ended (zero before the first).
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	Body        []byte    `json:"body"` // the payload JSON, signed as is
}

// Validate checks an item before it is enqueued.
func (it *WebhookItem) Validate() error {
	switch {
	case it.ID == "" || len(it.ID) > 64 || strings.ContainsAny(it.ID, "|\x00"):
		return errors.New("store: webhook item id")
	case it.Tenant == "" || len(it.Tenant) > 64 || strings.ContainsAny(it.Tenant, "{}|\x00"):
		return errors.New("store: invalid tenant id")
	case it.Chain == "" || len(it.Chain) > 512 || strings.ContainsAny(it.Chain, "\x00"):
		return errors.New("store: webhook chain")
	case it.Endpoint == "" || len(it.Endpoint) > 2048:
		return errors.New("store: webhook endpoint")
	case len(it.Body) == 0 || len(it.Body) > MaxWebhookBody:
		return fmt.Errorf("store: webhook body of %d bytes (want 1..%d)", len(it.Body), MaxWebhookBody)
	case it.Enqueued.IsZero():
		return errors.New("store: webhook item without a time")
	}
	return nil
}

// WebhookClaim is a leased chain head: the item and the lease token that
// Ack, Retry and Dead present.
type WebhookClaim struct {
	Item  WebhookItem
	Token string
}

// WebhookStat is a tenant's webhook backlog: items queued (dead ones not
// included) and the enqueue time of the oldest (zero when none).
type WebhookStat struct {
	Backlog int64
	Oldest  time.Time
}

// DeadWebhook is a dead-lettered item and when it died.
type DeadWebhook struct {
	WebhookItem
	Died time.Time `json:"died"`
}
