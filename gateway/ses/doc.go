// Package ses is the production sink: it hands an accepted message to Amazon
// SES with the v2 SendEmail call (Raw content) and turns every SES answer
// into a gateway.Error.
//
// Invariants:
//   - Send returns a provider id only when SES returned a non-empty MessageId.
//   - SES routes on Destination, which is always the envelope recipients;
//     the message headers never decide where mail goes.
//   - Every call has a deadline (Options.Timeout, default 30 s).
//   - Retries are deliberate. SendEmail has no idempotency token, so the SDK
//     retries only failures after which SES certainly did not accept the
//     message: throttling (TooManyRequestsException, LimitExceededException,
//     but not the daily quota), a connection that could not be opened, or a
//     signature refused for clock skew. At most Options.MaxAttempts attempts
//     (default 3), with jittered backoff, and never a retry that would not
//     leave time for an attempt before the deadline. A 5xx, a dropped
//     connection or a timeout after the request was sent is NOT retried: it
//     becomes a temporary error (CodeUpstreamUnavailable) and the client
//     retries, which may deliver the message twice.
//   - A raw message of streamMinBytes (64 KiB) or more is never held
//     twice (a smaller one is copied once, in base64, by the SDK's own
//     serializer: cheaper than streaming it): the SDK serializes a placeholder
//     and a Serialize-step middleware replaces the body with one that
//     writes the message in base64 as it is read (rawbody.go), seekable for
//     the signer's payload hash and for retries. The bytes on the wire are
//     the SDK's own for the real message (tested byte for byte, and
//     against sestest's SigV4 and decoding); the placeholder, if it is not
//     found exactly once, fails the call before anything is sent. Only
//     with the SDK client (*sesv2.Client); another Client gets the
//     message in the input.
//   - classify holds the one table of the project from SES errors to
//     gateway codes. Client-visible messages are generic; SES's own text is
//     kept in Error.Cause for the log.
package ses
