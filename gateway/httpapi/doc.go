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
// (base64), disposition, content_id}], tags{name: value}}. Decoding is
// strict: unknown fields, wrong types and trailing data are 400 malformed,
// naming the field. "subject" must be present but may be empty; at least one
// of "text" and "html" must be present (either may be empty). Addresses are
// "Name <local@domain>" or "local@domain". Bcc recipients go only into the
// envelope, never into a header. Tags follow SES EmailTags rules and are
// only logged for now (the sink sets SES tags).
//
// message/rfc822 body: the envelope recipients are the repeatable query
// parameter "to" when given, else the To, Cc and Bcc header addresses; the
// sender is the query parameter "from", else the From header's address. The
// body goes to Submit as is, with EightBit set, since HTTP is 8-bit clean.
//
// Idempotency-Key (at most 255 printable ASCII characters) is accepted and
// logged; nothing is deduplicated yet, so a retried request sends twice.
//
// Sizes: a message/rfc822 body may be min(Options.MaxBodyBytes, the tenant's
// MaxMessageBytes) bytes; a JSON body a quarter more plus 64 KiB (JSON
// escapes), and the composed message must then fit the tenant's limit.
// Larger bodies are 413. Other limits are the Max* constants.
//
// Answers: 200 {"id", "message_id"}; errors {"error": {"code", "message",
// "recipient"}} with the code a gateway.Code name, or for HTTP's own
// refusals not_found (404), method_not_allowed (405, with Allow) and
// unsupported_media_type (415, also for any Content-Encoding). A value that
// could inject a header is 400 malformed with a message starting
// "header_injection:" and naming the field.
//
// Invariants:
//   - The token is read only from Authorization and is never logged; the
//     client address is the TCP peer (X-Forwarded-For is ignored).
//   - The body is read only after authentication, through
//     http.MaxBytesReader, with the tenant's size limit.
//   - Header injection is impossible: CR, LF and NUL are refused in every
//     value that reaches a header, and Compose re-checks its own output
//     (7-bit, CRLF only, lines of at most 998 characters).
//   - Every error answer is JSON {"error": {code, message, recipient}} made in
//     one function, writeError, whose status table covers every gateway.Code;
//     every 429 and 503 carries Retry-After.
//   - 200 means the sink returned a provider message id (Submit's promise).
package httpapi
