// Package sestest is a local server that speaks the Amazon SES v2 SendEmail
// wire protocol, for tests, benchmarks and trying sesgate without AWS.
//
// A Server is an http.Handler. It answers POST /v2/email/outbound-emails
// (rest-json, Raw or Template content) and GET /v2/email/account exactly as the
// aws-sdk-go-v2 sesv2 client expects, so the real SDK can be pointed at it
// with BaseEndpoint (or AWS_ENDPOINT_URL_SESV2) and static credentials.
// Start listens on 127.0.0.1:0 and returns the base URL.
//
// SetEvents makes the server publish SES events for the messages it
// accepts, as SNS would: after a delay, signed SNS notifications (Bounce,
// Complaint, Delivery; configuration-set or identity-notification format)
// are POSTed to a URL, for recipients whose local part starts with
// "bounce" or "complaint" and for a seeded fraction of the others. They are
// signed with a key made at first use, whose certificate SNSCertificatePEM
// returns and /_sestest/sns-cert.pem serves; their SigningCertURL is
// SNSCertURL, a real SNS host, so a gateway keeps its URL checks and only
// its injected certificate fetcher needs to know the test certificate.
//
// Invariants:
//   - Every API request is authenticated with Signature Version 4 against the
//     configured key pair, region and the service name "ses"; a wrong secret,
//     region or service, a stale date or a tampered body is refused with the
//     403 or 400 answer and x-amzn-ErrorType AWS would send.
//   - Requests are validated like SES: Raw or Template content (Template:
//     FromEmailAddress required, a TemplateName among Options.Templates when
//     that is set, else NotFoundException; recorded in Message.Template,
//     not rendered), at most 50
//     recipients, a raw message of at most 40 MiB, tag names and values of
//     [A-Za-z0-9_-] up to 256 characters.
//   - Memory is bounded: the request body, the number of recorded messages and
//     their total size all have limits; counters keep counting past them.
//   - Injected faults (errors, latency, hangs, a send-rate limit) use the
//     HTTP status and x-amzn-ErrorType of the real service so the SDK decodes
//     the typed error. They are set with methods safe for concurrent use and,
//     only when Options.EnableControl is set, over HTTP under /_sestest/
//     (no signature needed there).
//   - Event publishing never blocks a send: notifications wait in a bounded
//     queue (overflow is dropped and counted) for one publisher goroutine,
//     which Close stops.
package sestest
