// Package integration holds the tests that run whole gateway replicas
// (auth, pipeline, shared limiter, SMTP and HTTP front ends) against real
// Redis servers started by internal/redistest: exactness across replicas on
// a standalone Redis and on a Cluster, the first-contact budget, suppression
// at RCPT and per recipient, Redis killed and scripts flushed under load,
// the over-limit cache, and the admission benchmarks quoted in
// docs/STORE.md; and, without Redis, the SES sink sending to sestest whose
// signed SNS bounces trip per-tenant breakers. It has no non-test code
// besides this comment.
package integration
