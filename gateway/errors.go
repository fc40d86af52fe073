package gateway

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies a failure. Front ends map a Code to an SMTP reply or an HTTP
// status in one table each; the String form is the stable JSON error code.
type Code int

// The codes. Keep String, Temporary and the front-end tables in step.
const (
	CodeInternal                 Code = iota // unexpected; temporary
	CodeMalformed                            // request or command syntax
	CodeAuthRequired                         // no credentials presented
	CodeBadCredentials                       // wrong, unknown or revoked token
	CodeAuthThrottled                        // too many failed attempts from this source
	CodeTLSRequired                          // credentials over plaintext on a public listener
	CodeSourceNotAllowed                     // client address outside the tenant's networks
	CodeSenderNotAllowed                     // From is not an identity of the tenant
	CodeRecipientNotAllowed                  // recipient domain outside the tenant's list
	CodeInvalidAddress                       // address syntax
	CodeTooManyRecipients                    // over the per-message recipient limit
	CodeNoRecipients                         // message without recipients
	CodeTooLarge                             // over the message size limit
	CodeBadContent                           // message content unacceptable (lines, 8-bit, headers)
	CodeRateLimited                          // tenant over its rate; RetryAfter set
	CodeFrozen                               // tenant frozen by an operator; temporary
	CodeUpstreamThrottled                    // SES rate exceeded
	CodeUpstreamQuota                        // SES daily quota exceeded
	CodeUpstreamPaused                       // SES sending paused or account suspended
	CodeUpstreamRejected                     // SES refused the content
	CodeUpstreamNotAuthorized                // SES: identity not verified
	CodeUpstreamSenderUnverified             // SES: MAIL FROM domain not verified
	CodeUpstreamBadRequest                   // SES: invalid request
	CodeUpstreamMisconfigured                // SES: gateway-side config missing (configuration set)
	CodeUpstreamUnavailable                  // SES 5xx, network error or timeout
	CodeShuttingDown                         // gateway is draining
	CodeBreakerOpen                          // tenant's breaker open (bounces/complaints); RetryAfter set
	CodeQuotaExceeded                        // tenant over its hourly or daily recipient quota; RetryAfter set
	CodeFirstContactLimited                  // tenant over its budget of never-mailed recipients; RetryAfter set
	CodeSuppressed                           // recipient suppressed (complaint or manual)
	CodeSuppressedBounce                     // recipient suppressed after a hard bounce
	CodeStoreUnavailable                     // shared state unreachable past the degraded window
	CodeBadParameter                         // an SES parameter (configuration set, tag, list management) outside the policy or SES's rules
	CodeIdempotencyInFlight                  // a request with the same idempotency key has not been answered yet; RetryAfter set
	CodeIdempotencyKeyReused                 // the idempotency key was used for a different request
	CodeTemplateNotFound                     // SES: no template of that name (SES API Template content)
	codeCount
)

var codeNames = [...]string{
	CodeInternal:                 "internal_error",
	CodeMalformed:                "malformed",
	CodeAuthRequired:             "auth_required",
	CodeBadCredentials:           "bad_credentials",
	CodeAuthThrottled:            "auth_throttled",
	CodeTLSRequired:              "tls_required",
	CodeSourceNotAllowed:         "source_not_allowed",
	CodeSenderNotAllowed:         "sender_not_allowed",
	CodeRecipientNotAllowed:      "recipient_not_allowed",
	CodeInvalidAddress:           "invalid_address",
	CodeTooManyRecipients:        "too_many_recipients",
	CodeNoRecipients:             "no_recipients",
	CodeTooLarge:                 "message_too_large",
	CodeBadContent:               "bad_content",
	CodeRateLimited:              "rate_limited",
	CodeFrozen:                   "tenant_frozen",
	CodeUpstreamThrottled:        "ses_throttled",
	CodeUpstreamQuota:            "ses_quota_exceeded",
	CodeUpstreamPaused:           "ses_sending_paused",
	CodeUpstreamRejected:         "ses_message_rejected",
	CodeUpstreamNotAuthorized:    "ses_identity_not_verified",
	CodeUpstreamSenderUnverified: "ses_mail_from_not_verified",
	CodeUpstreamBadRequest:       "ses_bad_request",
	CodeUpstreamMisconfigured:    "ses_misconfigured",
	CodeUpstreamUnavailable:      "ses_unavailable",
	CodeShuttingDown:             "shutting_down",
	CodeBreakerOpen:              "breaker_open",
	CodeQuotaExceeded:            "quota_exceeded",
	CodeFirstContactLimited:      "first_contact_limited",
	CodeSuppressed:               "recipient_suppressed",
	CodeSuppressedBounce:         "recipient_suppressed_bounce",
	CodeStoreUnavailable:         "store_unavailable",
	CodeBadParameter:             "bad_parameter",
	CodeIdempotencyInFlight:      "idempotency_in_flight",
	CodeIdempotencyKeyReused:     "idempotency_key_reused",
	CodeTemplateNotFound:         "ses_template_not_found",
}

// String returns the stable, snake_case name used in JSON errors and metrics.
func (c Code) String() string {
	if c < 0 || c >= codeCount {
		return fmt.Sprintf("code_%d", int(c))
	}
	return codeNames[c]
}

// Codes lists every code, for table tests.
func Codes() []Code {
	out := make([]Code, codeCount)
	for i := range out {
		out[i] = Code(i)
	}
	return out
}

// Temporary reports whether a client should retry the same request later.
func (c Code) Temporary() bool {
	switch c {
	case CodeInternal, CodeAuthThrottled, CodeRateLimited, CodeFrozen,
		CodeUpstreamThrottled, CodeUpstreamQuota, CodeUpstreamPaused,
		CodeUpstreamMisconfigured, CodeUpstreamUnavailable, CodeShuttingDown,
		CodeTooManyRecipients, CodeBreakerOpen, CodeQuotaExceeded, CodeFirstContactLimited,
		CodeStoreUnavailable, CodeIdempotencyInFlight:
		return true
	}
	return false
}

// Error is the one error type of the pipeline. Msg is safe to show to the
// client; Cause is for the log only.
type Error struct {
	Code       Code
	Msg        string        // client-visible, no internal detail
	Cause      error         // internal; logged, never sent
	RetryAfter time.Duration // when >0, the client may retry after this long
	Recipient  string        // set when the error concerns one recipient
	// Rejected lists per-recipient refusals (each with Recipient set) when
	// the whole message failed because none of its recipients was left.
	Rejected []*Error
	// observed marks a refusal already counted (Submit's): Pipeline.Refused
	// skips it.
	observed bool
}

func (e *Error) Error() string {
	s := e.Code.String() + ": " + e.Msg
	if e.Recipient != "" {
		s += " <" + e.Recipient + ">"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an *Error with a client-visible message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error with a client-visible message and an internal cause.
func Wrap(code Code, cause error, msg string) *Error {
	return &Error{Code: code, Msg: msg, Cause: cause}
}

// AsError returns err as an *Error. Anything that is not one (or does not wrap
// one) becomes CodeInternal with a generic message, keeping err as the cause.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	return &Error{Code: CodeInternal, Msg: "internal error", Cause: err}
}
