// Package config reads and validates the policy file: tenants, their tokens
// (hashes only), identities, limits (rate, quotas, first-contact budget,
// per-domain rate, shadow mode, frozen flag), SES options (including the
// account's max send rate) and the store (Redis or embedded, timeouts,
// degraded mode, known-recipient memory). Secrets never come from the file:
// the Redis password and the recipient HMAC key come from the environment
// or a key file.
//
// Decoding is strict: unknown keys and values of the wrong type are errors,
// every problem is reported at once, and each names the key it is about
// (for example `tenants[1].limits.rate: must be >= 0`). Validation sits next
// to each type. A valid Policy builds immutable gateway.Tenants and the auth
// entries for the token registry.
package config
