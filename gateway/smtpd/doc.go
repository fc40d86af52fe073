// Package smtpd is the SMTP submission front end of the gateway.
//
// It runs github.com/emersion/go-smtp with a Backend whose sessions hand every
// stage to gateway.Pipeline as the commands arrive: AUTH (PLAIN or LOGIN; the
// username is the tenant id, the password is the token) -> Authenticate, MAIL
// FROM -> CheckSender and CheckTenant (in process: a tenant frozen, or over a
// limit and in the limiter's cache, is refused here), each RCPT TO -> CheckRecipient and CheckSuppression
// (one store read of the tenant and global suppression lists: a suppressed
// address gets 550 5.1.1 after a hard bounce, 550 5.7.1 after a complaint
// or manually), DATA -> read the body under a size bound, CheckSize, then
// Submit (whose admission decides for the whole message: 451 4.7.1 when a
// rate, first-contact budget, breaker or freeze refuses, 452 4.7.1 for a
// quota, 451 4.3.0 when the policy store is unavailable).
//
// MAIL FROM:<> (the null sender) skips CheckSender: Submit holds the From
// header to the tenant's identities and the SES sink sends without a
// FromEmailAddress. X-SES-* header fields are consumed by the pipeline
// (gateway.PrepareMessage) as SES parameters, or refused with 554 5.7.1.
//
// Invariants:
//   - Nothing is accepted without AUTH: MAIL before a successful AUTH gets
//     530 5.7.0, so the server is never an open relay.
//   - AUTH is not a pass for the session's life: every MAIL and every end
//     of DATA re-checks the credential against the current token table and
//     policy, in process (gateway.Pipeline.Recheck). A token revoked or
//     past its rotation deadline, or a tenant removed from the policy, gets
//     535 5.7.8 and the session ends (go-smtp takes one AUTH per
//     connection: the client reconnects and authenticates again); a client
//     address no longer in the tenant's networks gets 550 5.7.1 and the
//     same end. A tenant frozen or changed by a reload is decided as it is
//     now (frozen: 451 4.7.1 at MAIL, the session stays). A message whose
//     DATA was in flight when the change landed is refused at its end and
//     never reaches the sink.
//   - AUTH and MAIL need TLS (STARTTLS or implicit TLS) unless the local
//     address of the connection is loopback (a sidecar on localhost) or the
//     operator set Options.AllowInsecureAuth. AUTH is not advertised where it
//     would be refused.
//   - 250 after DATA is written only once Submit returned a Result, that is,
//     once the sink returned a provider (SES) message id; the reply names both
//     ids.
//   - Every error of ours goes through one function, session.reply, which
//     maps gateway.Code to an SMTP reply in one table (codeReply), counts the
//     refusal once (gateway.Pipeline.Refused: at AUTH, MAIL, RCPT or DATA),
//     logs the cause through the pipeline's refusal throttle (a bounded
//     number of lines per tenant, or client address, and code; the others
//     counted in "suppressed"), and never logs a token or a message body. go-smtp answers
//     protocol matters itself: syntax and command order, the server-wide
//     SIZE at MAIL and recipient count at RCPT (452 4.5.3, advertised as
//     LIMITS RCPTMAX), over-long lines, idle timeouts.
//   - Every size, count and wait is bounded: message bytes (server-wide and
//     per tenant), message bytes held in memory by all sessions together
//     (Options.Budget: a budget shared with the HTTP front end; a body
//     is held about once: read into a gateway.MessageBuffer, not a buffer
//     grown by doubling, and prepared in place by the pipeline),
//     recipients, connections (in all, and per source), the time from
//     connect to AUTH, command and DATA read timeouts, an overall DATA
//     bound, the Submit deadline, a session's lifetime, failed AUTH
//     attempts per connection, log lines about refused connections (one a
//     second per reason, with a count of the others).
//   - One source cannot shut others out: it holds at most
//     MaxConnectionsPerSource connections (100; an IPv4 address, or an IPv6
//     /64; Unix-socket clients are not counted), under MaxConnections
//     (1000); one more gets 421 4.7.0 and is closed at once. A connection
//     must complete AUTH within AuthTimeout of connecting (30s; then
//     421 4.7.0), and before AUTH each command line must arrive whole within
//     PreAuthReadTimeout (10s), each reply be taken within it too.
//   - A command line that is not complete within its timeout ends the
//     session (421 4.4.2). go-smtp's deadline is per line, but bufio hands
//     it the part read so far as a whole line and go-smtp then starts a
//     fresh one, so a trickler would live forever; the connection is killed
//     at the deadline instead, and the session callbacks refuse to act on a
//     killed connection, so a partial line does nothing.
//   - A refused body (too large, over the memory budget) is read to its end
//     and dropped, so the connection stays usable. A body whose reading
//     fails (timeout, disconnect) ends the connection, so no body line is
//     ever read as a command.
//   - Shutdown stops accepting, answers idle sessions (before or after AUTH)
//     "421 4.3.2 Service shutting down" and closes them, lets a transaction
//     in flight finish (its reply, then that 421, then the close), and
//     closes everything when its context ends. The 421 goes over TLS when
//     the session is TLS; during a TLS handshake there is none. A session
//     past MaxSessionDuration closes without a reply.
//
// Line length: go-smtp's own line limit (Server.MaxLineLength) is kept at
// 2000, the doubled RFC 5321 limit. A message line of 999 to 2000 characters
// reaches gateway.PrepareMessage, which refuses it with 554 5.6.0 and the
// connection stays usable. A line over 2000 characters stops go-smtp's
// reader: the client gets 554 5.6.0 for the message, then go-smtp's
// "500 5.4.0 Too long line, closing connection", and the connection closes.
//
// Timeouts are socket deadlines, so they follow the real clock; Options.Now
// only stamps session ids.
package smtpd
