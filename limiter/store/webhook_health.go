package store

import "time"

// Webhook health: what the operator sees of each tenant's webhooks (the
// admin API's GET /v1/webhooks/health and the dashboard). Both stores keep
// it beside the queue, so it is the fleet's view, not one replica's:
//
//   - Outcome counters per tenant, webhook (endpoint) and UTC clock hour,
//     kept for WebhookHealthHours hours: AckWebhook counts "delivered",
//     RetryWebhook "failed" when the item's Attempts grew (a give-back at
//     the concurrency cap, without an attempt, counts nothing), DeadWebhook
//     "dead". Only a call that held the lease counts.
//   - The last delivery and the last failure (time and error) per webhook,
//     kept WebhookHealthKeep after the last outcome.
//   - The tenant's dead letters: entries of the dead-letter list now
//     (replayed and trimmed ones no longer count).

// Bounds of the webhook health.
const (
	// WebhookHealthHours is the window of the outcome counters: the
	// current UTC hour and the 23 before it.
	WebhookHealthHours = 24
	// WebhookHealthKeep is how long a webhook's last outcome is kept.
	WebhookHealthKeep = 7 * 24 * time.Hour
)

// Outcomes of a delivery attempt, as counted.
const (
	OutcomeDelivered = "delivered"
	OutcomeFailed    = "failed"
	OutcomeDead      = "dead"
)

// WebhookHealth is one tenant's webhook health.
type WebhookHealth struct {
	WebhookStat       // backlog and oldest undelivered item, all webhooks
	Dead        int64 // entries of the dead-letter list now
	// Webhooks are those with an outcome within WebhookHealthKeep, by
	// endpoint.
	Webhooks []WebhookEndpointHealth
}

// WebhookEndpointHealth is one webhook's outcomes.
type WebhookEndpointHealth struct {
	Endpoint string
	// Delivered, Failed (will be retried) and Dead (dead-lettered): counts
	// in the last WebhookHealthHours clock hours.
	Delivered, Failed, Dead int64
	LastDelivered           time.Time // zero: none within WebhookHealthKeep
	LastFailed              time.Time // a failed or dead-lettered attempt
	LastError               string    // of LastFailed
}

// Failing reports whether the webhook's last outcome was a failure.
func (e WebhookEndpointHealth) Failing() bool {
	return !e.LastFailed.IsZero() && e.LastFailed.After(e.LastDelivered)
}

// WebhookOutcome is what one finished attempt adds to the health.
type WebhookOutcome struct {
	Tenant, Endpoint, Outcome string
	At                        time.Time
	Error                     string // failed and dead
}

// HealthOutcome says what a finished queue call counts: ack delivered,
// retry failed (only when it.Attempts grew), dead dead; ok false when it
// counts nothing. at is the call's time; a failure is dated by the item's
// LastAttempt when set (RetryWebhook is given the next due time only).
func HealthOutcome(op string, c WebhookClaim, it WebhookItem, at time.Time) (WebhookOutcome, bool) {
	o := WebhookOutcome{Tenant: c.Item.Tenant, Endpoint: c.Item.Endpoint, At: at}
	switch op {
	case OutcomeDelivered:
		o.Outcome = OutcomeDelivered
	case OutcomeFailed:
		if it.Attempts <= c.Item.Attempts {
			return o, false
		}
		o.Outcome, o.Error = OutcomeFailed, it.LastError
		if !it.LastAttempt.IsZero() {
			o.At = it.LastAttempt
		}
	case OutcomeDead:
		o.Outcome, o.Error = OutcomeDead, it.LastError
	default:
		return o, false
	}
	o.At = o.At.UTC()
	return o, true
}
