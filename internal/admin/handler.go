package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin/dashboard"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
)

// AdminToken is the stored form of an admin token: sg_<keyid>_<secret> like a
// sending token (auth.NewToken), kept only as its hash. Name says whose it is
// (for the log).
type AdminToken struct {
	KeyID string
	Hash  auth.Hash
	Name  string
}

// Options configure a Handler. The five backends are required.
type Options struct {
	Tokens       Tokens
	Tenants      Tenants
	Breakers     Breakers
	Suppressions Suppressions
	Audit        Audit
	Webhooks     Webhooks // optional: the apps' webhook dead letters (and their health when it is also a WebhookHealthReader)
	// TenantEntries, when set, serves the tenants of the API
	// (tenantentries.go).
	TenantEntries TenantEntries

	// Messages, when set, serves GET /v1/messages/{id} (incident.go).
	Messages Messages
	// SESQuota is the SES account's quota read at start (GetAccount); nil:
	// not read (the outbox, or SES did not answer).
	SESQuota *SESQuota
	// Events, when set, adds the server's logged warnings and errors to
	// the feed (GET /v1/feed).
	Events *EventLog
	// Dashboard, when set, is the store's shared dashboard state: the
	// fleet-wide feed, refusals per minute and the recipient search
	// (shared.go).
	Dashboard store.DashboardStore

	// AdminTokens are the tokens accepted on /v1/ and /metrics; replace
	// them at run time with SetAdminTokens. Sending tokens are never
	// accepted: they are not in this list.
	AdminTokens []AdminToken
	// Metrics, when set, is served at /metrics behind the admin token.
	Metrics prometheus.Gatherer

	Logger *slog.Logger
	Now    func() time.Time

	// AWSKeys mints AWS keys (POST /v1/tokens {"kind": "aws"}); nil
	// refuses that kind.
	AWSKeys *auth.AWSKeys

	// Failed admin authentications per source address (IPv6 per /64):
	// FailureBurst at once, then FailureRate. Defaults 5 and 1 per 10 s.
	FailureRate  rate.Limit
	FailureBurst int
	// MaxBodyBytes bounds JSON bodies (default 64 KiB); MaxImportBytes and
	// MaxImportLines bound a CSV import (defaults 32 MiB, 200000 lines).
	MaxBodyBytes   int64
	MaxImportBytes int64
	MaxImportLines int
	// CallTimeout bounds each API call (default 10 s); BulkTimeout an
	// import or export (default 5 min).
	CallTimeout time.Duration
	BulkTimeout time.Duration
}

// Handler serves the admin API, /metrics and the dashboard.
type Handler struct {
	tokens       Tokens
	awsKeys      *auth.AWSKeys
	tenants      Tenants
	breakers     Breakers
	suppressions Suppressions
	audit        Audit
	webhooks     Webhooks
	health       WebhookHealthReader // the store's webhook health, when it has it
	entries      TenantEntries
	messages     Messages
	sesQuota     *SESQuota
	events       *EventLog
	dash         store.DashboardStore
	cache        caches
	gatherer     prometheus.Gatherer
	log          *slog.Logger
	now          func() time.Time

	reg   *auth.Registry
	names atomic.Pointer[map[string]string] // admin key id -> name

	maxBody, maxImport int64
	maxLines           int
	callTimeout        time.Duration
	bulkTimeout        time.Duration

	mux *http.ServeMux
}

// Bounds of list calls.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	MaxAuditLimit    = 1000
	maxReasonLen     = 500
	maxGrace         = 7 * 24 * time.Hour
	defaultGrace     = time.Hour
)

// New builds a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Tokens == nil || opts.Tenants == nil || opts.Breakers == nil || opts.Suppressions == nil || opts.Audit == nil {
		return nil, errors.New("admin: Tokens, Tenants, Breakers, Suppressions and Audit are required")
	}
	h := &Handler{
		tokens: opts.Tokens, awsKeys: opts.AWSKeys, tenants: opts.Tenants, breakers: opts.Breakers,
		suppressions: opts.Suppressions, audit: opts.Audit, webhooks: opts.Webhooks, entries: opts.TenantEntries,
		log: opts.Logger, now: opts.Now, messages: opts.Messages, sesQuota: opts.SESQuota, events: opts.Events,
		dash:     opts.Dashboard,
		gatherer: opts.Metrics,
		maxBody:  opts.MaxBodyBytes, maxImport: opts.MaxImportBytes, maxLines: opts.MaxImportLines,
		callTimeout: opts.CallTimeout, bulkTimeout: opts.BulkTimeout,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	setDefault(&h.maxBody, 64<<10)
	setDefault(&h.maxImport, 32<<20)
	setDefault(&h.maxLines, 200000)
	setDefault(&h.callTimeout, 10*time.Second)
	setDefault(&h.bulkTimeout, 5*time.Minute)
	if opts.FailureRate == 0 {
		opts.FailureRate = rate.Every(10 * time.Second)
	}
	if opts.FailureBurst == 0 {
		opts.FailureBurst = 5
	}
	h.reg = auth.NewRegistry(auth.RegistryOptions{
		FailureRate: opts.FailureRate, FailureBurst: opts.FailureBurst,
		Logger: h.log, Now: h.now,
	})
	h.SetAdminTokens(opts.AdminTokens)

	dash, err := dashboard.Handler()
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /{$}", http.RedirectHandler("/dashboard/", http.StatusFound))
	m.Handle("GET /dashboard/", http.StripPrefix("/dashboard", dash))
	if opts.Metrics != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{}))
	}
	h.routes(m)
	h.incidentRoutes(m)
	if h.entries != nil {
		h.tenantEntryRoutes(m)
	}
	h.mux = m
	return h, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// SetAdminTokens replaces the accepted admin tokens (a policy reload).
func (h *Handler) SetAdminTokens(toks []AdminToken) {
	entries := make([]auth.Entry, 0, len(toks))
	names := make(map[string]string, len(toks))
	for _, t := range toks {
		entries = append(entries, auth.Entry{
			Record: auth.Record{KeyID: t.KeyID, Hash: t.Hash, Tenant: t.KeyID},
			Tenant: &gateway.Tenant{ID: t.KeyID},
		})
		names[t.KeyID] = t.Name
	}
	h.names.Store(&names)
	h.reg.Replace(entries)
}

type ctxKey struct{}

// caller is who makes a request; set once authenticated.
type caller struct {
	who, name, src, requestID string
}

func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(ctxKey{}).(*caller)
	if c == nil {
		return &caller{}
	}
	return c
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", dashboard.CSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	reqID := gateway.NewID(h.now())
	hdr.Set("X-Request-Id", reqID)
	src := sourceAddr(r)
	c := &caller{src: src.String(), requestID: reqID}

	if r.URL.Path == "/metrics" || strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/v1" {
		tok, _ := bearer(r)
		t, err := h.reg.Authenticate(r.Context(), "", tok, src)
		if err != nil {
			ge := gateway.AsError(err)
			h.log.Warn("admin auth failed", "src", c.src, "path", r.URL.Path, "code", ge.Code.String(), "request_id", reqID)
			if ge.Code == gateway.CodeAuthThrottled {
				hdr.Set("Retry-After", fmt.Sprint(max(1, int(ge.RetryAfter.Round(time.Second)/time.Second))))
				writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: "auth_throttled", Message: "too many failed attempts"})
				return
			}
			hdr.Set("WWW-Authenticate", `Bearer realm="sesgate-admin"`)
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "a valid admin token is required"})
			return
		}
		c.who = t.ID
		c.name = (*h.names.Load())[t.ID]
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, c))
		if _, pattern := h.mux.Handler(r); pattern == "" {
			h.noRoute(w, r)
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// noRoute answers an authenticated request that matches no route.
func (h *Handler) noRoute(w http.ResponseWriter, r *http.Request) {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := h.mux.Handler(r2); p != "" {
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed here"})
			return
		}
	}
	writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
}

func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}

func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// apiError is what the API answers on failure:
// {"error":{"code":"...","message":"...","lines":[...]}}.
type apiError struct {
	Status  int         `json:"-"`
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Lines   []LineError `json:"lines,omitempty"`
	// Problems lists every problem of a tenant entry.
	Problems []string `json:"problems,omitempty"`
	cause    error
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid", Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps any error to the answer: the sentinel errors to their
// status with their message, anything else to a generic 500.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrNotFound), errors.Is(err, guard.ErrUnknownTenant):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case errors.Is(err, ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid", Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the backend did not answer in time", cause: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", cause: err}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads one JSON value into v: at most maxBody bytes, no unknown
// fields, nothing after it. An empty body leaves v as it is.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "want Content-Type: application/json"}
		}
	}
	body := http.MaxBytesReader(w, r.Body, h.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		if _, err2 := dec.Token(); !errors.Is(err2, io.EOF) {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("body over %d bytes", mbe.Limit)}
		}
		return &apiError{Status: http.StatusBadRequest, Code: "malformed", Message: "invalid JSON body: " + err.Error()}
	}
	return nil
}

// readFunc serves a read: no audit.
type readFunc func(r *http.Request) (any, error)

func (h *Handler) read(f readFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), h.callTimeout)
		defer cancel()
		v, err := f(r.WithContext(ctx))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.cause != nil {
		h.log.Error("admin call failed", "path", r.URL.Path, "request_id", callerOf(r).requestID, "error", ae.cause)
	}
	writeError(w, ae)
}

// act is one admin action: it sets *target as soon as it knows it, and
// returns the status and body of a success.
type actFunc func(w http.ResponseWriter, r *http.Request, target *string) (int, any, error)

// action wraps an actFunc: bounded time, then one log line and one audit
// record with the result, refusals included.
func (h *Handler) action(name string, timeout time.Duration, f actFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
		var target string
		status, body, err := f(w, r, &target)
		c := callerOf(r)
		e := AuditEntry{
			Time: h.now().UTC(), Who: c.who, Action: name, Target: target,
			Result: ResultOK, Source: c.src, RequestID: c.requestID,
		}
		attrs := []any{"who", c.who, "name", c.name, "action", name, "target", target, "src", c.src, "request_id", c.requestID}
		var ae *apiError
		if err != nil {
			ae = toAPIError(err)
			e.Result, e.Detail = ResultError, ae.Code+": "+ae.Message
			attrs = append(attrs, "result", e.Result, "detail", e.Detail)
			if ae.cause != nil {
				attrs = append(attrs, "error", ae.cause)
			}
			h.log.Warn("admin action", attrs...)
		} else {
			if d, ok := body.(interface{ auditDetail() string }); ok {
				e.Detail = d.auditDetail()
			}
			attrs = append(attrs, "result", e.Result)
			if e.Detail != "" {
				attrs = append(attrs, "detail", e.Detail)
			}
			h.log.Info("admin action", attrs...)
		}
		// Record even when the request's own deadline is gone.
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), h.callTimeout)
		defer acancel()
		if rerr := h.audit.Record(actx, e); rerr != nil {
			h.log.Error("admin audit record failed", "action", name, "request_id", c.requestID, "error", rerr)
		}
		if ae != nil {
			writeError(w, ae)
			return
		}
		if status == 0 {
			return // the action wrote its own answer
		}
		writeJSON(w, status, body)
	}
}

var tenantIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// tenantID validates the {name} path value as a tenant id.
func tenantID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !tenantIDRE.MatchString(id) {
		return id, badRequest("invalid tenant id %q", truncate(id, 70))
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func checkReason(s string) error {
	if len(s) > maxReasonLen {
		return badRequest("reason longer than %d bytes", maxReasonLen)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return badRequest("reason contains control characters")
		}
	}
	return nil
}
