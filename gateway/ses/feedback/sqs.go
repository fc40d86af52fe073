package feedback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
)

// SQS consumer defaults and limits.
const (
	DefaultSQSConcurrency = 4
	MaxSQSConcurrency     = 64
	SQSWaitSeconds        = 20 // long polling, the SQS maximum
	SQSMaxMessages        = 10 // per receive, the SQS maximum
	DefaultSQSBackoff     = time.Second
	maxSQSBackoff         = 30 * time.Second
	sqsDeleteTimeout      = 10 * time.Second
)

// More outcomes, for the SQS consumer.
const (
	OutcomeIgnored      = "ignored" // an SNS message other than a Notification
	OutcomeReceiveError = "receive_error"
	OutcomeDeleteError  = "delete_error"
)

// SQSClient is the part of *sqs.Client the consumer uses.
type SQSClient interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// SQSOptions configure an SQSConsumer. Client, QueueURL and Ingester are
// required, and TopicARNs unless only raw bodies are expected.
type SQSOptions struct {
	Client   SQSClient
	QueueURL string
	Ingester *Ingester
	// TopicARNs are the topics whose SNS-wrapped messages are accepted;
	// their signature is always verified with Verifier (default
	// NewVerifier(VerifierOptions{})).
	TopicARNs []string
	Verifier  *Verifier
	// AcceptRaw accepts bare SES JSON bodies, as the queue receives with
	// SNS RawMessageDelivery; they carry no signature, so only set it when
	// the queue policy admits nothing but your topic.
	AcceptRaw bool
	// Dedupe drops repeated messages: by SNS MessageId for wrapped bodies
	// (the same key as the SNS handler, so a shared Deduper covers both),
	// by a hash of the body for raw ones (SNS may deliver one event twice,
	// as two SQS messages). Default a MemDeduper.
	Dedupe Deduper
	// Concurrency bounds the messages processed at once; default
	// DefaultSQSConcurrency, at most MaxSQSConcurrency.
	Concurrency int
	// VisibilityTimeout for received messages, seconds; 0 keeps the
	// queue's own.
	VisibilityTimeout int32
	// Backoff after a failed receive, doubling up to 30 s; default 1 s.
	Backoff    time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer // sesgate_feedback_sqs_messages_total{outcome}
}

// SQSConsumer long-polls one queue. Start it with Run.
type SQSConsumer struct {
	client    SQSClient
	queue     string
	ingest    *Ingester
	topics    []string
	verifier  *Verifier
	acceptRaw bool
	dedupe    Deduper
	conc      int
	vis       int32
	backoff   time.Duration
	log       *slog.Logger
	messages  *prometheus.CounterVec
}

// NewSQSConsumer returns an SQSConsumer built from opts.
func NewSQSConsumer(opts SQSOptions) (*SQSConsumer, error) {
	switch {
	case opts.Client == nil || opts.QueueURL == "" || opts.Ingester == nil:
		return nil, errors.New("feedback: SQSOptions.Client, QueueURL and Ingester are required")
	case len(opts.TopicARNs) == 0 && !opts.AcceptRaw:
		return nil, errors.New("feedback: SQSOptions.TopicARNs is required unless AcceptRaw is set")
	case opts.Concurrency < 0 || opts.Concurrency > MaxSQSConcurrency:
		return nil, fmt.Errorf("feedback: SQS concurrency %d outside [1, %d]", opts.Concurrency, MaxSQSConcurrency)
	case opts.VisibilityTimeout < 0 || opts.VisibilityTimeout > 43200:
		return nil, errors.New("feedback: SQS visibility timeout outside [0, 43200] seconds")
	}
	c := &SQSConsumer{
		client: opts.Client, queue: opts.QueueURL, ingest: opts.Ingester, topics: opts.TopicARNs,
		verifier: opts.Verifier, acceptRaw: opts.AcceptRaw, dedupe: opts.Dedupe, conc: opts.Concurrency,
		vis: opts.VisibilityTimeout, backoff: opts.Backoff, log: opts.Logger,
	}
	if c.verifier == nil {
		c.verifier = NewVerifier(VerifierOptions{})
	}
	if c.dedupe == nil {
		c.dedupe = NewMemDeduper(MemDeduperOptions{})
	}
	if c.conc == 0 {
		c.conc = DefaultSQSConcurrency
	}
	if c.backoff <= 0 {
		c.backoff = DefaultSQSBackoff
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_feedback_sqs_messages_total",
		Help: "SQS messages by outcome, and receive or delete failures.",
	}, []string{"outcome"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(c.messages); err != nil {
			return nil, fmt.Errorf("feedback: register metrics: %w", err)
		}
	}
	return c, nil
}

// Run receives and processes messages until ctx is cancelled, then waits
// for the messages in progress and returns nil.
func (c *SQSConsumer) Run(ctx context.Context) error {
	slots := make(chan struct{}, c.conc)
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := c.backoff
	for ctx.Err() == nil {
		in := &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(c.queue),
			MaxNumberOfMessages:         SQSMaxMessages,
			WaitTimeSeconds:             SQSWaitSeconds,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		}
		if c.vis > 0 {
			in.VisibilityTimeout = c.vis
		}
		out, err := c.client.ReceiveMessage(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.messages.WithLabelValues(OutcomeReceiveError).Inc()
			c.log.Error("sqs receive failed", "queue", c.queue, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxSQSBackoff)
			continue
		}
		backoff = c.backoff
		for _, m := range out.Messages {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				// Not processed, not deleted: SQS delivers it again.
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				c.handle(ctx, m)
			}()
		}
	}
	return nil
}

// handle processes one message and deletes it unless a retry could help.
func (c *SQSConsumer) handle(ctx context.Context, m types.Message) {
	status, outcome, attrs := c.process(ctx, []byte(aws.ToString(m.Body)))
	c.messages.WithLabelValues(outcome).Inc()
	attrs = append(attrs, slog.String("sqs_message_id", aws.ToString(m.MessageId)), slog.String("outcome", outcome))
	if status >= 500 {
		c.log.LogAttrs(ctx, slog.LevelError, "sqs message kept for redelivery", attrs...)
		return
	}
	level := slog.LevelDebug
	if status >= 300 {
		level = slog.LevelWarn
	}
	c.log.LogAttrs(ctx, level, "sqs message", attrs...)
	// Delete even during shutdown: the message was processed.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sqsDeleteTimeout)
	defer cancel()
	if _, err := c.client.DeleteMessage(dctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(c.queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
		c.messages.WithLabelValues(OutcomeDeleteError).Inc()
		c.log.Error("sqs delete failed", "sqs_message_id", aws.ToString(m.MessageId), "error", err)
	}
}

// process checks and ingests one body; the status means what it means for
// the SNS handler (2xx done, 4xx never, 5xx retry later).
func (c *SQSConsumer) process(ctx context.Context, body []byte) (int, string, []slog.Attr) {
	if len(body) > MaxSNSBodyBytes {
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, nil
	}
	var probe struct {
		EventType        *string `json:"eventType"`
		NotificationType *string `json:"notificationType"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return http.StatusBadRequest, OutcomeMalformed, []slog.Attr{slog.String("error", err.Error())}
	}
	if probe.EventType != nil || probe.NotificationType != nil {
		if !c.acceptRaw {
			return http.StatusForbidden, OutcomeRawRefused, nil
		}
		// A raw body has no id of its own; a redelivery of the same SQS
		// message is the same bytes, so key on their hash.
		return processOnce(ctx, c.dedupe, c.ingest, "sqs:"+bodyKey(body), body)
	}
	m, err := ParseSNS(body)
	if err != nil {
		return http.StatusBadRequest, OutcomeMalformed, []slog.Attr{slog.String("error", err.Error())}
	}
	attrs := []slog.Attr{slog.String("sns_type", m.Type), slog.String("sns_message_id", m.MessageID), slog.String("topic", m.TopicArn)}
	if !slices.Contains(c.topics, m.TopicArn) {
		return http.StatusForbidden, OutcomeTopic, attrs
	}
	if err := c.verifier.Verify(ctx, m); err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if errors.Is(err, ErrCertUnavailable) {
			return http.StatusServiceUnavailable, OutcomeCertUnavailable, attrs
		}
		return http.StatusForbidden, OutcomeForged, attrs
	}
	if m.Type != SNSNotification {
		return http.StatusOK, OutcomeIgnored, attrs
	}
	status, outcome, more := processOnce(ctx, c.dedupe, c.ingest, "sns:"+m.MessageID, []byte(m.Message))
	return status, outcome, append(attrs, more...)
}

func bodyKey(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}
