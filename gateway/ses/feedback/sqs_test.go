package feedback

import (
	"context"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/internal/sestest/sqstest"
)

type sqsRig struct {
	srv   *sqstest.Server
	queue string
	sink  *sink
	reg   *prometheus.Registry
	c     *SQSConsumer
	done  chan error
	stop  context.CancelFunc
}

func newSQSRig(t *testing.T, proc Processor, mod func(*SQSOptions)) *sqsRig {
	t.Helper()
	srv, err := sqstest.Start(sqstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	good, other := testKeys()
	r := &sqsRig{srv: srv, queue: srv.QueueURL("events"), sink: &sink{}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	if proc == nil {
		proc = r.sink
	}
	in, err := NewIngester(IngesterOptions{Processor: proc, Tenants: tenants{"t1": true}})
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSQSTEST", "secret", ""),
		Retryer:      aws.NopRetryer{},
	})
	opts := SQSOptions{
		Client: client, QueueURL: r.queue, Ingester: in, TopicARNs: []string{testTopic},
		Verifier:   NewVerifier(VerifierOptions{Fetcher: &fetcher{certs: map[string]*x509.Certificate{testCertURL: good.cert, otherURL: other.cert}}}),
		Registerer: r.reg, Backoff: 10 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	r.c, err = NewSQSConsumer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *sqsRig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.c.Run(ctx) }()
	t.Cleanup(func() { r.shutdown(t) })
}

// shutdown cancels Run and checks it returns promptly, mid long poll.
func (r *sqsRig) shutdown(t *testing.T) {
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Error("Run did not stop within 3 s of cancel")
	}
}

func (r *sqsRig) send(t *testing.T, body string) {
	t.Helper()
	if _, err := r.srv.Send("events", body); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSQSConsumer(t *testing.T) {
	good, other := testKeys()
	now := time.Now()
	ev := sesEvent("Bounce", "t1", now.Add(-time.Minute), "x@example.net")
	wrapped := func(id string) string {
		return mustJSON(notification(good, "2", id, testTopic, testCertURL, ev, now))
	}
	// An hour-old notification is fine on a queue (no age check there).
	old := mustJSON(notification(good, "1", "m-old", testTopic, testCertURL, sesEvent("Complaint", "t1", now.Add(-3*time.Hour), "y@example.net"), now.Add(-2*time.Hour)))
	forged := notification(good, "2", "m-forged", testTopic, testCertURL, ev, now)
	forged["Message"] = strings.Replace(ev, "x@example.net", "z@example.net", 1)
	resigned := notification(other, "2", "m-other", testTopic, testCertURL, ev, now)
	unknownTopic := notification(good, "2", "m-topic", "arn:aws:sns:us-east-1:999999999999:evil", testCertURL, ev, now)
	tests := []struct {
		name     string
		raw      bool
		bodies   []string
		events   int
		outcomes map[string]float64
	}{
		{name: "wrapped notifications, one replayed", bodies: []string{wrapped("m-1"), wrapped("m-1"), old}, events: 2,
			outcomes: map[string]float64{OutcomeProcessed: 2, OutcomeDuplicate: 1}},
		{name: "refusals are deleted and change nothing",
			bodies: []string{ev, mustJSON(forged), mustJSON(resigned), mustJSON(unknownTopic), wrapped("m-2")[:40], `{"hello":1}`,
				mustJSON(notification(good, "2", "m-unknown", testTopic, testCertURL, sesEvent("Bounce", "t9", now, "x@example.net"), now))},
			outcomes: map[string]float64{OutcomeRawRefused: 1, OutcomeForged: 2, OutcomeTopic: 1, OutcomeMalformed: 2, OutcomeUnattributed: 1}},
		{name: "raw bodies accepted when configured, deduplicated", raw: true, bodies: []string{ev, ev, wrapped("m-3")}, events: 2,
			outcomes: map[string]float64{OutcomeProcessed: 2, OutcomeDuplicate: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newSQSRig(t, nil, func(o *SQSOptions) { o.AcceptRaw = tc.raw })
			for _, b := range tc.bodies {
				r.send(t, b)
			}
			r.run(t)
			waitFor(t, "every message deleted", func() bool { return r.srv.Stats("events").Deleted == len(tc.bodies) })
			if st := r.srv.Stats("events"); st.Queued != 0 || st.Received != len(tc.bodies) {
				t.Fatalf("queue stats %+v", st)
			}
			if n := len(r.sink.Events()); n != tc.events {
				t.Fatalf("sink got %d events; want %d", n, tc.events)
			}
			for outcome, want := range tc.outcomes {
				if got := counter(t, r.reg, "sesgate_feedback_sqs_messages_total", outcome); got != want {
					t.Errorf("outcome %s = %v; want %v", outcome, got, want)
				}
			}
		})
	}
}

func TestSQSKeepsFailedMessages(t *testing.T) {
	r := newSQSRig(t, nil, func(o *SQSOptions) { o.VisibilityTimeout = 1 })
	r.sink.fail = 1
	r.send(t, mustJSON(notification(mustGood(), "2", "m-1", testTopic, testCertURL, sesEvent("Bounce", "t1", time.Now(), "x@example.net"), time.Now())))
	r.run(t)
	waitFor(t, "the redelivered message deleted", func() bool { return r.srv.Stats("events").Deleted == 1 })
	st := r.srv.Stats("events")
	if st.Received != 2 || len(r.sink.Events()) != 1 {
		t.Fatalf("received %d times, %d events; want 2 and 1", st.Received, len(r.sink.Events()))
	}
	if got := counter(t, r.reg, "sesgate_feedback_sqs_messages_total", OutcomeTemporary); got != 1 {
		t.Fatalf("temporary_failure = %v", got)
	}
}

func mustGood() signer { g, _ := testKeys(); return g }

// blockingSink holds every event until released, recording concurrency.
type blockingSink struct {
	mu      sync.Mutex
	now     int
	peak    int
	total   int
	release chan struct{}
}

func (b *blockingSink) ProcessEvent(ctx context.Context, _ *Event) error {
	b.mu.Lock()
	b.now++
	b.peak = max(b.peak, b.now)
	b.mu.Unlock()
	<-b.release
	b.mu.Lock()
	b.now--
	b.total++
	b.mu.Unlock()
	return nil
}

func TestSQSBoundedConcurrencyAndStop(t *testing.T) {
	bs := &blockingSink{release: make(chan struct{})}
	r := newSQSRig(t, bs, func(o *SQSOptions) { o.Concurrency = 2 })
	for i := range 6 {
		r.send(t, mustJSON(notification(mustGood(), "2", "m-"+string(rune('a'+i)), testTopic, testCertURL, sesEvent("Bounce", "t1", time.Now(), "x@example.net"), time.Now())))
	}
	r.run(t)
	waitFor(t, "two in progress", func() bool { bs.mu.Lock(); defer bs.mu.Unlock(); return bs.now == 2 })
	time.Sleep(50 * time.Millisecond)
	close(bs.release)
	waitFor(t, "all deleted", func() bool { return r.srv.Stats("events").Deleted == 6 })
	bs.mu.Lock()
	peak, total := bs.peak, bs.total
	bs.mu.Unlock()
	if peak != 2 || total != 6 {
		t.Fatalf("peak concurrency %d, processed %d; want 2 and 6", peak, total)
	}
	// Run is now in a 20 s long poll; cancel must end it at once.
	start := time.Now()
	r.shutdown(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if st := r.srv.Stats("events"); st.Polls < 2 {
		t.Fatalf("polls %d", st.Polls)
	}
}

func TestSQSReceiveErrorsBackOff(t *testing.T) {
	r := newSQSRig(t, nil, func(o *SQSOptions) { o.QueueURL = strings.Replace(o.QueueURL, "events", "missing", 1) })
	r.run(t)
	waitFor(t, "receive errors counted", func() bool {
		return counter(t, r.reg, "sesgate_feedback_sqs_messages_total", OutcomeReceiveError) >= 2
	})
}

func TestNewSQSConsumerRequires(t *testing.T) {
	in, _ := NewIngester(IngesterOptions{Processor: &sink{}, Tenants: tenants{}})
	c := sqs.New(sqs.Options{Region: "us-east-1"})
	for _, o := range []SQSOptions{
		{QueueURL: "q", Ingester: in, TopicARNs: []string{testTopic}},
		{Client: c, Ingester: in, TopicARNs: []string{testTopic}},
		{Client: c, QueueURL: "q", TopicARNs: []string{testTopic}},
		{Client: c, QueueURL: "q", Ingester: in},
		{Client: c, QueueURL: "q", Ingester: in, TopicARNs: []string{testTopic}, Concurrency: 1000},
	} {
		if _, err := NewSQSConsumer(o); err == nil {
			t.Errorf("NewSQSConsumer(%+v) accepted", o)
		}
	}
}
