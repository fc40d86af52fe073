package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// DefaultSubmitTimeout bounds the authentication of a request and, once the
// body is read, its submission up to the sink's answer (each separately).
const DefaultSubmitTimeout = 60 * time.Second

// DefaultMaxRequestsPerTenant bounds one tenant's requests in flight.
const DefaultMaxRequestsPerTenant = 128

// jsonHold is how many times its length a JSON body holds in memory: as
// received (the decoder's buffer), decoded (strings and attachments) and
// composed.
const jsonHold = 3

// Retry-After of the handler's own refusals: the memory budget frees as
// messages are answered, a tenant's slot as its own requests end.
const (
	busyRetry   = 2 * time.Second
	tenantRetry = time.Second
)

// refuseDrain bounds reading what a client already sent of a body refused
// unread, so that its connection can be kept.
const refuseDrain = time.Second

// Options configure a Handler. Pipeline is required.
type Options struct {
	Pipeline *gateway.Pipeline
	Logger   *slog.Logger // default: the pipeline's logger
	// MaxBodyBytes bounds a message/rfc822 body (default
	// gateway.DefaultMaxMessageBytes, 40 MiB, SES's limit). The tenant's
	// MaxMessageBytes lowers it per request. A JSON body may be a quarter
	// larger (plus 64 KiB), room for JSON escapes: attachments are base64 in
	// the JSON as in the composed message, so the two are about the same
	// size, and the composed message is checked against the tenant's limit.
	MaxBodyBytes  int64
	Ready         func() bool // for /readyz; nil means always ready
	Now           func() time.Time
	SubmitTimeout time.Duration // default DefaultSubmitTimeout
	// Budget is the process's memory budget, shared with the SMTP front
	// end; nil: one of gateway.DefaultMemBudgetBytes for this handler.
	Budget *gateway.MemBudget
	// MaxRequestsPerTenant bounds one tenant's requests in flight (default
	// DefaultMaxRequestsPerTenant); one more is 429.
	MaxRequestsPerTenant int
	// Idempotency keeps the answers of requests with an Idempotency-Key
	// (the shared store); nil refuses such requests (400).
	Idempotency gateway.IdempotencyStore
	// IdempotencyLease bounds how long an unanswered claim blocks its key
	// (a crashed replica); default SubmitTimeout + 30s.
	IdempotencyLease time.Duration
}

// Handler is the HTTP API. It is safe for concurrent use.
type Handler struct {
	p             *gateway.Pipeline
	log           *slog.Logger
	maxBody       int64
	ready         func() bool
	now           func() time.Time
	submitTimeout time.Duration
	budget        *gateway.MemBudget
	maxPerTenant  int
	inFlight      *gateway.Slots[string] // requests in flight by tenant id
	idem          gateway.IdempotencyStore
	idemLease     time.Duration
}

var _ http.Handler = (*Handler)(nil)

// New builds a Handler from opts.
func New(opts Options) *Handler {
	h := &Handler{
		p:             opts.Pipeline,
		log:           opts.Logger,
		maxBody:       opts.MaxBodyBytes,
		ready:         opts.Ready,
		now:           opts.Now,
		submitTimeout: opts.SubmitTimeout,
		budget:        opts.Budget,
		maxPerTenant:  opts.MaxRequestsPerTenant,
		idem:          opts.Idempotency,
		idemLease:     opts.IdempotencyLease,
	}
	if h.budget == nil {
		h.budget, _ = gateway.NewMemBudget(gateway.DefaultMemBudgetBytes)
	}
	if h.maxPerTenant <= 0 {
		h.maxPerTenant = DefaultMaxRequestsPerTenant
	}
	h.inFlight = gateway.NewSlots[string](h.maxPerTenant)
	if h.log == nil {
		h.log = h.p.Logger()
	}
	if h.maxBody <= 0 {
		h.maxBody = gateway.DefaultMaxMessageBytes
	}
	if h.ready == nil {
		h.ready = func() bool { return true }
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.submitTimeout <= 0 {
		h.submitTimeout = DefaultSubmitTimeout
	}
	if h.idemLease <= 0 {
		h.idemLease = h.submitTimeout + leaseMargin
	}
	return h
}

// ServeHTTP routes: POST /v1/messages, GET /healthz, GET /readyz.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/messages":
		if r.Method != http.MethodPost {
			h.methodNotAllowed(w, r, "POST")
			return
		}
		h.send(w, r)
	case "/healthz", "/readyz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, r, "GET, HEAD")
			return
		}
		if r.URL.Path == "/readyz" && !h.ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		h.writeError(w, r, &httpError{status: http.StatusNotFound, code: "not_found", msg: "no such endpoint"})
	}
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	h.writeError(w, r, &httpError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "method not allowed; use " + allow})
}

// sendResponse is the answer to an accepted message.
type sendResponse struct {
	ID        string `json:"id"`         // gateway message id
	MessageID string `json:"message_id"` // SES MessageId
	// Rejected lists recipients dropped from the message (suppressed);
	// the others were sent.
	Rejected []rejectedRecipient `json:"rejected,omitempty"`
}

// rejectedRecipient is one recipient refused on its own.
type rejectedRecipient struct {
	Recipient string `json:"recipient"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

func rejectedList(errs []*gateway.Error) []rejectedRecipient {
	if len(errs) == 0 {
		return nil
	}
	out := make([]rejectedRecipient, len(errs))
	for i, e := range errs {
		out[i] = rejectedRecipient{Recipient: e.Recipient, Code: e.Code.String(), Message: e.Msg}
	}
	return out
}

// send handles POST /v1/messages: admit the request (before its body),
// read and check the body, build the envelope, submit, answer.
func (h *Handler) send(w http.ResponseWriter, r *http.Request) {
	a, release, err := h.admit(r)
	if err != nil {
		h.refuseUnread(w, r)
		h.writeError(w, r, err)
		return
	}
	defer release() // after the submit: the body is held until the sink answers
	t, src, key, limit := a.tenant, a.src, a.key, a.limit
	env := &gateway.Envelope{Tenant: t, Source: src, Via: "http", ID: gateway.NewID(h.now())}
	digest := fingerprinter(r, key, a.json)
	if a.json {
		err = h.jsonEnvelope(w, r, env, limit, digest)
	} else {
		err = h.rawEnvelope(w, r, env, limit, digest)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// A keyed request is claimed once its body is read and well formed:
	// a repeat gets the first answer, or 409 while it is in flight, or
	// 422 when the key named another request.
	var claim *idemClaim
	if key != "" {
		var replayed bool
		if claim, replayed, err = h.claimKey(w, r, t, key, env.ID, digest); err != nil {
			h.writeError(w, r, err)
			return
		}
		if replayed {
			return
		}
	}
	// The body is read (the server's ReadTimeout bounds that); the submit
	// gets its own deadline.
	ctx, cancel := context.WithTimeout(r.Context(), h.submitTimeout)
	defer cancel()
	res, err := h.p.Submit(ctx, env)
	if err != nil {
		claim.release() // nothing was sent: the app may retry with the key
		h.writeError(w, r, err)
		return
	}
	body, err := json.Marshal(sendResponse{ID: res.ID, MessageID: res.ProviderID, Rejected: rejectedList(res.Rejected)})
	if err != nil { // cannot happen: strings only
		body = []byte(`{}`)
	}
	claim.complete(http.StatusOK, body)
	writeRaw(w, http.StatusOK, body)
}

// refuseUnread prepares the answer to a request refused before its body
// was read. net/http reads up to 256 KiB of an unread body to keep the
// connection (a larger one closes it): that read gets refuseDrain, and a
// chunked body, of unknown size, is not read at all.
func (h *Handler) refuseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	if r.ContentLength < 0 {
		w.Header().Set("Connection", "close")
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(refuseDrain))
}

// admitted is a request let in before its body is read.
type admitted struct {
	tenant *gateway.Tenant
	src    netip.Addr
	key    string // Idempotency-Key
	json   bool   // application/json, else message/rfc822
	limit  int64  // body bytes
}

// admit decides everything about a request that needs no body: the token,
// the tenant's cached refusals and rate, its requests in flight, the
// headers, the declared size and room in the memory budget (the declared
// length, or the limit when none is declared). release gives back what
// was taken.
func (h *Handler) admit(r *http.Request) (a admitted, release func(), err error) {
	a.src = gateway.RemoteAddr(r.RemoteAddr)
	authCtx, cancelAuth := context.WithTimeout(r.Context(), h.submitTimeout)
	t, err := h.authenticate(authCtx, r, a.src)
	cancelAuth()
	if err != nil {
		return a, nil, err
	}
	// Frozen, over a limit and cached, or no room in the rate for even one
	// message: refused before the body is read.
	if err := h.p.CheckTenant(t); err != nil {
		return a, nil, err
	}
	if err := h.p.PeekRate(t); err != nil {
		return a, nil, err
	}
	a.tenant = t
	if err := h.checkHeaders(r, &a); err != nil {
		return a, nil, err
	}
	if !h.inFlight.Take(t.ID) {
		return a, nil, &httpError{http.StatusTooManyRequests, "too_many_requests",
			fmt.Sprintf("more than %d requests of this tenant in flight", h.maxPerTenant), tenantRetry}
	}
	hold := a.limit
	if r.ContentLength >= 0 {
		hold = r.ContentLength
	}
	if a.json {
		hold *= jsonHold
	}
	hold = min(hold, h.budget.Limit()) // a request that needs it all may still have it all
	if !h.budget.TryTake(hold) {
		h.inFlight.Give(t.ID)
		return a, nil, &httpError{http.StatusServiceUnavailable, "server_busy",
			"gateway busy: too many message bytes in memory, try again later", busyRetry}
	}
	return a, func() {
		h.budget.Release(hold)
		h.inFlight.Give(t.ID)
	}, nil
}

// checkHeaders checks Idempotency-Key, Content-Encoding, Content-Type and
// Content-Length, and sets a.key, a.json and a.limit.
func (h *Handler) checkHeaders(r *http.Request, a *admitted) (err error) {
	if a.key, err = idemKey(r); err != nil {
		return err
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: "Content-Encoding is not supported"}
	}
	a.limit = min(h.maxBody, a.tenant.MaxMessageBytes())
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/json" && (params["charset"] == "" || strings.EqualFold(params["charset"], "utf-8")):
		a.json = true
		a.limit += a.limit/4 + 64<<10 // JSON escapes
	case mt != "message/rfc822":
		return &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: "Content-Type must be application/json (UTF-8) or message/rfc822"}
	}
	if r.ContentLength > a.limit {
		return gateway.Errorf(gateway.CodeTooLarge, "request body exceeds %d bytes", a.limit)
	}
	return nil
}

// authenticate resolves the bearer token. X-Forwarded-For is never trusted:
// the source is the TCP peer.
func (h *Handler) authenticate(ctx context.Context, r *http.Request, src netip.Addr) (*gateway.Tenant, error) {
	token := bearerToken(r.Header.Get("Authorization"))
	if len(token) > maxAuthTokenSize {
		return nil, gateway.Errorf(gateway.CodeBadCredentials, "invalid token")
	}
	return h.p.Authenticate(ctx, "", token, src)
}

// jsonEnvelope decodes a JSON message, composes it and fills env, its SES
// parameters included.
// digest, when not nil, gets the body as it is read.
func (h *Handler) jsonEnvelope(w http.ResponseWriter, r *http.Request, env *gateway.Envelope, limit int64, digest io.Writer) error {
	if r.URL.RawQuery != "" {
		return gateway.Errorf(gateway.CodeMalformed, "query parameters are not used with a JSON body")
	}
	if r.ContentLength > limit {
		return gateway.Errorf(gateway.CodeTooLarge, "request body exceeds %d bytes", limit)
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit)
	if digest != nil {
		body = io.TeeReader(body, digest)
	}
	req, err := decodeJSON(body)
	if err != nil {
		return err
	}
	b, err := req.build(env.ID, h.now(), env.Tenant.MaxRecipients())
	if err != nil {
		return err
	}
	if _, err := h.p.CheckSender(env.Tenant, b.from); err != nil {
		return err // cheap, so before composing
	}
	data, err := Compose(b.msg)
	if err != nil {
		return err
	}
	env.From, env.Recipients, env.Data, env.SES = b.from, b.rcpts, data, b.ses
	env.DataOwned = true // composed by us: Submit prepares it in place
	return nil
}

// rawEnvelope reads a message/rfc822 body and fills env. HTTP is 8-bit
// clean, so the message may carry 8-bit data (EightBit); Submit strips Bcc
// and checks lines and headers.
// digest, when not nil, gets the body.
func (h *Handler) rawEnvelope(w http.ResponseWriter, r *http.Request, env *gateway.Envelope, limit int64, digest io.Writer) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	if digest != nil {
		digest.Write(body)
	}
	if len(body) == 0 {
		return gateway.Errorf(gateway.CodeMalformed, "empty request body")
	}
	from, rcpts, err := rawEnvelope(r.URL.Query(), body, env.Tenant.MaxRecipients())
	if err != nil {
		return err
	}
	env.From, env.Recipients, env.Data, env.EightBit = from, rcpts, body, true
	env.DataOwned = true // read by us, digested: Submit prepares it in place
	return nil
}

// readBody reads the whole body, at most limit bytes, holding it once: into
// a slice of its declared length, or, without one (chunked), into a
// gateway.MessageBuffer (the memory budget was taken for the limit by
// admit, so the buffer does not take from it again).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, gateway.Errorf(gateway.CodeTooLarge, "request body exceeds %d bytes", limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var data []byte
	var err error
	if r.ContentLength >= 0 {
		// net/http ends the body at its declared length, and reports a
		// body cut short as io.ErrUnexpectedEOF.
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, data)
	} else {
		buf := gateway.NewMessageBuffer(nil)
		defer buf.Release()
		_, err = buf.ReadFrom(body)
		data = buf.Bytes()
	}
	if err != nil {
		if tooLarge(err) {
			return nil, gateway.Wrap(gateway.CodeTooLarge, err, fmt.Sprintf("request body exceeds %d bytes", limit))
		}
		return nil, gateway.Wrap(gateway.CodeMalformed, err, "reading the request body failed")
	}
	return data, nil
}

// bearerToken extracts the token of "Authorization: Bearer <token>".
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// writeJSON writes v as the JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}
