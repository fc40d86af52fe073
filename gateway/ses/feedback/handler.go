package feedback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the SNS handler.
const (
	DefaultMaxAge         = time.Hour
	DefaultConfirmTimeout = 10 * time.Second
	maxConfirmBody        = 64 << 10
)

// Outcomes, the values of the "outcome" label and of the log lines.
const (
	OutcomeProcessed       = "processed"
	OutcomeDuplicate       = "duplicate"
	OutcomeConfirmed       = "subscription_confirmed"
	OutcomeUnsubscribed    = "unsubscribe_confirmation"
	OutcomeMethod          = "method_not_allowed"
	OutcomeTooLarge        = "too_large"
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
	maxAge    time.Duration
	confirmTO time.Duration
	log       *slog.Logger
	now       func() time.Time
	requests  *prometheus.CounterVec
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
		confirmTO: opts.ConfirmTimeout, log: opts.Logger, now: opts.Now,
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
	status, outcome, attrs := h.serve(r)
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
	if status == http.StatusRequestEntityTooLarge {
		w.Header().Set("Connection", "close")
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
func (h *SNSHandler) serve(r *http.Request) (int, string, []slog.Attr) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, OutcomeMethod, nil
	}
	if r.ContentLength > h.maxBody {
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, []slog.Attr{slog.Int64("content_length", r.ContentLength)}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		return http.StatusBadRequest, OutcomeMalformed, []slog.Attr{slog.String("error", err.Error())}
	}
	if int64(len(body)) > h.maxBody {
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, nil
	}
	if r.Header.Get("x-amz-sns-rawdelivery") == "true" {
		return http.StatusForbidden, OutcomeRawRefused, nil
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
