package sestest

import (
	"bytes"
	"container/heap"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event publishing defaults.
const (
	// SNSCertURL is the SigningCertURL of the notifications: a real-looking
	// SNS URL, so the gateway's URL checks run unchanged; a test's injected
	// certificate fetcher answers it with SNSCertificatePEM.
	SNSCertURL        = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-sestest.pem"
	DefaultTopicArn   = "arn:aws:sns:us-east-1:123456789012:sestest-events"
	DefaultEventQueue = 10000
	MaxEventQueue     = 1 << 20
	MaxEventDelay     = time.Hour
	eventAttempts     = 3
	eventPostTimeout  = 10 * time.Second
)

// Event formats.
const (
	FormatEvent        = "event"        // configuration-set event publishing: eventType, mail.tags
	FormatNotification = "notification" // identity notifications: notificationType, no tags
)

// EventOptions make the server publish, for each accepted message, SES
// events as signed SNS notifications (one Bounce or Complaint per chosen
// recipient, one Delivery for the rest when Deliveries is set).
type EventOptions struct {
	// URL receives the notifications (POST, as SNS does). Required.
	URL string `json:"url"`
	// Delay after the send before publishing; at most MaxEventDelay.
	Delay time.Duration `json:"delay,omitempty"`
	// Latency, when set, replaces Delay for every event type with a
	// distribution (latency.go); BounceLatency, ComplaintLatency and
	// DeliveryLatency override it per type. Each event type of a message
	// is then published on its own, when its latency has passed.
	Latency          *Latency `json:"latency,omitempty"`
	BounceLatency    *Latency `json:"bounce_latency,omitempty"`
	ComplaintLatency *Latency `json:"complaint_latency,omitempty"`
	DeliveryLatency  *Latency `json:"delivery_latency,omitempty"`
	// TopicArn of the notifications; default DefaultTopicArn.
	TopicArn string `json:"topic_arn,omitempty"`
	// Format is FormatEvent (default) or FormatNotification.
	Format string `json:"format,omitempty"`
	// SignatureVersion "1" (SHA1withRSA) or "2" (SHA256withRSA, default).
	SignatureVersion string `json:"signature_version,omitempty"`
	// Recipients whose local part starts with BounceLocalPart bounce and
	// with ComplaintLocalPart complain (case-insensitive; defaults
	// "bounce" and "complaint"; "-" disables).
	BounceLocalPart    string `json:"bounce_local_part,omitempty"`
	ComplaintLocalPart string `json:"complaint_local_part,omitempty"`
	// BounceFraction of the other recipients bounce too, chosen by a hash
	// of Seed and the address: the same address always gets the same fate.
	BounceFraction float64 `json:"bounce_fraction,omitempty"`
	Seed           uint64  `json:"seed,omitempty"`
	// Bounce type and subtype; default Permanent / General.
	BounceType    string `json:"bounce_type,omitempty"`
	BounceSubType string `json:"bounce_sub_type,omitempty"`
	// Deliveries publishes a Delivery for the recipients that neither
	// bounce nor complain.
	Deliveries bool `json:"deliveries,omitempty"`
	// QueueSize bounds the queued notifications (default
	// DefaultEventQueue; as many more wait for their due time in the
	// publisher); it is fixed by the first SetEvents. Beyond it
	// notifications are dropped and counted.
	QueueSize int `json:"queue_size,omitempty"`
	// Client posts the notifications; default a client with a 10 s timeout.
	Client *http.Client `json:"-"`
}

// EventStats count the notifications.
type EventStats struct {
	Published int64 `json:"published"` // answered 2xx
	Refused   int64 `json:"refused"`   // answered otherwise, after retries of 5xx
	Dropped   int64 `json:"dropped"`   // queue full
}

// events is the publishing state of a Server.
type events struct {
	keyOnce sync.Once
	key     *rsa.PrivateKey
	certPEM []byte
	keyErr  error

	mu     sync.Mutex
	opts   *EventOptions // nil: disabled
	queue  chan pendingEvent
	worker sync.WaitGroup

	published, refused, dropped atomic.Int64
}

type pendingEvent struct {
	due  time.Time
	msg  Message // without Raw
	opts EventOptions
	only string // kindBounce, kindComplaint, kindDelivery; "": every kind
}

func (o *EventOptions) check() error {
	u, err := url.Parse(o.URL)
	latErr := o.checkLatencies()
	switch {
	case o.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return errors.New("sestest: EventOptions.URL must be an http(s) URL")
	case o.Delay < 0 || o.Delay > MaxEventDelay:
		return fmt.Errorf("sestest: event delay %v outside [0, %v]", o.Delay, MaxEventDelay)
	case o.Format != "" && o.Format != FormatEvent && o.Format != FormatNotification:
		return fmt.Errorf("sestest: event format %q", o.Format)
	case o.SignatureVersion != "" && o.SignatureVersion != "1" && o.SignatureVersion != "2":
		return fmt.Errorf("sestest: signature version %q", o.SignatureVersion)
	case o.BounceFraction < 0 || o.BounceFraction > 1:
		return errors.New("sestest: bounce fraction outside [0, 1]")
	case latErr != nil:
		return latErr
	case o.QueueSize < 0 || o.QueueSize > MaxEventQueue:
		return fmt.Errorf("sestest: queue size outside [0, %d]", MaxEventQueue)
	case o.BounceType != "" && o.BounceType != "Permanent" && o.BounceType != "Transient" && o.BounceType != "Undetermined":
		return fmt.Errorf("sestest: bounce type %q", o.BounceType)
	}
	return nil
}

// SetEvents turns event publishing on with opts, or off with nil. Pending
// notifications keep the options they were queued with.
func (s *Server) SetEvents(opts *EventOptions) error {
	if opts == nil {
		s.ev.mu.Lock()
		s.ev.opts = nil
		s.ev.mu.Unlock()
		return nil
	}
	o := *opts
	if err := o.check(); err != nil {
		return err
	}
	if o.TopicArn == "" {
		o.TopicArn = DefaultTopicArn
	}
	if o.Format == "" {
		o.Format = FormatEvent
	}
	if o.SignatureVersion == "" {
		o.SignatureVersion = "2"
	}
	if o.BounceLocalPart == "" {
		o.BounceLocalPart = "bounce"
	}
	if o.ComplaintLocalPart == "" {
		o.ComplaintLocalPart = "complaint"
	}
	if o.BounceType == "" {
		o.BounceType, o.BounceSubType = "Permanent", "General"
	}
	if o.BounceSubType == "" {
		o.BounceSubType = "General"
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: eventPostTimeout}
	}
	if _, err := s.SNSCertificatePEM(); err != nil {
		return err
	}
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	select {
	case <-s.closed:
		return errors.New("sestest: server closed")
	default:
	}
	if s.ev.queue == nil {
		n := o.QueueSize
		if n == 0 {
			n = DefaultEventQueue
		}
		s.ev.queue = make(chan pendingEvent, n)
		s.ev.worker.Add(1)
		go s.publishLoop(s.ev.queue)
	}
	s.ev.opts = &o
	return nil
}

// EventStats returns the publishing counters.
func (s *Server) EventStats() EventStats {
	return EventStats{Published: s.ev.published.Load(), Refused: s.ev.refused.Load(), Dropped: s.ev.dropped.Load()}
}

// SNSCertificatePEM returns the PEM certificate whose key signs the
// notifications (a self-signed RSA 2048 key made at first use).
func (s *Server) SNSCertificatePEM() ([]byte, error) {
	s.ev.keyOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			s.ev.keyErr = err
			return
		}
		now := s.now()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano()),
			Subject:      pkix.Name{CommonName: "sns.amazonaws.com"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(365 * 24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			s.ev.keyErr = err
			return
		}
		s.ev.key = key
		s.ev.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
	return s.ev.certPEM, s.ev.keyErr
}

// queueEvents queues the notifications of m when publishing is on. It
// never blocks: a full queue drops and counts.
func (s *Server) queueEvents(m Message, now time.Time) {
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	if s.ev.opts == nil {
		return
	}
	m.Raw = nil
	o := s.ev.opts
	pending := []pendingEvent{{due: now.Add(o.Delay), msg: m, opts: *o}}
	if o.hasLatency() {
		pending = pending[:0]
		for _, kind := range []string{kindBounce, kindComplaint, kindDelivery} {
			d := o.Delay
			if l := o.latencyFor(kind); l != nil {
				d = l.Sample(o.Seed, m.ID, kind)
			}
			pending = append(pending, pendingEvent{due: now.Add(d), msg: m, opts: *o, only: kind})
		}
	}
	for _, p := range pending {
		select {
		case s.ev.queue <- p:
		default:
			s.ev.dropped.Add(1)
		}
	}
}

// publishLoop posts the queued notifications when they are due, until
// the server closes.
func (s *Server) publishLoop(queue chan pendingEvent) {
	defer s.ev.worker.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closed
		cancel()
	}()
	// Pending events wait in a heap by due time (each event type of a
	// message may have its own latency); at most cap(queue) of them, more
	// wait in the queue, which drops beyond its size.
	var due dueHeap
	for {
		in := queue
		if due.Len() >= cap(queue) {
			in = nil
		}
		var fire <-chan time.Time
		var t *time.Timer
		if due.Len() > 0 {
			// Due times use the real clock; the events carry s.now().
			t = time.NewTimer(time.Until(due[0].due))
			fire = t.C
		}
		select {
		case <-s.closed:
			return
		case p := <-in:
			heap.Push(&due, p)
		case <-fire:
		}
		if t != nil {
			t.Stop()
		}
		for due.Len() > 0 && !due[0].due.After(time.Now()) {
			s.publish(ctx, heap.Pop(&due).(pendingEvent))
		}
	}
}

// publish posts p's notifications.
func (s *Server) publish(ctx context.Context, p pendingEvent) {
	for _, body := range s.notifications(p) {
		if s.post(ctx, p.opts, body) {
			s.ev.published.Add(1)
		} else {
			s.ev.refused.Add(1)
		}
	}
}

// post sends one notification, retrying 5xx and network errors as SNS
// does (here: 3 attempts, 100 ms apart).
func (s *Server) post(ctx context.Context, o EventOptions, n snsNotification) bool {
	for attempt := range eventAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(100 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(n.body))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "text/plain; charset=UTF-8")
		req.Header.Set("User-Agent", "Amazon Simple Notification Service Agent")
		req.Header.Set("x-amz-sns-message-type", "Notification")
		req.Header.Set("x-amz-sns-message-id", n.id)
		req.Header.Set("x-amz-sns-topic-arn", o.TopicArn)
		req.Header.Set("x-amz-sns-subscription-arn", o.TopicArn+":sestest")
		resp, err := o.Client.Do(req)
		if err != nil {
			s.log.Debug("sestest event post failed", "error", err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 300 {
			return true
		}
		s.log.Debug("sestest event refused", "status", resp.StatusCode)
		if resp.StatusCode < 500 {
			return false
		}
	}
	return false
}

type snsNotification struct {
	id   string
	body []byte
}

// notifications builds the signed SNS notifications for p.
func (s *Server) notifications(p pendingEvent) []snsNotification {
	o := p.opts
	var bounced, complained, delivered []string
	for _, rcpt := range p.msg.Recipients() {
		switch {
		case localPartHas(rcpt, o.BounceLocalPart) || chosen(o.Seed, rcpt, o.BounceFraction):
			bounced = append(bounced, rcpt)
		case localPartHas(rcpt, o.ComplaintLocalPart):
			complained = append(complained, rcpt)
		default:
			delivered = append(delivered, rcpt)
		}
	}
	switch p.only {
	case kindBounce:
		complained, delivered = nil, nil
	case kindComplaint:
		bounced, delivered = nil, nil
	case kindDelivery:
		bounced, complained = nil, nil
	}
	now := s.now().UTC()
	var out []snsNotification
	for _, rcpt := range bounced {
		out = append(out, s.sign(o, now, sesEvent(p.msg, o, now, "Bounce", "bounce", bounceObject(o, now, rcpt))))
	}
	for _, rcpt := range complained {
		out = append(out, s.sign(o, now, sesEvent(p.msg, o, now, "Complaint", "complaint", map[string]any{
			"complainedRecipients":  []map[string]string{{"emailAddress": rcpt}},
			"timestamp":             isoTime(now),
			"feedbackId":            newMessageID(now),
			"complaintSubType":      nil,
			"complaintFeedbackType": "abuse",
			"userAgent":             "sestest",
			"arrivalDate":           isoTime(now),
		})))
	}
	if o.Deliveries && len(delivered) > 0 {
		out = append(out, s.sign(o, now, sesEvent(p.msg, o, now, "Delivery", "delivery", map[string]any{
			"timestamp":            isoTime(now),
			"processingTimeMillis": now.Sub(p.msg.Received).Milliseconds(),
			"recipients":           delivered,
			"smtpResponse":         "250 2.6.0 Message received",
			"reportingMTA":         "sestest.local",
		})))
	}
	return out
}

func bounceObject(o EventOptions, now time.Time, rcpt string) map[string]any {
	status, diag := "5.1.1", "smtp; 550 5.1.1 user unknown"
	if o.BounceType != "Permanent" {
		status, diag = "4.2.2", "smtp; 452 4.2.2 mailbox full"
	}
	return map[string]any{
		"bounceType":    o.BounceType,
		"bounceSubType": o.BounceSubType,
		"bouncedRecipients": []map[string]string{{
			"emailAddress": rcpt, "action": "failed", "status": status, "diagnosticCode": diag,
		}},
		"timestamp":    isoTime(now),
		"feedbackId":   newMessageID(now),
		"reportingMTA": "dsn; sestest.local",
	}
}

// sesEvent builds the SES JSON of one event in o's format.
func sesEvent(m Message, o EventOptions, now time.Time, typ, key string, body map[string]any) []byte {
	mail := map[string]any{
		"timestamp":        isoTime(m.Received),
		"messageId":        m.ID,
		"source":           m.From,
		"sourceArn":        "arn:aws:ses:us-east-1:123456789012:identity/" + domainOf(m.From),
		"sourceIp":         "127.0.0.1",
		"sendingAccountId": "123456789012",
		"destination":      m.Recipients(),
		"headersTruncated": false,
	}
	ev := map[string]any{key: body, "mail": mail}
	if o.Format == FormatNotification {
		ev["notificationType"] = typ
	} else {
		ev["eventType"] = typ
		tags := map[string][]string{
			"ses:source-ip":       {"127.0.0.1"},
			"ses:from-domain":     {domainOf(m.From)},
			"ses:caller-identity": {"sestest"},
		}
		if m.ConfigurationSet != "" {
			tags["ses:configuration-set"] = []string{m.ConfigurationSet}
		}
		for k, v := range m.Tags {
			tags[k] = []string{v}
		}
		mail["tags"] = tags
	}
	data, _ := json.Marshal(ev)
	return data
}

// sign wraps an SES event in a signed SNS Notification.
func (s *Server) sign(o EventOptions, now time.Time, message []byte) snsNotification {
	n := map[string]string{
		"Type":             "Notification",
		"MessageId":        newUUID(),
		"TopicArn":         o.TopicArn,
		"Message":          string(message),
		"Timestamp":        isoTime(now),
		"SignatureVersion": o.SignatureVersion,
		"SigningCertURL":   SNSCertURL,
		"UnsubscribeURL":   "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + o.TopicArn + ":sestest",
	}
	n["Signature"] = SignSNS(s.ev.key, n)
	body, _ := json.Marshal(n)
	return snsNotification{id: n["MessageId"], body: body}
}

// SignSNS returns the base64 signature of an SNS message (its fields by
// name, SignatureVersion among them) with key, over the documented string
// to sign. Tests use it to sign their own messages.
func SignSNS(key *rsa.PrivateKey, fields map[string]string) string {
	keys := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if fields["Type"] != "Notification" {
		keys = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var b strings.Builder
	for _, k := range keys {
		v, ok := fields[k]
		if !ok {
			continue
		}
		b.WriteString(k + "\n" + v + "\n")
	}
	var sig []byte
	if fields["SignatureVersion"] == "1" {
		d := sha1.Sum([]byte(b.String()))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(b.String()))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

func localPartHas(addr, prefix string) bool {
	if prefix == "" || prefix == "-" {
		return false
	}
	at := strings.LastIndexByte(addr, '@')
	return at >= 0 && strings.HasPrefix(strings.ToLower(addr[:at]), strings.ToLower(prefix))
}

// chosen reports whether addr falls in fraction, by a hash of seed and
// the lowercased address.
func chosen(seed uint64, addr string, fraction float64) bool {
	if fraction <= 0 {
		return false
	}
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(strings.ToLower(addr)))
	return float64(h.Sum64()>>11)/float64(1<<53) < fraction
}
