package sesapi

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// sesError is one answer in SES's error vocabulary: V2 is the SES v2
// (REST-JSON) error type sent in X-Amzn-ErrorType, V1 the SES v1 (query)
// error code of the XML ErrorResponse.
type sesError struct {
	code       gateway.Code // what the refusal counts as (Pipeline.Refused)
	Status     int
	V2         string
	V1         string
	V1Status   int
	Msg        string
	RetryAfter time.Duration
}

func (e *sesError) Error() string { return e.V2 + ": " + e.Msg }

// Unwrap lets gateway.AsError (and so Pipeline.Refused) see the code.
func (e *sesError) Unwrap() error { return &gateway.Error{Code: e.code, Msg: e.Msg} }

// kind is the SES error of one gateway code.
type kind struct {
	status   int
	v2       string
	v1       string
	v1Status int
}

var (
	tooMany     = kind{http.StatusTooManyRequests, "TooManyRequestsException", "Throttling", http.StatusBadRequest}
	rejected    = kind{http.StatusBadRequest, "MessageRejected", "MessageRejected", http.StatusBadRequest}
	badRequest  = kind{http.StatusBadRequest, "BadRequestException", "InvalidParameterValue", http.StatusBadRequest}
	unavailable = kind{http.StatusServiceUnavailable, "ServiceUnavailable", "ServiceUnavailable", http.StatusServiceUnavailable}
	paused      = kind{http.StatusBadRequest, "SendingPausedException", "AccountSendingPausedException", http.StatusBadRequest}
)

// busy is the answer to a request refused for the process's or the
// tenant's bounds (memory budget, requests in flight).
func busy(status int, msg string, after time.Duration) *sesError {
	e := &sesError{code: gateway.CodeRateLimited, Status: status, V2: "TooManyRequestsException", V1: "Throttling", V1Status: http.StatusBadRequest, Msg: msg, RetryAfter: after}
	if status == http.StatusServiceUnavailable {
		e.code, e.V2, e.V1, e.V1Status = gateway.CodeInternal, "ServiceUnavailable", "ServiceUnavailable", status
	}
	return e
}

// codeKinds is the one table from gateway.Code to SES's errors, for both
// APIs. Every code has a row (TestCodeTable). The statuses are SES's own
// for the type; the SDKs pick the typed error from the type name.
var codeKinds = [...]kind{
	gateway.CodeInternal:                 {http.StatusInternalServerError, "InternalFailure", "InternalFailure", http.StatusInternalServerError},
	gateway.CodeMalformed:                badRequest,
	gateway.CodeAuthRequired:             {http.StatusForbidden, "MissingAuthenticationTokenException", "MissingAuthenticationToken", http.StatusForbidden},
	gateway.CodeBadCredentials:           {http.StatusForbidden, "UnrecognizedClientException", "InvalidClientTokenId", http.StatusForbidden},
	gateway.CodeAuthThrottled:            tooMany,
	gateway.CodeTLSRequired:              {http.StatusForbidden, "AccessDeniedException", "AccessDenied", http.StatusForbidden},
	gateway.CodeSourceNotAllowed:         {http.StatusForbidden, "AccessDeniedException", "AccessDenied", http.StatusForbidden},
	gateway.CodeSenderNotAllowed:         rejected,
	gateway.CodeRecipientNotAllowed:      rejected,
	gateway.CodeInvalidAddress:           badRequest,
	gateway.CodeTooManyRecipients:        {http.StatusBadRequest, "LimitExceededException", "InvalidParameterValue", http.StatusBadRequest},
	gateway.CodeNoRecipients:             badRequest,
	gateway.CodeTooLarge:                 rejected,
	gateway.CodeBadContent:               rejected,
	gateway.CodeRateLimited:              tooMany,
	gateway.CodeFrozen:                   paused,
	gateway.CodeUpstreamThrottled:        tooMany,
	gateway.CodeUpstreamQuota:            tooMany,
	gateway.CodeUpstreamPaused:           paused,
	gateway.CodeUpstreamRejected:         rejected,
	gateway.CodeUpstreamNotAuthorized:    rejected,
	gateway.CodeUpstreamSenderUnverified: {http.StatusBadRequest, "MailFromDomainNotVerifiedException", "MailFromDomainNotVerifiedException", http.StatusBadRequest},
	gateway.CodeUpstreamBadRequest:       badRequest,
	gateway.CodeUpstreamMisconfigured:    {http.StatusNotFound, "NotFoundException", "ConfigurationSetDoesNotExist", http.StatusBadRequest},
	gateway.CodeUpstreamUnavailable:      unavailable,
	gateway.CodeShuttingDown:             unavailable,
	gateway.CodeBreakerOpen:              tooMany,
	gateway.CodeQuotaExceeded:            tooMany,
	gateway.CodeFirstContactLimited:      tooMany,
	gateway.CodeSuppressed:               rejected,
	gateway.CodeSuppressedBounce:         rejected,
	gateway.CodeStoreUnavailable:         unavailable,
	gateway.CodeBadParameter:             badRequest,
	gateway.CodeTemplateNotFound:         {http.StatusNotFound, "NotFoundException", "TemplateDoesNotExist", http.StatusBadRequest},
	// The SES APIs take no idempotency key; the rows keep the table whole.
	gateway.CodeIdempotencyInFlight:  tooMany,
	gateway.CodeIdempotencyKeyReused: badRequest,
}

// fromError turns any error of the pipeline (or of this package) into its
// SES answer. The message keeps sesgate's code name so an operator can
// match it with the log.
func fromError(err error) *sesError {
	var se *sesError
	if errors.As(err, &se) {
		return se
	}
	ge := gateway.AsError(err)
	k := kind{http.StatusInternalServerError, "InternalFailure", "InternalFailure", http.StatusInternalServerError}
	if int(ge.Code) >= 0 && int(ge.Code) < len(codeKinds) && codeKinds[ge.Code].v2 != "" {
		k = codeKinds[ge.Code]
	}
	msg := "sesgate " + ge.Code.String() + ": " + ge.Msg
	if ge.Recipient != "" {
		msg += " <" + ge.Recipient + ">"
	}
	return &sesError{code: ge.Code, Status: k.status, V2: k.v2, V1: k.v1, V1Status: k.v1Status, Msg: msg, RetryAfter: ge.RetryAfter}
}

// newError builds an answer of this package's own (a bad parameter, an
// unknown operation) in the row of code.
func newError(code gateway.Code, msg string) *sesError {
	k := codeKinds[code]
	return &sesError{code: code, Status: k.status, V2: k.v2, V1: k.v1, V1Status: k.v1Status, Msg: msg}
}

// authError renders a SigV4 failure as SES does.
func authError(f *authFailure) *sesError {
	e := authShape(f)
	e.code = gateway.CodeBadCredentials
	if f.kind == authMissing {
		e.code = gateway.CodeAuthRequired
	}
	return e
}

func authShape(f *authFailure) *sesError {
	switch f.kind {
	case authMissing:
		return &sesError{Status: http.StatusForbidden, V2: "MissingAuthenticationTokenException", V1: "MissingAuthenticationToken", V1Status: http.StatusForbidden, Msg: f.msg}
	case authIncomplete:
		return &sesError{Status: http.StatusBadRequest, V2: "IncompleteSignatureException", V1: "IncompleteSignature", V1Status: http.StatusBadRequest, Msg: f.msg}
	case authExpired:
		return &sesError{Status: http.StatusForbidden, V2: "InvalidSignatureException", V1: "RequestExpired", V1Status: http.StatusForbidden, Msg: f.msg}
	case authUnknownKey, authToken:
		return &sesError{Status: http.StatusForbidden, V2: "UnrecognizedClientException", V1: "InvalidClientTokenId", V1Status: http.StatusForbidden, Msg: f.msg}
	default:
		return &sesError{Status: http.StatusForbidden, V2: "SignatureDoesNotMatch", V1: "SignatureDoesNotMatch", V1Status: http.StatusForbidden, Msg: f.msg}
	}
}

// retryAfter sets Retry-After on a 429 or 503 (at least one second).
func retryAfter(w http.ResponseWriter, status int, d time.Duration) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return
	}
	s := int64((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(s, 1), 10))
}

// writeV2Error writes the REST-JSON error the SDKs read: the type in
// X-Amzn-ErrorType, {"message"} in the body.
func writeV2Error(w http.ResponseWriter, reqID string, e *sesError) {
	h := w.Header()
	h.Set("X-Amzn-ErrorType", e.V2)
	h.Set("X-Amzn-RequestId", reqID)
	h.Set("Content-Type", "application/json")
	retryAfter(w, e.Status, e.RetryAfter)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.Msg})
}

// v1ErrorResponse is SES v1's XML ErrorResponse.
type v1ErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	NS      string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

const v1Namespace = "http://ses.amazonaws.com/doc/2010-12-01/"

// writeV1Error writes SES v1's XML ErrorResponse.
func writeV1Error(w http.ResponseWriter, reqID string, e *sesError) {
	var r v1ErrorResponse
	r.NS, r.RequestID = v1Namespace, reqID
	r.Error.Type, r.Error.Code, r.Error.Message = "Sender", e.V1, e.Msg
	if e.V1Status >= 500 {
		r.Error.Type = "Receiver"
	}
	h := w.Header()
	h.Set("X-Amzn-RequestId", reqID)
	retryAfter(w, e.V1Status, e.RetryAfter)
	writeXML(w, e.V1Status, r)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(v)
}
