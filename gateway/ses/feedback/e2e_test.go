package feedback

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// breakerSink feeds per-tenant breakers from events and remembers the SES
// MessageId of every send, as the gateway will.
type breakerSink struct {
	t        *testing.T
	mu       sync.Mutex
	breakers map[string]breaker.Snapshot
	sent     map[string]string // SES MessageId -> tenant
	events   map[string]int    // tenant -> events
	trips    chan string
}

// step steps tenant's breaker at now and announces its trips. Called with
// s.mu held.
func (s *breakerSink) step(tenant string, now time.Time, obs ...breaker.Observation) breaker.Snapshot {
	b, changes, err := breaker.Step(breaker.TenantDefaults(), s.breakers[tenant], now, obs...)
	if err != nil {
		s.t.Error(err)
	}
	s.breakers[tenant] = b
	for _, c := range changes {
		if c.To == store.Open {
			s.trips <- tenant
		}
	}
	return b
}

// allow asks tenant's breaker to admit one recipient now.
func (s *breakerSink) allow(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	b, ok, _ := breaker.Allow(breaker.TenantDefaults(), s.step(tenant, now), now, 1)
	s.breakers[tenant] = b
	return ok
}

func (s *breakerSink) state(tenant string) store.BreakerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step(tenant, time.Now()).State
}

func (s *breakerSink) ProcessEvent(_ context.Context, ev *Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[ev.Tenant]++
	s.step(ev.Tenant, time.Now(), breaker.Observation{MailTime: ev.MailTime, EventTime: ev.EventTime, HardBounces: ev.HardBounces(), Complaints: ev.Complaints()})
	return nil
}

func (s *breakerSink) LookupMessage(_ context.Context, id string) (string, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.sent[id]
	return t, "", ok, nil
}

func (s *breakerSink) KnownTenant(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.breakers[id]
	return ok
}

// TestEndToEndBouncesTripBreaker sends through the real SES sink to
// sestest, which publishes signed SNS bounces to the SNS handler; the
// events are attributed and feed the tenants' breakers. The tenant whose
// list bounces 30% is stopped; the other keeps sending.
func TestEndToEndBouncesTripBreaker(t *testing.T) {
	tests := []struct {
		name   string
		format string
	}{
		{"event publishing, attributed by tags", sestest.FormatEvent},
		{"identity notifications, attributed by MessageId", sestest.FormatNotification},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, sesURL, stop, err := sestest.Start(sestest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			certPEM, err := srv.SNSCertificatePEM()
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCertPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}

			bs := &breakerSink{t: t, breakers: map[string]breaker.Snapshot{"leaky": {}, "clean": {}},
				sent: map[string]string{}, events: map[string]int{}, trips: make(chan string, 10)}
			in, err := NewIngester(IngesterOptions{Processor: bs, Tenants: bs, Lookup: bs})
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewSNSHandler(SNSOptions{
				TopicARNs: []string{sestest.DefaultTopicArn},
				Ingester:  in,
				Verifier:  NewVerifier(VerifierOptions{Fetcher: &fetcher{certs: map[string]*x509.Certificate{sestest.SNSCertURL: cert}}}),
			})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(h)
			defer hs.Close()
			if err := srv.SetEvents(&sestest.EventOptions{URL: hs.URL, Delay: 10 * time.Millisecond, Format: tc.format}); err != nil {
				t.Fatal(err)
			}

			client, err := ses.NewClient(context.Background(), ses.ClientOptions{
				Region: sestest.DefaultRegion, Endpoint: sesURL,
				Credentials: credentials.NewStaticCredentialsProvider(sestest.DefaultAccessKeyID, sestest.DefaultSecretAccessKey, ""),
			})
			if err != nil {
				t.Fatal(err)
			}
			sink, err := ses.New(ses.Options{Client: client})
			if err != nil {
				t.Fatal(err)
			}
			send := func(tenant, rcpt string) bool {
				if !bs.allow(tenant) {
					return false
				}
				now := time.Now()
				env := &gateway.Envelope{ID: gateway.NewID(now), Tenant: &gateway.Tenant{ID: tenant}, From: "app@example.com",
					Recipients: []string{rcpt}, Data: []byte("From: app@example.com\r\nTo: " + rcpt + "\r\nSubject: hi\r\n\r\nhi\r\n")}
				id, err := sink.Send(context.Background(), env)
				if err != nil {
					t.Fatal(err)
				}
				bs.mu.Lock()
				bs.sent[id] = tenant
				bs.step(tenant, time.Now(), breaker.Observation{MailTime: now, Sent: 1})
				bs.mu.Unlock()
				return true
			}

			// 3 of every 10 recipients of the leaky tenant bounce.
			sentLeaky, sentClean, bounces := 0, 0, 0
			start := time.Now()
			for i := 0; time.Since(start) < 20*time.Second; i++ {
				rcpt := fmt.Sprintf("user%d@example.net", i)
				if i%10 < 3 {
					rcpt = fmt.Sprintf("bounce%d@example.net", i)
				}
				if !send("leaky", rcpt) {
					break
				}
				sentLeaky++
				if i%10 < 3 {
					bounces++
				}
				if send("clean", fmt.Sprintf("user%d@example.org", i)) {
					sentClean++
				}
				time.Sleep(time.Millisecond)
			}
			select {
			case who := <-bs.trips:
				if who != "leaky" {
					t.Fatalf("%s tripped", who)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no trip")
			}
			if leaky, clean := bs.state("leaky"), bs.state("clean"); leaky != store.Open || clean != store.Closed {
				t.Fatalf("states leaky=%s clean=%s", leaky, clean)
			}
			// The fast rule (25 bounces) or the slow one (5% of >= 100)
			// trips well before 400 sends with 30% bouncing.
			if sentLeaky < 25 || sentLeaky > 400 {
				t.Fatalf("leaky sent %d before the trip", sentLeaky)
			}
			if bs.allow("leaky") {
				t.Fatal("tripped tenant admitted")
			}
			if !send("clean", "after@example.org") {
				t.Fatal("clean tenant refused after the other tripped")
			}
			// Every bounce notification reaches the handler and is
			// attributed to the leaky tenant; none to the clean one.
			waitFor(t, "all bounce notifications", func() bool { return srv.EventStats().Published == int64(bounces) })
			bs.mu.Lock()
			defer bs.mu.Unlock()
			if bs.events["leaky"] != bounces || bs.events["clean"] != 0 {
				t.Fatalf("events %v; want %d for leaky", bs.events, bounces)
			}
			if st := srv.EventStats(); st.Refused != 0 || st.Dropped != 0 {
				t.Fatalf("sestest stats %+v", st)
			}
			t.Logf("leaky tripped after %d sends (%d bounces), clean sent %d", sentLeaky, bounces, sentClean)
		})
	}
}
