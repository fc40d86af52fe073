package sesapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// Keys resolves an AWS access key id and checks a request's signature with
// its secret (auth.Registry.VerifyAWS): check is called only for a key that
// exists; failures are counted in the failed-auth throttle.
type Keys interface {
	VerifyAWS(ctx context.Context, akid string, src netip.Addr, check func(secret string) bool) (*gateway.Tenant, error)
}

// Usage reads what a tenant sent in the current UTC day, in recipients
// (the store's quota counter).
type Usage interface {
	SentToday(ctx context.Context, tenant string) (int64, error)
}

// Defaults.
const (
	DefaultSubmitTimeout        = 60 * time.Second
	DefaultMaxRequestsPerTenant = 128
	// DefaultMaxBulkEntries is SES's own limit of SendBulkEmail entries.
	DefaultMaxBulkEntries = 100
)

// Options configure a Handler. Pipeline and Region are required.
type Options struct {
	Pipeline *gateway.Pipeline
	// Keys resolves access keys; nil refuses every request (AWS keys are
	// not configured).
	Keys  Keys
	Usage Usage // nil: SentLast24Hours is 0
	// Region is the region a request's credential scope must name.
	Region string
	// MaxMessageBytes bounds a raw message (default
	// gateway.DefaultMaxMessageBytes); a request body may be a third
	// larger plus 64 KiB (base64 in JSON or in a form).
	MaxMessageBytes int64
	// Budget is the process's memory budget, shared with the other front
	// ends; nil: a budget of gateway.DefaultMemBudgetBytes of its own.
	Budget               *gateway.MemBudget
	MaxRequestsPerTenant int
	SubmitTimeout        time.Duration
	Now                  func() time.Time
	Logger               *slog.Logger
}

// Handler serves the SES v2 (REST-JSON, /v2/email/...) and SES v1 (query,
// POST /) APIs. It is safe for concurrent use.
type Handler struct {
	o        Options
	maxBody  int64
	inFlight *gateway.Slots[string]
}

// New builds a Handler.
func New(o Options) (*Handler, error) {
	if o.Pipeline == nil || o.Region == "" {
		return nil, errors.New("sesapi: Pipeline and Region are required")
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = gateway.DefaultMaxMessageBytes
	}
	if o.Budget == nil {
		o.Budget, _ = gateway.NewMemBudget(gateway.DefaultMemBudgetBytes)
	}
	if o.MaxRequestsPerTenant <= 0 {
		o.MaxRequestsPerTenant = DefaultMaxRequestsPerTenant
	}
	if o.SubmitTimeout <= 0 {
		o.SubmitTimeout = DefaultSubmitTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = o.Pipeline.Logger()
	}
	return &Handler{o: o, maxBody: o.MaxMessageBytes + o.MaxMessageBytes/3 + 64<<10,
		inFlight: gateway.NewSlots[string](o.MaxRequestsPerTenant)}, nil
}

// Handles reports whether the request is for this API: POST / (v1) or a
// path under /v2/email/.
func Handles(r *http.Request) bool {
	return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/v2/")
}

// call is one authenticated request.
type call struct {
	tenant *gateway.Tenant
	src    netip.Addr
	body   []byte
	id     string // request id, also the first message's gateway id
}

// ServeHTTP authenticates the request and dispatches it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v1 := r.URL.Path == "/"
	reqID := gateway.NewID(h.o.Now())
	fail := func(e *sesError) {
		if v1 {
			writeV1Error(w, reqID, e)
		} else {
			writeV2Error(w, reqID, e)
		}
	}
	c, release, err := h.authenticate(r, w)
	if err != nil {
		h.o.Pipeline.Refused(nil, err)
		fail(fromError(err))
		return
	}
	defer release()
	c.id = reqID
	if v1 {
		h.serveV1(w, r, c)
		return
	}
	h.serveV2(w, r, c)
}

// authenticate reads the body within the memory budget and the size limit,
// checks the SigV4 signature, and takes one of the tenant's request slots.
func (h *Handler) authenticate(r *http.Request, w http.ResponseWriter) (*call, func(), error) {
	c := &call{src: gateway.RemoteAddr(r.RemoteAddr)}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.SubmitTimeout)
	defer cancel()
	if h.o.Keys == nil {
		return nil, nil, authError(&authFailure{authUnknownKey, "AWS keys are not enabled on this sesgate (--aws-key-secret-file)"})
	}
	sig, f := parseSigV4(r.Header.Get("Authorization"))
	if f != nil {
		return nil, nil, h.charge(ctx, c.src, f)
	}
	if r.ContentLength > h.maxBody {
		return nil, nil, newError(gateway.CodeTooLarge, fmt.Sprintf("request body exceeds %d bytes", h.maxBody))
	}
	hold := h.maxBody
	if r.ContentLength >= 0 {
		hold = r.ContentLength
	}
	hold = min(2*hold, h.o.Budget.Limit()) // the body and what is decoded from it
	if !h.o.Budget.TryTake(hold) {
		return nil, nil, busy(http.StatusServiceUnavailable, "gateway busy: too many message bytes in memory, try again later", 2*time.Second)
	}
	release := func() { h.o.Budget.Release(hold) }
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		release()
		return nil, nil, err
	}
	c.body = body
	payload, f := sig.checkScope(r, body, h.o.Region, h.o.Now())
	if f != nil {
		release()
		return nil, nil, h.charge(ctx, c.src, f)
	}
	checked := false
	t, err := h.o.Keys.VerifyAWS(ctx, sig.AccessKeyID, c.src, func(secret string) bool {
		checked = true
		return sig.verify(r, payload, secret)
	})
	if err != nil {
		release()
		if ge := gateway.AsError(err); ge.Code == gateway.CodeBadCredentials {
			if !checked {
				return nil, nil, authError(&authFailure{authUnknownKey, "The security token included in the request is invalid."})
			}
			return nil, nil, authError(&authFailure{authMismatch, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."})
		}
		return nil, nil, err
	}
	if !t.AllowsSource(c.src) {
		release()
		return nil, nil, gateway.Errorf(gateway.CodeSourceNotAllowed, "client address not allowed for this tenant")
	}
	if !h.inFlight.Take(t.ID) {
		release()
		return nil, nil, busy(http.StatusTooManyRequests, fmt.Sprintf("more than %d requests of this tenant in flight", h.o.MaxRequestsPerTenant), time.Second)
	}
	c.tenant = t
	return c, func() { h.inFlight.Give(t.ID); release() }, nil
}

// charge counts a request refused before its key was looked up (no or a
// malformed Authorization, a bad date, scope or payload hash) as a failed
// attempt of the source, so that it is throttled like a wrong token.
func (h *Handler) charge(ctx context.Context, src netip.Addr, f *authFailure) error {
	_, err := h.o.Keys.VerifyAWS(ctx, "", src, func(string) bool { return false })
	if ge := gateway.AsError(err); ge.Code == gateway.CodeAuthThrottled {
		return err
	}
	return authError(f)
}

// readBody reads the whole body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(max(r.ContentLength, 0)) + bytes.MinRead)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newError(gateway.CodeTooLarge, fmt.Sprintf("request body exceeds %d bytes", limit))
		}
		return nil, gateway.Wrap(gateway.CodeMalformed, err, "reading the request body failed")
	}
	return buf.Bytes(), nil
}

// submit runs one envelope through the pipeline with the submit deadline.
func (h *Handler) submit(ctx context.Context, env *gateway.Envelope) (*gateway.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.SubmitTimeout)
	defer cancel()
	return h.o.Pipeline.Submit(ctx, env)
}

// quota is the tenant's send quota in SES's terms: its per-day quota (-1:
// unlimited, as SES reports it), its rate (0 when unlimited), what it sent
// today, and whether it may send now.
type quota struct {
	max24, rate, sent float64
	enabled           bool
}

func (h *Handler) quota(ctx context.Context, t *gateway.Tenant) (quota, error) {
	q := quota{max24: -1, rate: t.Limits.Rate, enabled: true}
	if t.Limits.PerDay > 0 {
		q.max24 = float64(t.Limits.PerDay)
	}
	if h.o.Usage != nil {
		n, err := h.o.Usage.SentToday(ctx, t.ID)
		if err != nil {
			return q, gateway.Wrap(gateway.CodeStoreUnavailable, err, "usage unavailable")
		}
		q.sent = float64(n)
	}
	if err := h.o.Pipeline.CheckTenant(t); err != nil {
		switch gateway.AsError(err).Code {
		case gateway.CodeFrozen, gateway.CodeBreakerOpen:
			q.enabled = false
		}
	}
	return q, nil
}
