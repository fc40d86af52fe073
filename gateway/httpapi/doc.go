// Package httpapi is the HTTP front end of the gateway: POST /v1/messages
// with a bearer token, plus /healthz and /readyz.
//
// A message arrives either as JSON (application/json), which the package
// composes into a MIME message itself (see Compose), or as a raw RFC 5322
// message (message/rfc822). Both become one gateway.Envelope handed to
// gateway.Pipeline.Submit.
//
// JSON body: {from, to[], cc[], bcc[], reply_to[], subject, text, html,
// headers{name: value}, attachments[{filename, content_type, content
// (base64), disposition, content_id}], tags{name: value},
// configuration_set, list_management{contact_list, topic}}. Decoding is
// strict: unknown fields, wrong types and trailing data are 400 malformed,
// naming the field. "subject" must be present but may be empty; at least one
// of "text" and "html" must be present (either may be empty). Addresses are
// "Name <local@domain>" or "local@domain". Bcc recipients go only into the
// envelope, never into a header. tags, configuration_set and
// list_management are the message's gateway.SESParams (SES EmailTags,
// ConfigurationSetName, ListManagementOptions); X-SES-* fields in headers
// are read by the pipeline like a raw message's and merged with them; the
// pipeline refuses what the tenant may not use (400 bad_parameter).
//
// message/rfc822 body: the envelope recipients are the repeatable query
// parameter "to" when given, else the To, Cc and Bcc header addresses; the
// sender is the query parameter "from", else the From header's address. The
// body goes to Submit as is, with EightBit set, since HTTP is 8-bit clean.
//
// Idempotency-Key (1 to 255 printable ASCII characters, once; else 400): once
// the body is read and well formed, the request is claimed in the shared
// store (Options.Idempotency) under its tenant with its fingerprint (SHA-256
// of method, path, query, media type and body) for a lease of the submit
// timeout plus 30 s. A 200 answer is stored for gateway.IdempotencyTTL (24 h)
// and given again, byte for byte with Idempotent-Replayed: true, to a
// repeat with the same fingerprint on any replica, which sends nothing. A
// repeat while the first is unanswered is 409 idempotency_in_flight
// (Retry-After); another fingerprint is 422 idempotency_key_reused; a failed
// request releases the key; a store call that fails is 503
// store_unavailable and nothing is sent. Without a store a keyed request
// is 400.
//
// Sizes: a message/rfc822 body may be min(Options.MaxBodyBytes, the tenant's
// MaxMessageBytes) bytes; a JSON body a quarter more plus 64 KiB (JSON
// escapes), and the composed message must then fit the tenant's limit.
// Larger bodies are 413. Other limits are the Max* constants.
//
// A tenant frozen, or over a limit and in the limiter's in-process cache
// (Pipeline.CheckTenant), or whose rate has no room for even one message
// (Pipeline.PeekRate: the pre-limiter, rates per recipient included), is
// refused right after authentication, before the body is read.
//
// Memory: before any of its body is read, a request takes from the
// process's memory budget (Options.Budget, one gateway.MemBudget shared
// with the SMTP front end, `--mem-budget`) what it will hold: its
// Content-Length, or the body limit when it declares none (chunked); a
// JSON request three times that (the body, its decoded fields and the
// composed message). It gives it back once answered. A request that does
// not fit is answered 503 server_busy with Retry-After at once. A
// message/rfc822 body is held once: read into a slice of its declared
// length, or into a gateway.MessageBuffer when chunked, and handed to the
// pipeline to be prepared in place (Envelope.DataOwned), and the SES sink
// streams it into its request without a base64 copy, so a message costs
// about its size (TestLargeRawMessageAllocations counts it). A JSON
// request costs about five times its composed message in allocations (the
// decoder's buffer grown to hold the request, the decoded attachments,
// decoded from base64 straight out of that buffer, the composed message;
// TestLargeJSONMessageAllocations). One tenant has at most Options.MaxRequestsPerTenant
// requests in flight (default 128, `--http-max-requests-per-tenant`); one
// more is 429 too_many_requests with Retry-After, before its body is read.
// A body refused unread is not waited for: net/http's drain of it gets one
// second, and a chunked one closes the connection.
//
// Connections: LimitListener bounds the listener (the API and the SNS
// endpoint share it) to MaxConns open at once (default 1024,
// `--http-max-conns`; more wait in the kernel's backlog) and
// MaxConnsPerSource from one source, an IPv4 address or an IPv6 /64
// (gateway.SourceKey; default 256,
// `--http-max-conns-per-source`; more are answered 503
// too_many_connections with Retry-After and closed). NewServer sets
// ReadHeaderTimeout (10 s), ReadTimeout (2 min), WriteTimeout and
// IdleTimeout (2 min) and MaxHeaderBytes (64 KiB).
//
// Answers: 200 {"id", "message_id", "rejected"}; errors {"error": {"code",
// "message", "recipient", "rejected"}} with the code a gateway.Code name.
// "rejected" is [{"recipient", "code", "message"}]: suppressed recipients
// (recipient_suppressed_bounce, recipient_suppressed) are dropped from the
// send and listed in the 200 answer; when none is left the answer is 422
// with the list. Admission refusals are 429 + Retry-After (rate_limited,
// quota_exceeded, first_contact_limited, breaker_open) or 503 +
// Retry-After (tenant_frozen, store_unavailable); idempotency refusals 409
// + Retry-After (idempotency_in_flight) and 422 (idempotency_key_reused).
// For HTTP's own
// refusals not_found (404), method_not_allowed (405, with Allow),
// unsupported_media_type (415, also for any Content-Encoding),
// too_many_requests (429 + Retry-After), server_busy and
// too_many_connections (503 + Retry-After). A value that
// could inject a header is 400 malformed with a message starting
// "header_injection:" and naming the field.
//
// Invariants:
//   - The token is read only from Authorization and is never logged; the
//     client address is the TCP peer (X-Forwarded-For is ignored).
//   - The body is read only after authentication and the tenant's
//     in-process refusals, once its size is taken from the memory budget,
//     through http.MaxBytesReader, with the tenant's size limit. Message
//     bytes in memory stay within the budget (plus the prepared copies).
//   - Every count is bounded: connections (all, per source), a tenant's
//     requests in flight, message bytes in memory.
//   - Header injection is impossible: CR, LF and NUL are refused in every
//     value that reaches a header, and Compose re-checks its own output
//     (7-bit, CRLF only, lines of at most 998 characters).
//   - Every error answer is JSON {"error": {code, message, recipient}} made in
//     one function, writeError, whose status table covers every gateway.Code;
//     every 409, 429 and 503 carries Retry-After. writeError also counts a refused
//     POST /v1/messages once (gateway.Pipeline.Refused) and logs through the
//     pipeline's refusal throttle, keyed by tenant (or client address) and
//     code, so a flood writes a bounded number of lines.
//   - 200 means the sink returned a provider message id (Submit's promise),
//     or is the stored 200 of an earlier request with the same
//     Idempotency-Key and fingerprint.
//   - A keyed request is never sent without its claim in the store.
package httpapi
