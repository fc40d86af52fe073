// Package feedback ingests Amazon SES events (bounces, complaints,
// deliveries and the rest) and hands each one, parsed, checked and
// attributed to its tenant, to a Processor.
//
// Two ways in:
//   - an SNS HTTPS subscription: NewSNSHandler returns the http.Handler;
//   - an SQS queue subscribed to the SNS topic: SQSConsumer long-polls it.
//
// Both formats of SES are parsed (ParseEvent): configuration-set event
// publishing (eventType, with mail.tags) and identity notifications
// (notificationType, without tags). An event is attributed by the EmailTags
// the sink sets (ses.TagTenant, ses.TagID) and, when they are missing, by a
// MessageLookup from the SES MessageId remembered at send time.
//
// Invariants:
//   - Nothing reaches the Processor unless it passed every check: for SNS,
//     the TopicArn allow list, the SigningCertURL pattern (checked before
//     anything is fetched), the signature (SignatureVersion 1 or 2 over the
//     documented string to sign), the message age and the duplicate check;
//     then the SES event parses and its tenant is known.
//   - The SNS certificate is trusted because of where it comes from (https
//     on sns.<region>.amazonaws.com, or .amazonaws.com.cn for a China
//     region, the region of AWS's shape such as us-east-1 or us-gov-west-1,
//     never any other label; path ending .pem); it is not chain
//     verified (SNS serves the leaf alone). Only the CertFetcher is
//     injectable; the URL checks always run.
//   - Every size, count and timeout is bounded: the request body (413 for
//     larger ones, without reading them; read through http.MaxBytesReader
//     within SNSOptions.BodyTimeout, default 5 s, or cut with 408), the
//     bodies held at once (SNSOptions.Budget, default 32 MiB, and
//     MaxBodiesPerSource, default 16: over either, 503 + Retry-After before
//     the body is read, which SNS retries), the certificate download and
//     cache, the duplicate cache, the recipients of an event. The
//     endpoint's budget is its own, not the front ends' message budget:
//     anyone can post here. Connections are bounded by the listener it is
//     served from (httpapi.LimitListener).
//   - The HTTP answer is 5xx only when a retry can help (a Processor,
//     MessageLookup, duplicate store or certificate host failure, or the
//     endpoint's body budget full), since SNS retries nothing else; forged, stale, malformed or unattributable input
//     gets a 4xx, a duplicate a 200. Every outcome is logged and counted.
//   - An SQS message is deleted only after it was processed, or when it can
//     never be (it is then logged and counted as refused).
package feedback
