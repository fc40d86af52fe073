package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// fbReplica is a gateway replica with the feedback side wired as serve
// wires it: guard (processor, propagation), attribution sink, SNS endpoint.
type fbReplica struct {
	store    *redisstore.Store
	lim      *limiter.Shared
	guard    *guard.Guard
	sns      http.Handler
	httpURL  string
	smtpAddr string
}

type fbStack struct {
	ses       *sestest.Server
	replicas  []*fbReplica
	tenants   map[string]tenantSpec
	published atomic.Int64
}

// startFeedbackStack starts sestest, and n replicas on one Redis; sestest
// publishes its events to an endpoint that hands them to the replicas' SNS
// handlers in turn, so several replicas process events concurrently.
func startFeedbackStack(t *testing.T, n int, cfgs map[string]breaker.Config) *fbStack {
	t.Helper()
	return startFeedbackStackWith(t, n, cfgs, fbOptions{})
}

// fbOptions vary the feedback stack: tenants' limits and Delivery events
// (for the first-contact window), the events' options.
type fbOptions struct {
	limits map[string]gateway.Limits // by tenant; with a window, Delivery events are declared
	events sestest.EventOptions      // URL set by the stack; Delay default 10 ms
}

func startFeedbackStackWith(t *testing.T, n int, cfgs map[string]breaker.Config, o fbOptions) *fbStack {
	t.Helper()
	srv := redistest.Start(t)
	sesSrv, sesSink, verifier := startSES(t)
	fs := &fbStack{ses: sesSrv, tenants: map[string]tenantSpec{}}
	var specs []tenantSpec
	var ids []string
	for id := range cfgs {
		ts := newTenant(id, o.limits[id])
		ts.tenant.SES.DeliveryEvents = ts.tenant.Limits.FirstContactWindow.On()
		fs.tenants[id] = ts
		specs = append(specs, ts)
		ids = append(ids, id)
	}
	es := entries(specs...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	for range n {
		st, err := redisstore.Dial(ctx, redisstore.ConnOptions{URL: "redis://" + srv.Addr}, redisstore.Options{RecipientKey: testKey, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		lim, err := limiter.NewShared(limiter.SharedOptions{Store: st, Logger: log, CallTimeout: 10 * time.Second, DegradedWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		g, err := guard.New(guard.Options{Store: st, Tenants: ids, Deny: lim, Logger: log, EvalEvery: 300 * time.Millisecond,
			Config: func(id string) (breaker.Config, bool) { c, ok := cfgs[id]; return c, ok },
			Windows: func(id string) (gateway.FirstContactWindow, bool) {
				ts, ok := fs.tenants[id]
				if !ok {
					return gateway.FirstContactWindow{}, false
				}
				return ts.tenant.Limits.FirstContactWindow, ts.tenant.WindowActive()
			}})
		if err != nil {
			t.Fatal(err)
		}
		wg := g.Start(ctx)
		t.Cleanup(wg.Wait)
		t.Cleanup(cancel)
		rem, err := guard.NewRemember(guard.RememberOptions{Store: st, Guard: g, Every: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rem.Close)
		in, err := feedback.NewIngester(feedback.IngesterOptions{Processor: g, Tenants: knownSet(cfgs), Lookup: rem})
		if err != nil {
			t.Fatal(err)
		}
		h, err := feedback.NewSNSHandler(feedback.SNSOptions{
			TopicARNs: []string{sestest.DefaultTopicArn}, Ingester: in, Dedupe: guard.Deduper{Store: st}, Logger: log,
			Verifier: verifier,
		})
		if err != nil {
			t.Fatal(err)
		}
		pipe := gateway.NewPipeline(gateway.Options{Auth: auth.NewRegistry(auth.RegistryOptions{Entries: es, Logger: log}),
			Limiter: lim, Sink: rem.Sink(sesSink), Logger: log})
		api := httpapi.New(httpapi.Options{Pipeline: pipe, Logger: log})
		mux := http.NewServeMux()
		mux.Handle("/v1/events/sns", h)
		mux.Handle("/", api)
		httpURL, smtpAddr := serveFrontEnds(t, pipe, mux, log)
		fs.replicas = append(fs.replicas, &fbReplica{store: st, lim: lim, guard: g, sns: h, httpURL: httpURL, smtpAddr: smtpAddr})
	}
	// SNS posts go to the replicas in turn, over real sockets.
	var next atomic.Int64
	rr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.replicas[int(next.Add(1))%n].sns.ServeHTTP(w, r)
	}))
	t.Cleanup(rr.Close)
	ev := o.events
	ev.URL = rr.URL
	if ev.Delay == 0 && ev.Latency == nil {
		ev.Delay = 10 * time.Millisecond
	}
	if err := sesSrv.SetEvents(&ev); err != nil {
		t.Fatal(err)
	}
	return fs
}

type knownSet map[string]breaker.Config

func (k knownSet) KnownTenant(id string) bool { _, ok := k[id]; return ok }

// startSES starts sestest for the test and returns it, the SES sink that
// sends to it, and an SNS verifier that trusts its signing certificate.
func startSES(t *testing.T) (*sestest.Server, *ses.Sink, *feedback.Verifier) {
	t.Helper()
	srv, sesURL, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	certPEM, err := srv.SNSCertificatePEM()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := feedback.ParseCertPEM(certPEM)
	if err != nil {
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
	return srv, sink, feedback.NewVerifier(feedback.VerifierOptions{Fetcher: sestestCert{cert}})
}

// sestestCert serves sestest's SNS certificate at the one URL sestest
// signs with.
type sestestCert struct{ c *x509.Certificate }

func (f sestestCert) FetchCert(_ context.Context, url string) (*x509.Certificate, error) {
	if url != sestest.SNSCertURL {
		return nil, fmt.Errorf("no certificate at %s", url)
	}
	return f.c, nil
}

func (fs *fbStack) send(t *testing.T, replica int, tenant string, to ...string) httpAnswer {
	t.Helper()
	return sendHTTP(t, fs.replicas[replica].httpURL, fs.tenants[tenant].token, to)
}

// bounceUntilRefused sends one recipient per message from tenant, 30%
// bouncing, over the replicas in turn, until a replica refuses it with
// breaker_open. It returns the messages sent.
func (fs *fbStack) bounceUntilRefused(t *testing.T, tenant string, from int, limit time.Duration) int {
	t.Helper()
	start := time.Now()
	for i := from; time.Since(start) < limit; i++ {
		rcpt := fmt.Sprintf("user%d@list.example", i)
		if i%10 < 3 {
			rcpt = fmt.Sprintf("bounce%d@list.example", i)
		}
		a := fs.send(t, i%len(fs.replicas), tenant, rcpt)
		switch a.code() {
		case "ok":
		case "breaker_open":
			return i - from
		default:
			t.Fatalf("send %d: %d %s", i, a.status, a.code())
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s not stopped within %v", tenant, limit)
	return 0
}

func status(t *testing.T, g *guard.Guard, tenant string) (store.BreakerState, []time.Time) {
	t.Helper()
	st, err := g.Status(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	var trips []time.Time
	for _, tr := range st.Trips {
		trips = append(trips, tr.At)
	}
	return st.State, trips
}

func waitUntil(t *testing.T, what string, limit time.Duration, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if f() {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// TestBreakerTripReachesEveryReplica: a tenant mailing a list where 30% of
// the recipients bounce is stopped within 5 s of its trip, every replica
// refuses it from its local cache within 1 s of the trip, the bounced and
// complained addresses are suppressed and refused at RCPT, and another
// tenant keeps sending.
func TestBreakerTripReachesEveryReplica(t *testing.T) {
	fs := startFeedbackStack(t, 3, map[string]breaker.Config{"leaky": breaker.TenantDefaults(), "clean": breaker.TenantDefaults()})
	ctx := context.Background()

	// The clean tenant's complaint is suppressed, not a trip.
	if a := fs.send(t, 0, "clean", "complaint1@list.example"); a.code() != "ok" {
		t.Fatalf("clean: %s", a.code())
	}
	sent := fs.bounceUntilRefused(t, "leaky", 0, 20*time.Second)
	refusedAt := time.Now()
	state, trips := status(t, fs.replicas[0].guard, "leaky")
	if state != store.Open || len(trips) != 1 {
		t.Fatalf("leaky: state %s, trips %v", state, trips)
	}
	trip := trips[0]
	if d := refusedAt.Sub(trip); d > 5*time.Second {
		t.Fatalf("stopped %v after the trip", d)
	}
	// The fast rule (25 bounces in 5 min) or the slow one (5% of >= 100)
	// trip well before 400 messages with 30% bouncing.
	if sent < 25 || sent > 400 {
		t.Fatalf("leaky sent %d before it was stopped", sent)
	}
	for i, r := range fs.replicas {
		leaky := &gateway.Tenant{ID: "leaky"}
		ge := gateway.AsError(r.lim.CheckTenant(leaky))
		for ge == nil && time.Since(trip) < time.Second {
			time.Sleep(5 * time.Millisecond)
			ge = gateway.AsError(r.lim.CheckTenant(leaky))
		}
		if ge == nil || ge.Code != gateway.CodeBreakerOpen {
			t.Fatalf("replica %d: no local refusal %v after the trip (%v)", i, time.Since(trip), ge)
		}
		t.Logf("replica %d refuses leaky from memory %v after the trip", i, time.Since(trip).Round(time.Millisecond))
		calls := r.lim.Stats().StoreCalls
		if a := fs.send(t, i, "leaky", "user@list.example"); a.code() != "breaker_open" {
			t.Fatalf("replica %d: leaky %d %s", i, a.status, a.code())
		}
		if got := r.lim.Stats().StoreCalls; got != calls {
			t.Fatalf("replica %d asked the store for a tripped tenant", i)
		}
		if a := fs.send(t, i, "clean", fmt.Sprintf("fine%d@list.example", i)); a.code() != "ok" {
			t.Fatalf("replica %d: clean %s", i, a.code())
		}
	}

	// Suppression: the first bounced address and the complaint, global.
	tests := []struct {
		name, addr string
		reason     store.SuppressionReason
		smtp       string
	}{
		{name: "hard bounce", addr: "bounce0@list.example", reason: store.HardBounce, smtp: "550 5.1.1"},
		{name: "complaint", addr: "complaint1@list.example", reason: store.Complaint, smtp: "550 5.7.1"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sup []store.Suppression
			waitUntil(t, "suppression of "+tc.addr, 5*time.Second, func() bool {
				var err error
				sup, err = fs.replicas[0].store.CheckSuppressed(ctx, "clean", []string{tc.addr})
				return err == nil && len(sup) == 1
			})
			if sup[0].Tenant != "" || sup[0].Reason != tc.reason || !sup[0].Expires.IsZero() {
				t.Fatalf("suppression %+v", sup[0])
			}
			c := dialSMTP(t, fs.replicas[(i+1)%3].smtpAddr, "clean", fs.tenants["clean"].token)
			c.cmd(250, "MAIL FROM:<app@sender.example>")
			code, msg := c.do("RCPT TO:<%s>", tc.addr)
			if got := fmt.Sprintf("%d %s", code, msg); !strings.HasPrefix(got, tc.smtp) {
				t.Fatalf("RCPT %s: %s, want %s", tc.addr, got, tc.smtp)
			}
		})
	}
	t.Logf("leaky stopped after %d messages, %v after its trip", sent, refusedAt.Sub(trip))
}

// TestBreakerHalfOpenResetAndForce: half-open probes close the breaker when
// they do not bounce and reopen it when they do; the third trip forces it
// open; an operator reset lets the tenant send again on every replica.
func TestBreakerHalfOpenResetAndForce(t *testing.T) {
	c := breaker.TenantDefaults()
	c.MinSent, c.FastMinBounces = 20, 5
	c.OpenFor, c.MaxOpenFor = 2*time.Second, 4*time.Second
	c.ProbeRecipients, c.ProbeHold, c.ProbeMaxBounces = 3, time.Second, 0
	c.ForceAfter = 3
	fs := startFeedbackStack(t, 3, map[string]breaker.Config{"leaky": c, "clean": breaker.TenantDefaults()})
	g := fs.replicas[1].guard
	ctx := context.Background()

	fs.bounceUntilRefused(t, "leaky", 0, 10*time.Second)
	// Half-open after 2 s: three good probes, then the breaker closes.
	waitUntil(t, "half-open admits a probe", 5*time.Second, func() bool {
		return fs.send(t, 0, "leaky", "probe0@list.example").code() == "ok"
	})
	for i := 1; i < 3; i++ {
		if a := fs.send(t, i, "leaky", fmt.Sprintf("probe%d@list.example", i)); a.code() != "ok" {
			t.Fatalf("probe %d: %s", i, a.code())
		}
	}
	if a := fs.send(t, 0, "leaky", "probe9@list.example"); a.code() != "breaker_open" {
		t.Fatalf("probe beyond the budget: %s", a.code())
	}
	waitUntil(t, "closed after good probes", 5*time.Second, func() bool { s, _ := status(t, g, "leaky"); return s == store.Closed })
	waitUntil(t, "sending again", 2*time.Second, func() bool { return fs.send(t, 2, "leaky", "again@list.example").code() == "ok" })

	// Trip 2; its probes bounce: open again.
	fs.bounceUntilRefused(t, "leaky", 1000, 10*time.Second)
	waitUntil(t, "half-open again", 6*time.Second, func() bool {
		return fs.send(t, 1, "leaky", "bounce-probe@list.example").code() == "ok"
	})
	// The bouncing probe reopens it: the third trip within the day, so it
	// is forced open until an operator resets it.
	waitUntil(t, "forced open by a bouncing probe", 5*time.Second, func() bool {
		s, trips := status(t, g, "leaky")
		return s == store.ForcedOpen && len(trips) == 3
	})
	for i := range fs.replicas {
		waitUntil(t, fmt.Sprintf("replica %d refuses the forced-open tenant", i), time.Second, func() bool {
			return fs.send(t, i, "leaky", "user@list.example").code() == "breaker_open"
		})
	}
	if err := g.Reset(ctx, "leaky"); err != nil {
		t.Fatal(err)
	}
	for i := range fs.replicas {
		d := waitUntil(t, fmt.Sprintf("replica %d admits after the reset", i), time.Second, func() bool {
			return fs.send(t, i, "leaky", fmt.Sprintf("fresh%d@list.example", i)).code() == "ok"
		})
		t.Logf("replica %d admitted %v after the reset", i, d)
	}
	if s, trips := status(t, g, "leaky"); s != store.Closed || len(trips) != 3 {
		t.Fatalf("after reset: %s with %d trips in the history", s, len(trips))
	}
	if err := g.Reset(ctx, "nobody"); !errors.Is(err, guard.ErrUnknownTenant) {
		t.Fatalf("reset of an unknown tenant: %v", err)
	}
}

// TestForgedNotificationChangesNothing: a notification signed with another
// key is refused and neither suppresses nor moves a breaker.
func TestForgedNotificationChangesNothing(t *testing.T) {
	fs := startFeedbackStack(t, 1, map[string]breaker.Config{"acme": breaker.TenantDefaults()})
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ev := map[string]any{
		"eventType": "Bounce",
		"bounce":    map[string]any{"bounceType": "Permanent", "bounceSubType": "General", "timestamp": time.Now().UTC().Format(time.RFC3339), "bouncedRecipients": []any{map[string]any{"emailAddress": "victim@list.example"}}},
		"mail":      map[string]any{"messageId": "forged-1", "timestamp": time.Now().UTC().Format(time.RFC3339), "source": "a@sender.example", "destination": []string{"victim@list.example"}, "tags": map[string][]string{ses.TagTenant: {"acme"}}},
	}
	msg, _ := json.Marshal(ev)
	fields := map[string]string{"Type": "Notification", "MessageId": "sns-forged-1", "TopicArn": sestest.DefaultTopicArn,
		"Message": string(msg), "Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": "2",
		"SigningCertURL": sestest.SNSCertURL}
	fields["Signature"] = sestest.SignSNS(key, fields)
	body, _ := json.Marshal(fields)
	req, _ := http.NewRequest(http.MethodPost, fs.replicas[0].httpURL+"/v1/events/sns", bytes.NewReader(body))
	req.Header.Set("x-amz-sns-message-type", "Notification")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Fatalf("forged notification answered %d", resp.StatusCode)
	}
	sup, err := fs.replicas[0].store.ListSuppressions(ctx, "", 10)
	if err != nil || len(sup) != 0 {
		t.Fatalf("suppressions %v %v", sup, err)
	}
	rec, err := fs.replicas[0].store.GetBreakerRecord(ctx, "acme")
	if err != nil || rec.State != store.Closed || len(rec.Data) != 0 {
		t.Fatalf("breaker record %+v %v", rec, err)
	}
}
