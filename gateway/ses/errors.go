package ses

import (
	"context"
	"errors"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"

	"github.com/sesgate/sesgate/gateway"
)

// rule maps SES errors to a gateway code. A rule matches when sesCode is
// empty or equals the error's code (the name of its type in sesv2/types),
// and text is empty or occurs in SES's message (case-insensitive).
type rule struct {
	sesCode    string
	text       string
	code       gateway.Code
	msg        string // client-visible
	retryAfter time.Duration
	alert      bool // operators must act: logged at error level
}

// codeOf returns the error code of an SDK error type, binding the table to
// the types the SDK decodes.
func codeOf(e interface{ ErrorCode() string }) string { return e.ErrorCode() }

// sesErrors is the one table from SES errors to gateway codes. The first
// matching rule wins; an error that matches none is CodeUpstreamUnavailable.
var sesErrors = []rule{
	// The daily quota, whatever code carries it (which one SES v2 uses is
	// not documented). Retrying soon is pointless.
	{text: "Daily message quota exceeded", code: gateway.CodeUpstreamQuota,
		msg: "SES daily sending quota exceeded, try again later", retryAfter: 10 * time.Minute, alert: true},
	{sesCode: codeOf(&types.TooManyRequestsException{}), code: gateway.CodeUpstreamThrottled,
		msg: "SES sending rate exceeded, try again later", retryAfter: time.Second},
	{sesCode: codeOf(&types.LimitExceededException{}), code: gateway.CodeUpstreamThrottled,
		msg: "SES sending limit exceeded, try again later", retryAfter: time.Second},
	{sesCode: codeOf(&types.SendingPausedException{}), code: gateway.CodeUpstreamPaused,
		msg: "sending is paused, try again later", retryAfter: time.Minute, alert: true},
	// Suspended is permanent for SES, but temporary here so mail stays
	// queued in the client while operators react.
	{sesCode: codeOf(&types.AccountSuspendedException{}), code: gateway.CodeUpstreamPaused,
		msg: "sending is suspended, try again later", retryAfter: time.Minute, alert: true},
	{sesCode: codeOf(&types.MessageRejected{}), text: "not verified", code: gateway.CodeUpstreamNotAuthorized,
		msg: "an address of the message is not verified for sending"},
	{sesCode: codeOf(&types.MessageRejected{}), code: gateway.CodeUpstreamRejected,
		msg: "SES rejected the message content"},
	{sesCode: codeOf(&types.MailFromDomainNotVerifiedException{}), code: gateway.CodeUpstreamSenderUnverified,
		msg: "the sender's MAIL FROM domain is not verified"},
	// A template named by the app (SES API Template content).
	{sesCode: codeOf(&types.NotFoundException{}), text: "template", code: gateway.CodeTemplateNotFound,
		msg: "SES has no template of that name"},
	// The configuration set (or SES tenant) is gateway configuration.
	{sesCode: codeOf(&types.NotFoundException{}), code: gateway.CodeUpstreamMisconfigured,
		msg: "the gateway's SES configuration is incomplete, try again later", alert: true},
	{sesCode: codeOf(&types.BadRequestException{}), code: gateway.CodeUpstreamBadRequest,
		msg: "SES refused the request as invalid"},
	{sesCode: codeOf(&types.InternalServiceErrorException{}), code: gateway.CodeUpstreamUnavailable,
		msg: "SES is unavailable, try again later"},
	// The gateway's own AWS credentials or IAM policy are wrong.
	{sesCode: "AccessDeniedException", code: gateway.CodeUpstreamMisconfigured,
		msg: "the gateway's SES configuration is incomplete, try again later", alert: true},
	{sesCode: "UnrecognizedClientException", code: gateway.CodeUpstreamMisconfigured,
		msg: "the gateway's SES configuration is incomplete, try again later", alert: true},
	{sesCode: "SignatureDoesNotMatch", code: gateway.CodeUpstreamMisconfigured,
		msg: "the gateway's SES configuration is incomplete, try again later", alert: true},
	{sesCode: "InvalidSignatureException", code: gateway.CodeUpstreamMisconfigured,
		msg: "the gateway's SES configuration is incomplete, try again later", alert: true},
	{sesCode: "ExpiredTokenException", code: gateway.CodeUpstreamMisconfigured,
		msg: "the gateway's SES configuration is incomplete, try again later", alert: true},
}

// classify turns an error of SendEmail into a gateway error, and reports
// whether operators must be alerted.
func classify(err error) (*gateway.Error, bool) {
	var ge *gateway.Error
	if errors.As(err, &ge) {
		return ge, false
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return gateway.Wrap(gateway.CodeUpstreamUnavailable, err, "SES did not answer in time"), false
		case errors.Is(err, context.Canceled):
			return gateway.Wrap(gateway.CodeUpstreamUnavailable, err, "request cancelled while sending"), false
		}
		return gateway.Wrap(gateway.CodeUpstreamUnavailable, err, "SES could not be reached"), false
	}
	code, text := ae.ErrorCode(), strings.ToLower(ae.ErrorMessage())
	for _, r := range sesErrors {
		if (r.sesCode == "" || r.sesCode == code) && (r.text == "" || strings.Contains(text, strings.ToLower(r.text))) {
			return &gateway.Error{Code: r.code, Msg: r.msg, Cause: err, RetryAfter: r.retryAfter}, r.alert
		}
	}
	// Not in the table: a 5xx is an outage, anything else a surprise worth
	// an alert. Both are temporary.
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return gateway.Wrap(gateway.CodeUpstreamUnavailable, err, "SES is unavailable, try again later"), false
	}
	return gateway.Wrap(gateway.CodeUpstreamUnavailable, err, "SES refused the request, try again later"), true
}

// sesCode returns the SES error code of err, or "".
func sesCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// requestID returns the AWS request id of a failed call, or "".
func requestID(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}
