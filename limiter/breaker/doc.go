// Package breaker is the bounce and complaint circuit breaker: a state
// machine driven by counts, not by calls, used once per tenant and once for
// the whole SES account (the account guard).
//
// It is pure functions of (config, snapshot, time, inputs): Step takes a
// Config, a Snapshot, the time and the Observations (recipients sent, by
// send time; hard bounces and complaints, attributed both to the minute the
// mail was sent, so numerator and denominator describe the same mail, and
// to the minute the event arrived, for fast bursts whose send-time rate
// lags) and returns the next Snapshot and the Changes. Reset and ForceOpen
// are the operator's commands, Snapshot.Stats the window sums, Allow the
// model of admission, RankByBounces the account guard's order of shedding.
// The caller keeps the snapshot (package guard: in the store's breaker
// record, updated in one atomic read-modify-write) and acts on the changes.
// Config documents the rules; TenantDefaults and AccountDefaults give their
// defaults.
//
// States (store.BreakerState): closed (admits), open (refuses until
// OpenUntil, then half_open), half_open (admits ProbeRecipients, then
// closes or reopens on their outcome), forced_open (refuses until an
// operator resets it). A warning level, on while closed, tells the caller
// to halve the tenant's rate.
//
// Invariants:
//   - Pure logic: no I/O, no clock, no shared state; a snapshot passed in
//     is never modified. The Snapshot is serializable (state, open_until in
//     unix ms, probe_budget, and the window buckets) for a store to
//     persist and its admission call to read.
//   - Memory is bounded by the configured windows (at most 1,440 minute
//     buckets and 168 hour buckets).
//   - A trip starts new windows: the mail that tripped it is judged, and
//     late events for mail sent before the trip are ignored.
//   - Each trip within ForceWindow doubles the open time (up to
//     MaxOpenFor); the ForceAfter-th forces it open.
package breaker
