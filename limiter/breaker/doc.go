// Package breaker is the bounce and complaint circuit breaker: a state
// machine driven by counts, not by calls, used once per tenant and once for
// the whole SES account (the account guard).
//
// Inputs are recipients sent (RecordSent, by send time), and hard bounces
// and complaints (Observe), attributed both to the minute the mail was sent
// (so numerator and denominator describe the same mail) and to the minute
// the event arrived (for fast bursts, whose send-time rate lags). The rules
// and their defaults (TenantDefaults, AccountDefaults) follow
// anchors-perf.md section 4.
//
// States: closed (admits), open (refuses until OpenUntil, then half_open),
// half_open (admits ProbeRecipients, then closes or reopens on their
// outcome), forced_open (refuses until an operator calls Reset). A warning
// level, on while closed, tells the caller to halve the tenant's rate.
//
// Invariants:
//   - Pure logic: no I/O, time from the injected clock only, state in a
//     serializable Snapshot (state, open_until in unix ms, probe_budget,
//     and the window buckets) that a store persists and its admission
//     call reads.
//   - Memory is bounded by the configured windows (at most 1,440 minute
//     buckets and 168 hour buckets).
//   - A trip starts new windows: the mail that tripped it is judged, and
//     late events for mail sent before the trip are ignored.
//   - Each trip within ForceWindow doubles the open time (up to
//     MaxOpenFor); the ForceAfter-th forces it open.
//   - OnStateChange runs after the lock is released, so it may call the
//     Breaker.
package breaker
