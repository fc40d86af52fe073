// Package drill is the leaked-token drill of sesgate-bench: a scenario
// (tenants with limits and legitimate background traffic, and one attacker
// holding a leaked token of a victim tenant, mailing a list where a set
// fraction of the addresses bounce), the policy file it implies, the traffic
// that plays it against a gateway over HTTP, a relay that records the SES
// events on their way to the gateway's SNS endpoint, and the accounting that
// turns what SES received, what the senders were answered and when the
// events arrived into a per-tenant report and a verdict.
//
// The verdict fails when the attacker got more messages to SES than the
// scenario's bound (default: the victim's burst plus its first-contact
// budget), when the victim's breaker did not refuse within MaxTripDelay of
// the moment its threshold was crossed, when any other tenant was refused
// for breaker or freeze reasons, or when the account's bounce or complaint
// rate, as SES would count them (over the recipients SES accepted, all
// tenants), reached its limit.
//
// The threshold moment is computed, not guessed: package breaker, with the
// victim's configuration, is replayed over SES's record of the victim's
// sends (at the time SES accepted them) and the bounce events (at the time
// the relay passed them to the gateway); its first trip is the crossing.
//
// Invariants:
//   - Scenario files are strict: unknown keys, out-of-range values and
//     missing pieces are errors, all reported at once.
//   - Every run is bounded: the scenario's duration caps the traffic,
//     every request has a deadline, and the number of senders, workers and
//     recipients has a limit.
//   - Bounces and complaints are decided by the address (local part
//     "bounce..." or "complaint...", the SES test server's rule), so the
//     account's rates are counted exactly from SES's record, whether or not
//     an event arrived in time.
//   - Memory is bounded: outcomes are aggregated per sender and code, and
//     the relay keeps at most MaxEvents events (counting the ones it drops).
package drill
