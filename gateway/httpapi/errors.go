package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/logthrottle"
)

// Default Retry-After values when an error carries none.
const (
	defaultRetry429 = time.Second
	defaultRetry503 = 30 * time.Second
)

// httpError is a refusal that belongs to HTTP itself (routing, methods, media
// types) rather than to the pipeline, so it has no gateway.Code.
type httpError struct {
	status int
	code   string
	msg    string
	retry  time.Duration // Retry-After of a 429 or 503; 0: the default
}

func (e *httpError) Error() string { return e.code + ": " + e.msg }

// errorBody is the JSON error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Recipient string `json:"recipient,omitempty"`
	// Rejected lists every recipient's refusal when none was left.
	Rejected []rejectedRecipient `json:"rejected,omitempty"`
}

// statusFor is the one table from gateway.Code to HTTP status.
func statusFor(c gateway.Code) int {
	switch c {
	case gateway.CodeMalformed, gateway.CodeNoRecipients, gateway.CodeBadParameter:
		return http.StatusBadRequest
	case gateway.CodeAuthRequired, gateway.CodeBadCredentials:
		return http.StatusUnauthorized
	case gateway.CodeTLSRequired, gateway.CodeSourceNotAllowed, gateway.CodeSenderNotAllowed,
		gateway.CodeRecipientNotAllowed, gateway.CodeUpstreamNotAuthorized:
		return http.StatusForbidden
	case gateway.CodeInvalidAddress, gateway.CodeTooManyRecipients, gateway.CodeBadContent,
		gateway.CodeSuppressed, gateway.CodeSuppressedBounce, gateway.CodeUpstreamRejected, gateway.CodeUpstreamSenderUnverified, gateway.CodeUpstreamBadRequest,
		gateway.CodeTemplateNotFound:
		return http.StatusUnprocessableEntity
	case gateway.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case gateway.CodeAuthThrottled, gateway.CodeRateLimited, gateway.CodeUpstreamThrottled, gateway.CodeUpstreamQuota,
		gateway.CodeBreakerOpen, gateway.CodeQuotaExceeded, gateway.CodeFirstContactLimited:
		return http.StatusTooManyRequests
	case gateway.CodeFrozen, gateway.CodeUpstreamPaused, gateway.CodeUpstreamMisconfigured, gateway.CodeShuttingDown,
		gateway.CodeStoreUnavailable:
		return http.StatusServiceUnavailable
	case gateway.CodeUpstreamUnavailable:
		return http.StatusBadGateway
	case gateway.CodeIdempotencyInFlight:
		return http.StatusConflict
	case gateway.CodeIdempotencyKeyReused:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError // CodeInternal and anything unknown
}

// retryAfterSeconds is the Retry-After value for a 429 or 503: d rounded up
// to whole seconds, or the default for the status when d is not positive.
func retryAfterSeconds(status int, d time.Duration) int64 {
	if d <= 0 {
		d = defaultRetry429
		if status == http.StatusServiceUnavailable {
			d = defaultRetry503
		}
	}
	return int64(math.Ceil(d.Seconds()))
}

// writeError is the one place where an error becomes an HTTP answer. It
// counts a refused message (once: Submit counted its own), logs the cause
// (never a token or a body) through the pipeline's refusal throttle, keyed
// by tenant (or client address) and code, and writes the JSON error.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		status int
		detail errorDetail
		retry  time.Duration
	)
	var he *httpError
	if errors.As(err, &he) {
		status, detail, retry = he.status, errorDetail{Code: he.code, Message: he.msg}, he.retry
	} else {
		ge := gateway.AsError(err)
		status = statusFor(ge.Code)
		detail = errorDetail{Code: ge.Code.String(), Message: ge.Msg, Recipient: ge.Recipient, Rejected: rejectedList(ge.Rejected)}
		if detail.Message == "" {
			detail.Message = http.StatusText(status)
		}
		retry = ge.RetryAfter
	}
	hdr := w.Header()
	switch status {
	case http.StatusUnauthorized:
		if detail.Code == gateway.CodeBadCredentials.String() {
			hdr.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		} else {
			hdr.Set("WWW-Authenticate", "Bearer")
		}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusConflict:
		hdr.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(status, retry), 10))
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	// The tenant, for the log key and the metric label only: the request's
	// token looked up again, in process, no failure counted. A request that
	// did not authenticate has none.
	var tenant *gateway.Tenant
	switch detail.Code {
	case gateway.CodeAuthRequired.String(), gateway.CodeBadCredentials.String(), gateway.CodeAuthThrottled.String():
	default:
		tenant = h.p.TenantOf(bearerToken(r.Header.Get("Authorization")))
	}
	who := logthrottle.Source(gateway.SourceKey(gateway.RemoteAddr(r.RemoteAddr)))
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("src", r.RemoteAddr),
		slog.Int("status", status),
		slog.String("code", detail.Code),
		slog.String("error", err.Error()),
	}
	if tenant != nil {
		who = tenant.ID
		attrs = append(attrs, slog.String("tenant", tenant.ID))
	}
	if r.Method == http.MethodPost && r.URL.Path == "/v1/messages" {
		if he != nil { // an unsupported media type: counted as malformed
			err = &gateway.Error{Code: gateway.CodeMalformed, Msg: he.msg}
		}
		h.p.Refused(tenant, err)
	}
	h.p.Refusals().Log(context.Background(), h.log, level, who, detail.Code, "http error", attrs...)
	writeJSON(w, status, errorBody{Error: detail})
}
