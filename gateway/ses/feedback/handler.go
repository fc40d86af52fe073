package feedback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
)

// Defaults of the SNS handler.
const (
	DefaultMaxAge         = time.Hour
	DefaultConfirmTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds reading one request body: 256 KiB at
	// about 50 KiB/s. SNS sends from AWS's network, far faster.
	DefaultBodyTimeout = 5 * time.Second
	// DefaultSNSBudgetBytes bounds the request bodies the endpoint holds
	// at once: 128 of the largest (32 MiB).
	DefaultSNSBudgetBytes = 128 * MaxSNSBodyBytes
	// DefaultMaxBodiesPerSource bounds the bodies read at once from one
	// source (an IPv4 address or an IPv6 /64): one source takes at most an
	// eighth of the default budget.
	DefaultMaxBodiesPerSource = 16
	maxConfirmBody            = 64 << 10
	// busyRetry is the Retry-After of a 503; SNS follows its own retry
	// policy, other clients may use it.
	busyRetry = 5 * time.Second
)

// Outcomes, the values of the "outcome" label and of the log lines.
const (
	OutcomeProcessed       = "processed"
	OutcomeDuplicate       = "duplicate"
	OutcomeConfirmed       = "subscription_confirmed"
	OutcomeUnsubscribed    = "unsubscribe_confirmation"
	OutcomeMethod          = "method_not_allowed"
	OutcomeTooLarge        = "too_large"
	OutcomeBusy            = "busy"
	OutcomeBodyTimeout     = "body_timeout"
	OutcomeMalformed       = "malformed"
	OutcomeRawRefused      = "raw_refused"
	OutcomeTopic           = "topic_not_allowed"
	OutcomeForged          = "forged"
	OutcomeStale           = "stale"
	OutcomeInvalidEvent    = "invalid_event"
	OutcomeUnattributed    = "unattributed"
	OutcomeCertUnavailable = "cert_unavailable"
	OutcomeConfirmFailed   = "confirm_failed"
	OutcomeTemporary       = "temporary_failure"
)

// Confirmer confirms a subscription by visiting its SubscribeURL, which
// already passed CheckSNSURL and belongs to an allowed topic.
type Confirmer interface {
	Confirm(ctx context.Context, subscribeURL string) error
}

// HTTPConfirmer GETs the SubscribeURL with a timeout and no redirects.
type HTTPConfirmer struct {
	Client  *http.Client  // default: a client with Timeout and no redirects
	Timeout time.Duration // default DefaultConfirmTimeout
}

// Confirm implements Confirmer.
func (c *HTTPConfirmer) Confirm(ctx context.Context, url string) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultConfirmTimeout
	}
	client := c.Client
	if client == nil {
		client = noRedirectClient(timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxConfirmBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SubscribeURL answered %d", resp.StatusCode)
	}
	return nil
}

// SNSOptions configure an SNSHandler. TopicARNs and Ingester are required.
type SNSOptions struct {
	// TopicARNs are the topics whose messages are accepted and whose
	// subscriptions are confirmed.
	TopicARNs []string
	Ingester  *Ingester
	// Verifier checks signatures; default NewVerifier(VerifierOptions{}),
	// which fetches certificates over HTTPS.
	Verifier *Verifier
	// Dedupe drops repeated SNS MessageIds; default a MemDeduper whose TTL
	// is at least MaxAge.
	Dedupe Deduper
	// Confirmer visits SubscribeURLs; default an HTTPConfirmer.
	Confirmer Confirmer
	// Regions, when not empty, restricts SubscribeURL hosts to these
	// regions (the Verifier has its own list for certificate URLs).
	Regions []string
	// MaxBodyBytes bounds the request body; default MaxSNSBodyBytes.
	MaxBodyBytes int64
	// BodyTimeout bounds reading the body, from the end of the headers
	// (default DefaultBodyTimeout); a slower body is cut (408).
	BodyTimeout time.Duration
	// Budget bounds the bytes of the bodies read at once (default a budget
	// of DefaultSNSBudgetBytes of its own). A request is given its
	// Content-Length (MaxBodyBytes when none) from it before any of its body
	// is read, or is answered 503 + Retry-After, which SNS retries. It is
	// deliberately not the front ends' message budget: anyone can post
	// here, and a signature is checked only once the body is in.
	Budget *gateway.MemBudget
	// MaxBodiesPerSource bounds the bodies read at once from one source,
	// an IPv4 address or an IPv6 /64 (default DefaultMaxBodiesPerSource);
	// one more is 503, so that one source cannot take the whole Budget.
	// Behind a proxy every
	// request has the proxy's address: raise it there.
	MaxBodiesPerSource int
	// MaxAge refuses messages whose Timestamp is older (or further in the
	// future); default DefaultMaxAge.
	MaxAge time.Duration
	// ConfirmTimeout bounds a subscription confirmation; default
	// DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	Logger         *slog.Logger
	// Registerer receives sesgate_feedback_sns_requests_total{outcome}; nil
	// registers nothing.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// SNSHandler is the SNS HTTPS endpoint. It is safe for concurrent use.
type SNSHandler struct {
	topics    []string
	ingest    *Ingester
	verifier  *Verifier
	dedupe    Deduper
	confirmer Confirmer
	regions   []string
	maxBody   int64
	bodyTO    time.Duration
	budget    *gateway.MemBudget
	maxAge    time.Duration
	confirmTO time.Duration
	log       *slog.Logger
	now       func() time.Time
	requests  *prometheus.CounterVec
	reading   *gateway.Slots[netip.Prefix] // bodies being read, by gateway.SourceKey
}

var _ http.Handler = (*SNSHandler)(nil)

// NewSNSHandler returns an SNSHandler built from opts.
func NewSNSHandler(opts SNSOptions) (*SNSHandler, error) {
	if len(opts.TopicARNs) == 0 || opts.Ingester == nil {
		return nil, errors.New("feedback: SNSOptions.TopicARNs and Ingester are required")
	}
	h := &SNSHandler{
		topics: opts.TopicARNs, ingest: opts.Ingester, verifier: opts.Verifier, dedupe: opts.Dedupe,
		confirmer: opts.Confirmer, regions: opts.Regions, maxBody: opts.MaxBodyBytes, maxAge: opts.MaxAge,
		confirmTO: opts.ConfirmTimeout, log: opts.Logger, now: opts.Now, bodyTO: opts.BodyTimeout, budget: opts.Budget,
	}
	perSource := opts.MaxBodiesPerSource
	if perSource <= 0 {
		perSource = DefaultMaxBodiesPerSource
	}
	h.reading = gateway.NewSlots[netip.Prefix](perSource)
	if h.bodyTO <= 0 {
		h.bodyTO = DefaultBodyTimeout
	}
	if h.budget == nil {
		h.budget, _ = gateway.NewMemBudget(DefaultSNSBudgetBytes)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxBody <= 0 {
		h.maxBody = MaxSNSBodyBytes
	}
	if h.maxAge <= 0 {
		h.maxAge = DefaultMaxAge
	}
	if h.confirmTO <= 0 {
		h.confirmTO = DefaultConfirmTimeout
	}
	if h.verifier == nil {
		h.verifier = NewVerifier(VerifierOptions{Now: h.now})
	}
	if h.dedupe == nil {
		h.dedupe = NewMemDeduper(MemDeduperOptions{TTL: max(DefaultDedupeTTL, 2*h.maxAge), Now: h.now})
	}
	if h.confirmer == nil {
		h.confirmer = &HTTPConfirmer{Timeout: h.confirmTO}
	}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_feedback_sns_requests_total",
		Help: "SNS HTTPS requests by outcome.",
	}, []string{"outcome"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("feedback: register metrics: %w", err)
		}
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *SNSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, outcome, attrs := h.serve(w, r)
	h.requests.WithLabelValues(outcome).Inc()
	level := slog.LevelWarn
	switch {
	case status < 300:
		level = slog.LevelInfo
		if outcome == OutcomeProcessed || outcome == OutcomeDuplicate {
			level = slog.LevelDebug
		}
	case status >= 500:
		level = slog.LevelError
	}
	attrs = append(attrs, slog.Int("status", status), slog.String("outcome", outcome), slog.String("remote", r.RemoteAddr))
	h.log.LogAttrs(r.Context(), level, "sns request", attrs...)
	switch status {
	case http.StatusRequestEntityTooLarge, http.StatusRequestTimeout:
		w.Header().Set("Connection", "close")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int(busyRetry/time.Second)))
		if outcome == OutcomeBusy {
			w.Header().Set("Connection", "close") // the body was not read
		}
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, outcome+"\n")
}

// serve handles one request and returns the status, the outcome and the
// attributes of its log line.
func (h *SNSHandler) serve(w http.ResponseWriter, r *http.Request) (int, string, []slog.Attr) {
	// The body, read here or drained by net/http after a refusal, comes
	// within the body timeout or the connection is cut. The socket
	// deadline follows the real clock, as the server's own.
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTO)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return http.StatusInternalServerError, OutcomeTemporary, []slog.Attr{slog.String("error", err.Error())}
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, OutcomeMethod, nil
	}
	if r.ContentLength > h.maxBody {
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, []slog.Attr{slog.Int64("content_length", r.ContentLength)}
	}
	if r.Header.Get("x-amz-sns-rawdelivery") == "true" {
		return http.StatusForbidden, OutcomeRawRefused, nil
	}
	hold := h.maxBody
	if r.ContentLength >= 0 {
		hold = r.ContentLength
	}
	release, ok := h.take(r, hold)
	if !ok {
		return http.StatusServiceUnavailable, OutcomeBusy, []slog.Attr{slog.Int64("content_length", r.ContentLength)}
	}
	defer release() // the body stays in memory until the answer
	body, status, outcome, bad := h.readBody(w, r, hold)
	if status != 0 {
		return status, outcome, bad
	}
	m, err := ParseSNS(body)
	if err != nil {
		return http.StatusBadRequest, OutcomeMalformed, []slog.Attr{slog.String("error", err.Error())}
	}
	attrs := []slog.Attr{slog.String("sns_type", m.Type), slog.String("sns_message_id", m.MessageID), slog.String("topic", m.TopicArn)}
	if t := r.Header.Get("x-amz-sns-message-type"); t != "" && t != m.Type {
		return http.StatusBadRequest, OutcomeMalformed, append(attrs, slog.String("error", "x-amz-sns-message-type does not match Type"))
	}
	if !slices.Contains(h.topics, m.TopicArn) {
		return http.StatusForbidden, OutcomeTopic, attrs
	}
	if err := h.verifier.Verify(r.Context(), m); err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if errors.Is(err, ErrCertUnavailable) {
			return http.StatusServiceUnavailable, OutcomeCertUnavailable, attrs
		}
		return http.StatusForbidden, OutcomeForged, attrs
	}
	if age := h.now().Sub(m.Time()); age > h.maxAge || age < -h.maxAge {
		return http.StatusForbidden, OutcomeStale, append(attrs, slog.Duration("age", age))
	}
	switch m.Type {
	case SNSSubscriptionConfirmation:
		if _, err := CheckSNSURL(m.SubscribeURL, h.regions); err != nil {
			return http.StatusForbidden, OutcomeForged, append(attrs, slog.String("error", "SubscribeURL: "+err.Error()))
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.confirmTO)
		defer cancel()
		if err := h.confirmer.Confirm(ctx, m.SubscribeURL); err != nil {
			return http.StatusServiceUnavailable, OutcomeConfirmFailed, append(attrs, slog.String("error", err.Error()))
		}
		return http.StatusOK, OutcomeConfirmed, attrs
	case SNSUnsubscribeConfirmation:
		// Nothing to do: the subscription is gone, and re-subscribing is
		// an operator's decision.
		return http.StatusOK, OutcomeUnsubscribed, attrs
	}
	status, outcome, more := processOnce(r.Context(), h.dedupe, h.ingest, "sns:"+m.MessageID, []byte(m.Message))
	return status, outcome, append(attrs, more...)
}

// take gives a request hold bytes of the budget and one of its source's
// places until release; false when either is full.
func (h *SNSHandler) take(r *http.Request, hold int64) (release func(), ok bool) {
	src := gateway.SourceKey(gateway.RemoteAddr(r.RemoteAddr))
	if !h.reading.Take(src) {
		return nil, false
	}
	if !h.budget.TryTake(hold) {
		h.reading.Give(src)
		return nil, false
	}
	return func() {
		h.budget.Release(hold)
		h.reading.Give(src)
	}, true
}

// readBody reads the body, at most maxBody bytes (within the deadline
// serve set), into a buffer of size bytes; on failure it returns the status,
// outcome and log attributes of the answer.
func (h *SNSHandler) readBody(w http.ResponseWriter, r *http.Request, size int64) ([]byte, int, string, []slog.Attr) {
	var buf bytes.Buffer
	buf.Grow(int(size) + bytes.MinRead) // ReadFrom needs MinRead free to see EOF
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody))
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return buf.Bytes(), 0, "", nil
	case errors.As(err, &mbe):
		return nil, http.StatusRequestEntityTooLarge, OutcomeTooLarge, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, http.StatusRequestTimeout, OutcomeBodyTimeout,
			[]slog.Attr{slog.Int("read", buf.Len()), slog.Duration("timeout", h.bodyTO)}
	}
	return nil, http.StatusBadRequest, OutcomeMalformed, []slog.Attr{slog.String("error", err.Error())}
}

// processOnce claims key, ingests data and releases the claim when a retry
// could succeed. It returns the HTTP status, the outcome and log
// attributes; the SQS consumer maps the status back to keep or delete.
func processOnce(ctx context.Context, dedupe Deduper, in *Ingester, key string, data []byte) (int, string, []slog.Attr) {
	first, err := dedupe.Claim(ctx, key)
	if err != nil {
		return http.StatusServiceUnavailable, OutcomeTemporary, []slog.Attr{slog.String("error", "dedupe: "+err.Error())}
	}
	if !first {
		return http.StatusOK, OutcomeDuplicate, nil
	}
	ev, err := in.Ingest(ctx, data)
	var attrs []slog.Attr
	if ev != nil {
		attrs = append(attrs, slog.String("event", string(ev.Type)), slog.String("tenant", ev.Tenant),
			slog.String("ses_message_id", ev.SESMessageID), slog.Int("recipients", len(ev.Recipients)))
	}
	if err == nil {
		return http.StatusOK, OutcomeProcessed, attrs
	}
	attrs = append(attrs, slog.String("error", err.Error()))
	switch {
	case errors.Is(err, ErrTemporary):
		if rerr := dedupe.Release(ctx, key); rerr != nil {
			attrs = append(attrs, slog.String("release_error", rerr.Error()))
		}
		return http.StatusServiceUnavailable, OutcomeTemporary, attrs
	case errors.Is(err, ErrUnattributed):
		return http.StatusUnprocessableEntity, OutcomeUnattributed, attrs
	default:
		return http.StatusBadRequest, OutcomeInvalidEvent, attrs
	}
}
