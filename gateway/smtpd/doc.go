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
// Invariants:
//   - Nothing is accepted without AUTH: MAIL before a successful AUTH gets
//     530 5.7.0, so the server is never an open relay.
//   - AUTH and MAIL need TLS (STARTTLS or implicit TLS) unless the local
//     address of the connection is loopback (a sidecar on localhost) or the
//     operator set Options.AllowInsecureAuth. AUTH is not advertised where it
//     would be refused.
//   - 250 after DATA is written only once Submit returned a Result, that is,
//     once the sink returned a provider (SES) message id; the reply names both
//     ids.
//   - Every error of ours goes through one function, session.reply, which
//     maps gateway.Code to an SMTP reply in one table (codeReply), logs the
//     cause, and never logs a token or a message body. go-smtp answers
//     protocol matters itself: syntax and command order, the server-wide
//     SIZE at MAIL and recipient count at RCPT (452 4.5.3, advertised as
//     LIMITS RCPTMAX), over-long lines, idle timeouts.
//   - Every size, count and wait is bounded: message bytes (server-wide and
//     per tenant), message bytes held in memory by all sessions together
//     (Options.Budget: a budget shared with the HTTP front end),
//     recipients, connections, command and DATA read timeouts, an overall
//     DATA bound, the Submit deadline, a session's lifetime, failed AUTH
//     attempts per connection.
//   - A refused body (too large, over the memory budget) is read to its end
//     and dropped, so the connection stays usable. A body whose reading
//     fails (timeout, disconnect) ends the connection, so no body line is
//     ever read as a command.
//   - Shutdown stops accepting, closes idle sessions, lets a transaction in
//     flight finish (its reply is written, then the connection closes), and
//     closes everything when its context ends.
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
