package feedback

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/internal/sestest"
)

const (
	testTopic   = "arn:aws:sns:us-east-1:123456789012:ses-events"
	testCertURL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
	otherURL    = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-other.pem"
	sesMsgID    = "0100018c1d2e3f40-11111111-2222-3333-4444-555555555555-000000"
)

// signer is a key with its self-signed certificate.
type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newSigner() signer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return signer{key: key, cert: cert}
}

// keys made once per test binary: RSA key generation is slow under -race.
var testKeys = sync.OnceValues(func() (signer, signer) {
	return newSigner(), newSigner()
})

// fetcher serves fixed certificates by URL and counts fetches.
type fetcher struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
	calls int
	err   error
}

func (f *fetcher) FetchCert(_ context.Context, url string) (*x509.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	c, ok := f.certs[url]
	if !ok {
		return nil, errors.New("404")
	}
	return c, nil
}

func (f *fetcher) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// sink is the in-memory Processor.
type sink struct {
	mu     sync.Mutex
	events []*Event
	fail   int // fail the next fail calls
}

func (s *sink) ProcessEvent(_ context.Context, ev *Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("store down")
	}
	s.events = append(s.events, ev)
	return nil
}

func (s *sink) Events() []*Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Event(nil), s.events...)
}

type tenants map[string]bool

func (t tenants) KnownTenant(id string) bool { return t[id] }

// lookup maps SES message ids to tenants.
type lookup struct {
	m   map[string]string
	err error
}

func (l lookup) LookupMessage(_ context.Context, id string) (string, string, bool, error) {
	if l.err != nil {
		return "", "", false, l.err
	}
	t, ok := l.m[id]
	return t, "gw-" + id[:4], ok, nil
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// counter returns the value of a counter with label outcome in reg.
func counter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// sesEvent returns an SES event in the event publishing format.
func sesEvent(typ string, tenant string, mailTime time.Time, rcpts ...string) string {
	tags := map[string][]string{"ses:configuration-set": {"cs"}}
	if tenant != "" {
		tags["sesgate-tenant"] = []string{tenant}
		tags["sesgate-id"] = []string{"gw1"}
	}
	ev := map[string]any{
		"eventType": typ,
		"mail": map[string]any{
			"timestamp": mailTime.UTC().Format(time.RFC3339Nano), "messageId": sesMsgID,
			"source": "app@example.com", "destination": rcpts, "tags": tags,
		},
	}
	var list []map[string]string
	for _, r := range rcpts {
		list = append(list, map[string]string{"emailAddress": r, "status": "5.1.1"})
	}
	ts := mailTime.Add(time.Second).UTC().Format(time.RFC3339Nano)
	switch typ {
	case "Bounce":
		ev["bounce"] = map[string]any{"bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": list, "timestamp": ts}
	case "Complaint":
		ev["complaint"] = map[string]any{"complainedRecipients": list, "timestamp": ts, "complaintFeedbackType": "abuse"}
	case "Delivery":
		ev["delivery"] = map[string]any{"recipients": rcpts, "timestamp": ts}
	}
	data, _ := json.Marshal(ev)
	return string(data)
}

// notification returns a signed SNS notification carrying message.
func notification(s signer, version, id, topic, certURL, message string, ts time.Time) map[string]string {
	n := map[string]string{
		"Type": "Notification", "MessageId": id, "TopicArn": topic, "Message": message,
		"Timestamp": ts.UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": version,
		"SigningCertURL": certURL, "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
	}
	n["Signature"] = sestest.SignSNS(s.key, n)
	return n
}

func subscription(s signer, typ, topic, subscribeURL string, ts time.Time) map[string]string {
	n := map[string]string{
		"Type": typ, "MessageId": fmt.Sprintf("sub-%d", ts.UnixNano()), "Token": "tok", "TopicArn": topic,
		"Message": "You have chosen to subscribe", "SubscribeURL": subscribeURL,
		"Timestamp": ts.UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": "2", "SigningCertURL": testCertURL,
	}
	n["Signature"] = sestest.SignSNS(s.key, n)
	return n
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
