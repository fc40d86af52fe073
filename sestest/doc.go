// Package sestest is a local server that speaks the Amazon SES v2 SendEmail
// wire protocol, for tests, benchmarks and trying sesgate without AWS.
//
// A Server is an http.Handler. It answers POST /v2/email/outbound-emails
// (rest-json, Raw content only) and GET /v2/email/account exactly as the
// aws-sdk-go-v2 sesv2 client expects, so the real SDK can be pointed at it
// with BaseEndpoint (or AWS_ENDPOINT_URL_SESV2) and static credentials.
// Start listens on 127.0.0.1:0 and returns the base URL.
//
// Invariants:
//   - Every API request is authenticated with Signature Version 4 against the
//     configured key pair, region and the service name "ses"; a wrong secret,
//     region or service, a stale date or a tampered body is refused with the
//     403 or 400 answer and x-amzn-ErrorType AWS would send.
//   - Requests are validated like SES: Raw content required, at most 50
//     recipients, a raw message of at most 40 MiB, tag names and values of
//     [A-Za-z0-9_-] up to 256 characters.
//   - Memory is bounded: the request body, the number of recorded messages and
//     their total size all have limits; counters keep counting past them.
//   - Injected faults (errors, latency, hangs, a send-rate limit) use the
//     HTTP status and x-amzn-ErrorType of the real service so the SDK decodes
//     the typed error. They are set with methods safe for concurrent use and,
//     only when Options.EnableControl is set, over HTTP under /_sestest/
//     (no signature needed there).
package sestest
