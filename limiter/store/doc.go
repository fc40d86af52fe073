// Package store defines the gateway's shared state: the one admission
// decision per message, suppression lists, breaker records and freeze
// flags. store/redisstore implements it on Redis (standalone, Sentinel or
// Cluster), store/boltstore in one process on a bbolt file; store/storetest
// is the conformance suite both pass, with an injected clock.
//
// # Admission
//
// Admit(AdmitRequest{Tenant, Recipients, Limits}) decides for a whole
// message, in this order, and stops at the first refusal:
//
//  1. frozen: the global flag or the tenant's flag -> ReasonFrozen
//     (RetryAfter FrozenRetry, cacheable FrozenCache).
//  2. breaker: forced_open -> ReasonBreakerOpen (FrozenRetry); open and
//     now < open_until -> ReasonBreakerOpen until open_until; open past
//     open_until reads as half_open.
//  3. suppression: recipients on the tenant's or the global list (live,
//     i.e. not expired) are dropped and returned in Decision.Suppressed;
//     none left -> ReasonSuppressed. Dropped recipients count nowhere.
//     half_open: the probe budget must cover the remaining recipients, else
//     ReasonBreakerOpen (ProbeRetry).
//  4. first-contact budget: a recipient is new unless the tenant mailed it
//     within the known-recipient memory (KnownTTL, default 180 days; the
//     memory holds a keyed HMAC of the lowercased address, never the
//     address). New recipients count against first_contact_per_hour and
//     first_contact_per_day (UTC clock windows).
//     4b. first-contact window (Limits.FirstContactWindow, window.go):
//     outstanding first contacts (no SES event yet) plus the message's
//     new ones must fit the tenant's window, clocked by Delivery events
//     through SettleFirstContacts -> ReasonFirstWindow. Its bookkeeping
//     (expired entries dropped, a held counter) is written even on a
//     refusal; it never limits anything.
//  5. quotas: remaining recipients against per_hour and per_day (UTC clock
//     windows, fixed: at a boundary a tenant may use two windows' worth
//     within a short time).
//  6. rate: GCRA with burst; cost 1 per message, or per recipient with
//     RatePerRecipient. A cost above the burst is ReasonTooMany.
//  7. per-recipient-domain rate: GCRA per lowercased domain, cost = the
//     message's recipients at that domain.
//  8. commit: quota and first-contact counters, known-recipient memory
//     (refreshed for every recipient sent to), GCRA TATs, half-open probe
//     budget (decremented), and the per-minute sent counter.
//
// The whole message is admitted or refused; a refusal commits nothing, so no
// recipient beyond a limit ever passes, whatever the number of replicas.
// (One exception, conservative: on Redis the global state is read in
// parallel with the tenant's script, so a message refused only by the
// global freeze flag, or whose every recipient is on the global list, has
// been counted by the tenant's script. It never counts less than it admits.)
//
// Decision.Remaining is what per_hour, per_day, first_contact_per_hour and
// first_contact_per_day have left after the decision (Unlimited for a limit
// the tenant does not have), computed in the same script call or
// transaction: the limiter's last known budget for its degraded mode. It is
// filled from step 4 on, admitted or refused; a refusal at steps 1-3 reads
// no counter and leaves it unknown.
//
// AddUsage(tenant, at, Usage) is the limiter's reconcile after an outage:
// it adds what a replica admitted without the store to the quota and
// first-contact counters of the hour and day that contain at, if that window is still the store's current one (a past
// window is never read again, so its share is dropped; an at ahead of the
// store's clock counts now). It is one script call on the tenant's slot
// (Redis) or one transaction (embedded), outside the hot path.
//
// A limit named in Limits.Shadow is evaluated and, when it would refuse,
// reported in Decision.Shadowed instead; the message goes on and is counted.
//
// Decision.RetryAfter says when the same message may pass. Decision.CacheFor
// says how long the refusal holds for every message of the tenant (zero
// when a smaller message or known recipients could pass now): the caller
// may refuse from memory until then without asking the store.
//
// Clock: the Redis store uses Redis's own TIME inside its script, so every
// replica uses one clock; the embedded store uses the process clock. Both
// take an injected clock for tests.
//
// # Breaker and freeze contract (for the feedback and admin packages)
//
// A tenant's breaker record is {State, OpenUntil, Probes}: state closed,
// open, half_open or forced_open; OpenUntil in unix milliseconds; Probes the
// recipients a half-open breaker may still admit. The feedback package owns
// the transitions and writes them with SetBreaker (open with OpenUntil and
// the probe budget for the half-open phase that follows; half_open; closed
// after good probes; forced_open after repeated trips). Admission only reads
// it, moves open to half_open once OpenUntil has passed, and spends Probes.
// On Redis the record is the hash gw:{t:<tenant>}:brk with fields state,
// open_until and probes; SetBreaker writes only these three, so the feedback
// package may keep its own fields (trip counts, generation) in the same
// hash, and it may write the hash directly (HSET, then WAIT for a replica)
// as long as it keeps these three fields' meaning.
//
// Beyond these, the record has a warning flag (Redis field "warning" = "1";
// embedded key <prefix>warn): while it is set, admission halves the
// tenant's GCRA rate (WarningRateFactor; the burst stays). Both stores also offer, for the
// feedback wiring (package guard): GetBreakerRecord and UpdateBreakerRecord
// (one atomic read-modify-write of the whole record incl. the feedback
// side's opaque data: WATCH/MULTI on Redis, then WAIT 1 100 for a trip when
// the server has replicas; one transaction embedded), SentMinutes,
// RememberMessages/LookupMessage (SES MessageId -> tenant, with TTL),
// ClaimKey/ReleaseKey (SET NX with TTL) and PublishBreaker/SubscribeBreakers
// (Redis pub/sub channel gw:brk:changed; in process for the embedded store).
//
// SetFrozen(tenant, true) is the operator's kill switch; tenant "" freezes
// every tenant. The policy file's frozen flag is separate and checked in
// process (gateway.Tenant.Frozen).
//
// Sent(tenant, from, to) sums gw:{t:<tenant>}:sent:<unix minute> counters:
// recipients admitted per minute, the breaker's denominator, kept SentTTL
// (default SeriesSpan, 6 h: the dashboard's longest chart; the breaker
// reads 2 h).
//
// DashboardStore (dashboard.go) is the dashboard's fleet-wide state, never
// written on the send path: RecordAccepted writes the "accepted" status
// events with the recipient index (gw:rcpt:<Keyer hash>, the last
// MaxRecipientMessages per address, the status TTL) in one round trip (the
// embedded store keeps these lists in a compact append-only encoding and
// still reads the JSON of earlier versions; its RememberAccepted also
// writes the attribution records in the same transaction);
// AddRefusals/Refusals the per-minute refusal counters by tenant and reason
// (kept SeriesSpan past their hour); AppendFeed/Feed the shared feed
// (capped at MaxFeedEvents).
//
// # Operator state (Ops)
//
// Both stores also implement Ops, the admin API's state: sending tokens
// minted through the API (key id and SHA-256 only; revocations and rotation
// deadlines also for the policy file's key ids), who froze what and why,
// the audit log (the newest entries, capped), and a change generation. On
// Redis these are the global-slot keys gw:{g}:tok, gw:{g}:tok:rev,
// gw:{g}:tok:exp, gw:{g}:tok:used, gw:{g}:freeze, gw:{g}:audit (a capped
// list) and gw:{g}:gen; Bump increments the generation and publishes it on
// the channel sesgate:changes, which every replica subscribes to (and polls
// the generation every second in case a publication is lost).
//
// # Tenants of the admin API and change logs
//
// TenantStore (tenants.go) keeps the tenants created through the admin
// API as their entries (opaque JSON); every create, update and delete
// stamps the record with the next version of one counter, a delete leaves
// a tombstone, and ChangedTenants returns what changed after a version.
// TokenLog does the same for the token records (CreateToken, RevokeToken,
// ExpireToken; not TouchTokens). So a replica applies one change of
// 100,000 tenants or tokens by reading that one record. On Redis the
// tenants live in the slot {tn} (gw:{tn}:tenants, :ver, :ids, :seq; one
// script per change) and the token log beside the tokens (gw:{g}:tok:ver,
// gw:{g}:tok:seq); ListTokens reads with HSCAN pages.
//
// # Suppression
//
// Lists are per tenant and global (tenant ""), keyed by the lowercased
// address, with reason (hard-bounce, complaint, manual), time added and an
// optional expiry. CheckSuppressed reads both lists for a few addresses (the
// SMTP front end calls it at every RCPT); Admit checks them again for the
// whole message. A hard bounce maps to gateway.CodeSuppressedBounce (SMTP
// 550 5.1.1), the others to gateway.CodeSuppressed (550 5.7.1).
package store
