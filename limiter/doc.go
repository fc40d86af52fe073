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
//     of an outage, each replica decides alone, in this order: tenants last
//     seen frozen or with an open breaker stay refused; a message needs the
//     tenant's recipient budget (below; else store_unavailable) and its rate
//     (else rate_limited). After the window every message gets
//     store_unavailable (SMTP 451 4.3.0, HTTP 503 + Retry-After
//     UnavailableRetry). Every degraded decision is logged at warn and
//     counted (sesgate_admission_degraded_total{outcome}: admitted, blocked,
//     over_budget (rate), over_quota (recipient budget), unavailable); the
//     first success ends the outage. Suppression cannot be checked then
//     (SES's account suppression list is the backstop), and RCPT does not
//     ask the store during an outage (admission checks suppression again).
//
// # The degraded bound
//
// Recipient budget. After every store decision that read the counters
// (store.Decision.Remaining: every admission, and every refusal from the
// first-contact step on), a replica keeps, per tenant, its share of what
// the tenant's windowed limits have left:
//
//	B = floor((L - P) / R)   for each of per_hour, per_day,
//	                         first_contact_per_hour, first_contact_per_day
//
// where L is what the store said is left, P this replica's degraded
// admissions not yet added to the store, R = Replicas; a limit the tenant
// does not have drops out, a shadowed one is not enforced. Without the store
// a message of n recipients passes only if n fits every B, and n comes off
// each: every recipient counts as a first contact, since the known-recipient
// memory cannot be read. The budget is refilled only by the store's next
// answer, never by a window rolling over during the outage. A tenant the
// store has not answered for since this replica started (or since its
// windowed limits changed) gets B = 0 for each first-contact limit it has
// and B = floor(DegradedFraction x quota / R) for each quota.
//
// Rate. rate x DegradedFraction / R per second and per replica, burst 1, in
// recipients (burst max_recipients) when the rate counts recipients, else
// messages; a tenant without a rate uses its hourly or daily quota spread
// evenly, or 1 message/s.
//
// Bound. With replicas i = 1..R, each having last heard L_i (or the no-state
// figures above), the fleet admits without the store, for one tenant over
// any number of outages until the store answers again:
//
//	D <= sum_i min_l floor(L_i,l / R)  <=  max_i min_l L_i,l   recipients
//
// and, in any outage, also no more than R x (1 + W x rate x DegradedFraction
// / R) rate units (messages, or recipients) in a degraded window W. When
// every replica last heard the current figures (a tenant in active use),
// that is no more than what the tenant's limits still allowed: a tenant
// whose first contacts are spent gets nothing. A replica whose figures are
// stale (others admitted since it last heard) can add what the others
// admitted since; a Replicas setting below the real fleet multiplies the
// bound by real/Replicas.
//
// Reconcile. A replica keeps per tenant what it admitted without the store,
// per UTC hour of spend (at most 26 records; older ones fold into the next),
// and adds it to the store (store.AddUsage: the quota counters of the
// tenant's quotas, and as first contacts for its first-contact budgets) at
// the tenant's next admission, before asking the store, and in the
// background for every tenant once any store call succeeds. A spend whose
// hour (or day) has ended by then is dropped from that counter: that window
// is never read again. The sent counter (the breaker's denominator) and the
// known-recipient memory are not updated: the breaker is stricter after an
// outage, and degraded recipients count as first contacts again. Until
// every replica has reconciled, the store can admit again up to what the
// others admitted without it (they reconcile on their first successful store
// call, so within milliseconds for a replica with traffic); a failed add is
// retried (an add whose answer timed out may count twice: never less).
//
// CheckTenant is step 1 alone (no I/O): front ends call it before reading
// a message (SMTP MAIL, HTTP before the body), so a refused tenant costs
// neither Redis nor body parsing. PeekRate looks at step 2 without taking a
// token: HTTP calls it before the body, so a tenant with less than one
// token (rates per recipient included, which are not cached) is refused
// unread. CheckRecipient (SMTP RCPT) reads the tenant and global
// suppression lists within CallTimeout; when the store fails there, or an
// outage is under way, the recipient passes and admission decides.
//
// Account spends the SES account's send rate, shared by replicas through
// leases (see Account); AccountSink applies it before the sink.
package limiter
