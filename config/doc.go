// Package config reads and validates the policy file: tenants, their tokens
// (hashes only), identities, limits and SES options.
//
// Decoding is strict: unknown keys and values of the wrong type are errors,
// every problem is reported at once, and each names the key it is about
// (for example `tenants[1].limits.rate: must be >= 0`). Validation sits next
// to each type. A valid Policy builds immutable gateway.Tenants and the auth
// entries for the token registry.
package config
