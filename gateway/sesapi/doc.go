// Package sesapi is sesgate's drop-in for apps written against the SES API:
// the SES v2 REST-JSON API (POST /v2/email/outbound-emails SendEmail, GET
// /v2/email/account GetAccount, POST /v2/email/outbound-bulk-emails
// SendBulkEmail) and the SES v1 query API (POST / with Action SendEmail,
// SendRawEmail or GetSendQuota), on the HTTP listener beside
// gateway/httpapi. An app switches by changing its endpoint URL and its
// credentials to a sesgate AWS key (auth: an access key id whose secret is
// derived from the server key).
//
// Every request is signed with SigV4 and verified here (sigv4.go):
// the Authorization header is parsed, the canonical request rebuilt from
// the client's SignedHeaders (host must be among them), the payload hash
// (x-amz-content-sha256 when sent, else the body's SHA-256; UNSIGNED-PAYLOAD
// refused) checked, X-Amz-Date must be within MaxClockSkew of the injected
// clock, the scope's region must be Options.Region and its service "ses" or
// "email"; the signature is compared in constant time. Session tokens are
// refused. Every failure, malformed headers included, is charged to the
// failed-auth throttle of auth.Registry (Keys.VerifyAWS).
//
// Then the request goes through gateway.Pipeline.Submit like any other:
// identities, source networks, limits, suppression, breaker, account
// pacing, the SES parameters (ConfigurationSetName, EmailTags,
// ListManagementOptions become Envelope.SES and are checked against the
// tenant). Simple content is composed to MIME by httpapi.Compose so that
// PrepareMessage and the identity checks see the message SES will send.
// The parameters that are the policy's (FromEmailAddressIdentityArn,
// FeedbackForwarding*, EndpointId, TenantName; v1 SourceArn, FromArn,
// ReturnPathArn, ReturnPath) are refused with BadRequestException /
// InvalidParameterValue naming the parameter, as is any field or
// parameter sesgate does not know (decoding is strict).
//
// Template content (a stored TemplateName or inline TemplateContent, with
// TemplateData and Headers) becomes Envelope.Template: SES renders it, the
// From identity check is on FromEmailAddress (required), the headers may
// not name an originator, a destination or an X-SES-* field
// (gateway.Template.Check); TemplateArn and template attachments are
// refused. An unknown template is NotFoundException. SendBulkEmail sends
// each entry (at most DefaultMaxBulkEntries) as one such message through
// the pipeline, the default template with the entry's replacement data,
// headers and tags overriding the defaults of the same name, and answers
// one BulkEmailEntryResult per entry (SUCCESS with SES's MessageId, or
// the BulkEmailStatus of its refusal).
//
// Answers: the MessageId is SES's. Errors come from one table
// (codeKinds) from gateway.Code to the SES v2 error type (X-Amzn-ErrorType
// header, {"message"} body) and the SES v1 error code (XML ErrorResponse),
// with SES's statuses, so the SDKs raise their typed errors; 429 and 503
// carry Retry-After. GetAccount / GetSendQuota report the tenant's own
// quota: Max24HourSend its per_day (-1 when unlimited), MaxSendRate its
// rate (0 when unlimited), SentLast24Hours the recipients counted against
// its per_day quota in the current UTC day (the store keeps that counter
// only for a tenant with a per_day quota: 0 otherwise), SendingEnabled
// false while it is frozen or its breaker is open.
// Any other operation is UnknownOperationException (v2, 404) or
// InvalidAction (v1).
//
// Bounds: a body is read only after its Authorization header parsed, within
// the process's memory budget (twice its length: the body and what is
// decoded from it) and at most MaxMessageBytes plus a third (base64) plus
// 64 KiB; one tenant has at most MaxRequestsPerTenant requests in flight.
// Unlike gateway/httpapi, the tenant is known only once the body is read
// (SigV4 signs the body), so a tenant's in-process refusals come after the
// read.
package sesapi
