// Package guard wires the SES feedback into the running gateway on the
// shared store: it is the feedback.Processor that turns events into
// suppressions and breaker decisions, the breakers' keeper for operators
// (Status, Reset, ForceOpen, MinuteCounts and AccountStatus; ErrUnknownTenant for a
// tenant without a breaker config), the attribution memory (SES MessageId
// -> tenant), the shared duplicate check, the trip propagation to every
// replica and the alert webhook.
//
// Per event (ProcessEvent):
//   - permanent bounces and complaints put the recipients on the
//     suppression list (global or per tenant, Options.SuppressionScope),
//     with reason, time and optional expiry; transient bounces are only
//     counted;
//   - hard bounces and complaints update the tenant's breaker in one atomic
//     read-modify-write of its store record (WATCH/MULTI on Redis, one
//     bbolt transaction embedded) that runs breaker.Step: the
//     breaker.Snapshot and the trip history (store.Trip) live in the
//     record's data, the denominator is fed from the store's per-minute
//     sent counters (the minutes already fed are remembered in the same
//     data, so a recipient is never counted twice), the observation is
//     made by mail time and event time, and the admission fields (state,
//     open_until, probes, warning) are written so the one admission call
//     enforces them; the same data keeps the hard bounces and complaints
//     by send minute for 6 hours (store.SeriesSpan), which no trip or reset clears
//     (MinuteCounts, AccountStatus: the dashboard's series);
//   - the account guard (when configured) gets the same inputs over all
//     tenants; when it trips it sheds the worst tenants (RankByBounces),
//     forcing their breakers open until an operator resets them, until
//     the remaining tenants' bounce rate is under the account line. The
//     account record itself refuses nothing: only the shed tenants stop;
//   - the event is added to its message's status record (StatusStore,
//     read by the apps' GET /v1/messages/{id}; Remember records
//     "accepted", in the same write as the attribution records when one
//     store keeps both and implements RememberAcceptedStore: the embedded
//     store then commits each batch once), and the Notifier (package limiter/webhook) queues it,
//     the suppressions it made and any breaker move for the tenant's
//     webhooks; neither can fail the event (failures are logged).
//
// Invariants:
//   - A trip is written before it is announced; on Redis with replicas the
//     write is followed by WAIT 1 100 on the same connection.
//   - Every replica learns a change within a second: a pub/sub announcement
//     and a 1 s check of the records of the tenants active on it; a tenant
//     whose breaker is open or forced open is refused from the limiter's
//     local cache (limiter.Shared.Deny), so the first message after the
//     trip is refused without a store call.
//   - Label sets are bounded by the configured tenants; the alert queue,
//     the attribution batch and the trip history are bounded; nothing here
//     blocks the send path (the attribution write and the alerts are
//     asynchronous and drop, counted, when their queue is full).
package guard
