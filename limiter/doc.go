// Package limiter decides whether a tenant may send a message now.
//
// Shared is the pipeline's limiter (gateway.Limiter and
// gateway.RecipientChecker) on a store.Store. Per message, cheapest first:
//
//  1. Over-limit cache: a store refusal with Decision.CacheFor > 0 is kept
//     per tenant until then (capped by MaxCache, default 60 s), so a token
//     hammering over its limit, or a frozen or open tenant, is refused in
//     process (about 100 ns, no allocation but the error) and never reaches
//     the store before its retry time.
//  2. Pre-limiter: an x/time/rate bucket per tenant at the tenant's full rate
//     (not divided by replicas), which sheds floods before the store and is
//     never the binding limit in normal operation.
//  3. One store call (Admit) with a deadline of CallTimeout (default 50 ms).
//     Suppressed recipients come back as per-recipient errors and are dropped
//     from the message; refusals map to gateway codes: rate_limited,
//     quota_exceeded, first_contact_limited, breaker_open, tenant_frozen,
//     too_many_recipients, recipient_suppressed[_bounce].
//  4. Degraded mode, when the store call fails or times out. Never a silent
//     fail-open. During DegradedWindow (default 60 s) after the first failure
//     of an outage, each replica admits from its own bucket at
//     rate x DegradedFraction / Replicas (default 0.5 / 1) with burst 1
//     (burst max_recipients when the rate counts recipients); a tenant
//     without a rate uses its hourly or daily quota spread evenly, or 1
//     message/s. So the whole fleet admits at most DegradedFraction of the
//     tenant's rate (plus one burst per replica) while the store is down.
//     Tenants last seen frozen or with an open breaker stay refused.
//     Suppression, first-contact and quotas cannot be checked then (SES's
//     account suppression list is the backstop). After the window every
//     message gets store_unavailable (SMTP 451 4.3.0, HTTP 503 +
//     Retry-After UnavailableRetry). Every degraded decision is logged at
//     warn and counted (sesgate_admission_degraded_total{outcome}); the
//     first success ends the outage.
//
// CheckTenant is step 1 alone (no I/O): front ends call it before reading
// a message (SMTP MAIL, HTTP before the body), so a refused tenant costs
// neither Redis nor body parsing. PeekRate looks at step 2 without taking a
// token: HTTP calls it before the body, so a tenant with less than one
// token (rates per recipient included, which are not cached) is refused
// unread. CheckRecipient (SMTP RCPT) reads the tenant and global suppression lists;
// when the store fails there, the recipient passes and admission decides.
//
// Account spends the SES account's send rate, shared by replicas through
// leases (see Account); AccountSink applies it before the sink.
package limiter
