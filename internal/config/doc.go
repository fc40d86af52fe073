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
//
// Plans (plans.go) are named limit templates: a tenant with `plan: NAME`
// starts from the plan's limits and breaker settings, and each key it
// writes itself wins (known from the decoder's key positions, so a written
// 0 wins too); after Parse a Tenant holds the effective values, checked by
// the tenant checks, and a plan's own values are checked (with the same
// checks) and reported once, at plans.NAME. ParseTenant decodes ONE tenant
// entry (the admin API's tenants, JSON or YAML) with the very decoder and
// checks of the file, so a key the file's tenants gain is accepted there
// at once, with the same messages minus the "tenants[i]." prefix.
package config
