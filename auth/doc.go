// Package auth turns app tokens into tenants.
//
// A token looks like sg_<keyid>_<secret>: the key id (48 random bits) finds the
// record without scanning, the secret carries 192 random bits. Only the SHA-256
// of the whole token is stored; because tokens are long random strings, a fast
// hash is enough (no password stretching needed) and verification costs well
// under a microsecond. Comparison is constant time.
//
// Failed attempts are throttled per (source address, key id) for key ids
// that exist, and per source address for everything else (IPv6 sources per
// /64), so a client guessing secrets or key ids is cut off quickly. The
// source's budget never refuses a known key id, and a key id's budget is
// that source's alone: one app's wrong token, or an attacker behind the same
// NAT, cannot lock out another app's correct token, nor the same app's from
// another address. The throttle table (both kinds of entries) is bounded in
// size.
// The Registry's token table is swapped atomically, so a policy reload or a
// revocation takes effect for the next attempt without a restart. Open
// sessions see it too: a session keeps CredentialRef (key id and hash, never
// the token) and Lookup resolves it in the current table before each
// message, without I/O and without counting a failure.
package auth
