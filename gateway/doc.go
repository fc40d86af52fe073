// Package gateway is the sending pipeline shared by every front end.
//
// A front end (SMTP in gateway/smtpd, HTTP in gateway/httpapi, the SES API
// in gateway/sesapi) authenticates a
// client to a Tenant, builds an Envelope and hands it to the Pipeline, which runs
// the policy stages cheapest first (source network, sender identity, recipients,
// message, rate) and then the Sink. Every failure is an *Error carrying a Code;
// each front end maps a Code to its wire answer in exactly one place.
//
// Invariants:
//   - Submit returns a nil error only after the Sink returned a provider message
//     id (for SES, the MessageId). Anything else is an *Error the client can act on.
//   - Envelope recipients, not message headers, decide where mail goes; the Bcc
//     header never leaves the gateway.
//   - Every address in From, Sender, Resent-From and Resent-Sender is an
//     identity of the tenant (refused with CodeSenderNotAllowed naming the
//     field otherwise); Return-Path never leaves the gateway (SES sets its
//     own from the envelope sender).
//   - No X-SES-* header field reaches the sink: the three SES reads from an
//     app (configuration set, message tags, list management) become
//     Envelope.SES, merged with the front end's parameters and checked
//     against the tenant (Tenant.CheckSESParams) before the limiter; every
//     other one (identity ARNs) is refused (CodeBadParameter).
//   - An empty envelope sender is the null sender: the From header, held to
//     the tenant's identities like any message's, is the sender.
//   - An envelope with Template content (SES renders it) has no Data: its
//     sender is the checked envelope From, its template's From mailbox must
//     carry that address, and its headers may not name an originator, a
//     destination or an X-SES-* field (Template.Check).
//   - Client-visible text never contains internal detail; the cause is kept in
//     Error.Cause for the log.
//   - Every refusal is counted once (Options.Observe): Submit counts its own,
//     a front end counts the others through Pipeline.Refused in its one
//     error place. Refusal log lines go through Options.Refusals
//     (gateway/logthrottle), bounded per tenant or client address and code;
//     the audit line of an accepted message is never dropped.
//   - A session that lives across messages (SMTP) decides each message on the
//     credential and tenant as they are now: Pipeline.Login at AUTH,
//     Pipeline.Recheck (in process, through the Authenticator's
//     CredentialLookup) before each message.
//   - A message is held about once: a front end reads a body of unknown
//     size into a MessageBuffer (never a buffer grown by doubling) and
//     hands it over (Envelope.DataOwned), and Submit then prepares it in
//     place (PrepareMessageInPlace) instead of copying it. The memory the
//     front ends hold together is bounded by one MemBudget.
package gateway
