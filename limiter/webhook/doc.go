// Package webhook tells the apps what happened to their mail: each
// tenant's webhooks (policy tenants[].webhooks) receive its SES events
// (send, delivery, bounce, complaint, reject, delivery_delay,
// rendering_failure) and sesgate's own (refused_by_breaker,
// breaker_opened, breaker_closed, suppressed) as JSON (Payload), signed
// per the Standard Webhooks convention (Sign: webhook-id,
// webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" for each whsec_ secret, space-separated during a
// rotation).
//
// Invariants:
//   - The event intake is never held up: queueing an event is one store
//     call per webhook (bounded by a 1 s timeout); when it fails the event
//     is still processed, and the failure is counted
//     (sesgate_webhook_enqueue_failures_total) and logged.
//   - Delivery is at least once, from the store's durable queue
//     (store.WebhookItem): any replica delivers any item, one delivery at a
//     time per item (a lease that lapses if the replica dies), the items of
//     one message and webhook in the order they were queued (the next is
//     not tried before the previous succeeded or was dead-lettered).
//   - Retries back off exponentially with jitter (Options.Backoff doubled,
//     at most MaxBackoff) for RetryFor (24 h by default); then the item
//     goes to the dead-letter list, which operators list and replay.
//   - Deliveries in flight are bounded per webhook and replica
//     (Concurrency) and per replica (DefaultMaxInFlight); each has a
//     Timeout; at most MaxResponseBytes of an answer are read.
//   - Targets are checked when dialled (NewClient): loopback, private,
//     link-local, CGNAT, unspecified, multicast and metadata addresses are
//     refused unless a network allowed by the policy or the process
//     contains them, after name resolution and again on the socket, so DNS
//     rebinding cannot reach them; no proxy, no redirects; https unless the
//     webhook allows http.
//
// The standard library does the HTTP and the HMAC; the verifying side of
// the convention is the receiving app's (its tests use the reference
// library github.com/standard-webhooks/standard-webhooks/libraries).
package webhook
