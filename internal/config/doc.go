// Package config reads and validates the policy file: tenants, their tokens
// (hashes only), identities, limits (rate, quotas, first-contact budget,
// per-domain rate, shadow mode, frozen flag), SES options (including the
// account's max send rate) and the store (Redis or embedded, timeouts,
// degraded mode, known-recipient memory). Secrets never come from the file:
// the Redis password and the recipient HMAC key come from the environment
// or a key file.
//
// Decoding is strict (decode.go): unknown keys, keys set twice and values of
// the wrong kind are errors, an empty file too. Every problem is reported at
// once, in file order, each naming its key and line in an operator's words
// (for example `tenants[1].limits.rate (line 12): want a number, got "fast"`);
// a value that does not read is reported once, without the checks of the
// default it leaves. Validation sits next to each type. A valid Policy
// builds immutable gateway.Tenants and the auth entries for the token
// registry.
package config
