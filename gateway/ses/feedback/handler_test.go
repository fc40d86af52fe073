package feedback

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/internal/sestest"
)

type confirmer struct {
	mu   sync.Mutex
	urls []string
	err  error
}

func (c *confirmer) Confirm(_ context.Context, url string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.urls = append(c.urls, url)
	return c.err
}

type snsRig struct {
	url     string
	sink    *sink
	fetch   *fetcher
	confirm *confirmer
	reg     *prometheus.Registry
	log     *syncBuffer
	now     time.Time
}

func newSNSRig(t *testing.T, mod func(*SNSOptions, *IngesterOptions)) *snsRig {
	t.Helper()
	good, other := testKeys()
	r := &snsRig{
		sink:    &sink{},
		fetch:   &fetcher{certs: map[string]*x509.Certificate{testCertURL: good.cert, otherURL: other.cert}},
		confirm: &confirmer{},
		reg:     prometheus.NewRegistry(),
		now:     time.Now().UTC().Truncate(time.Millisecond),
	}
	logger, buf := newLogger()
	r.log = buf
	now := func() time.Time { return r.now }
	iopts := IngesterOptions{Processor: r.sink, Tenants: tenants{"t1": true, "t2": true}, Lookup: lookup{m: map[string]string{sesMsgID: "t2"}}}
	opts := SNSOptions{
		TopicARNs: []string{testTopic},
		Verifier:  NewVerifier(VerifierOptions{Fetcher: r.fetch, Now: now}),
		Confirmer: r.confirm, Logger: logger, Registerer: r.reg, Now: now,
	}
	if mod != nil {
		mod(&opts, &iopts)
	}
	in, err := NewIngester(iopts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Ingester = in
	h, err := NewSNSHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	r.url = ts.URL
	return r
}

func (r *snsRig) post(t *testing.T, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=UTF-8")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestSNSHandler(t *testing.T) {
	good, other := testKeys()
	var now time.Time // set per case from the rig
	bounce := func(tenant string) string { return sesEvent("Bounce", tenant, now.Add(-time.Minute), "x@example.net") }
	signed := func(mod func(map[string]string)) string {
		n := notification(good, "2", "m-1", testTopic, testCertURL, bounce("t1"), now)
		if mod != nil {
			mod(n)
		}
		return mustJSON(n)
	}
	resigned := func(s signer, mod func(map[string]string)) string {
		n := notification(good, "2", "m-1", testTopic, testCertURL, bounce("t1"), now)
		mod(n)
		delete(n, "Signature")
		n["Signature"] = sestest.SignSNS(s.key, n)
		return mustJSON(n)
	}
	tests := []struct {
		name       string
		body       func() string
		hdr        map[string]string
		method     string
		status     int
		outcome    string
		events     int
		tenant     string
		fetches    int
		mod        func(*SNSOptions, *IngesterOptions)
		confirmed  int
		processErr int
	}{
		{name: "signed v2 bounce", body: func() string { return signed(nil) }, status: 200, outcome: OutcomeProcessed, events: 1, tenant: "t1", fetches: 1},
		{name: "signed v1 bounce", body: func() string {
			return mustJSON(notification(good, "1", "m-1", testTopic, testCertURL, bounce("t1"), now))
		}, status: 200, outcome: OutcomeProcessed, events: 1, tenant: "t1", fetches: 1},
		{name: "with Subject", body: func() string {
			return resigned(good, func(n map[string]string) { n["Subject"] = "Amazon SES Email Event Notification" })
		}, status: 200, outcome: OutcomeProcessed, events: 1, tenant: "t1", fetches: 1},
		{name: "header matches", body: func() string { return signed(nil) }, hdr: map[string]string{"x-amz-sns-message-type": "Notification"},
			status: 200, outcome: OutcomeProcessed, events: 1, tenant: "t1", fetches: 1},
		{name: "notification format attributed by lookup", body: func() string {
			msg := strings.Replace(bounce(""), `"eventType"`, `"notificationType"`, 1)
			return mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, msg, now))
		}, status: 200, outcome: OutcomeProcessed, events: 1, tenant: "t2", fetches: 1},

		// Refusals: nothing reaches the sink.
		{name: "unsigned", body: func() string {
			return signed(func(n map[string]string) { delete(n, "Signature"); delete(n, "SignatureVersion") })
		}, status: 403, outcome: OutcomeForged},
		{name: "signature removed only", body: func() string { return signed(func(n map[string]string) { delete(n, "Signature") }) },
			status: 403, outcome: OutcomeForged},
		{name: "badly signed: message changed after signing", body: func() string {
			return signed(func(n map[string]string) { n["Message"] = bounce("t2") })
		}, status: 403, outcome: OutcomeForged, fetches: 1},
		{name: "badly signed: garbage signature", body: func() string { return signed(func(n map[string]string) { n["Signature"] = "AAAA" }) },
			status: 403, outcome: OutcomeForged, fetches: 1},
		{name: "badly signed: not base64", body: func() string { return signed(func(n map[string]string) { n["Signature"] = "%%%" }) },
			status: 403, outcome: OutcomeForged},
		{name: "re-signed with another cert", body: func() string {
			return resigned(other, func(n map[string]string) { n["MessageId"] = "m-2" })
		}, status: 403, outcome: OutcomeForged, fetches: 1},
		{name: "version 1 signature claimed as 2", body: func() string {
			return signed(func(n map[string]string) { n["SignatureVersion"] = "1" })
		}, status: 403, outcome: OutcomeForged, fetches: 1},
		{name: "unknown signature version", body: func() string { return signed(func(n map[string]string) { n["SignatureVersion"] = "3" }) },
			status: 403, outcome: OutcomeForged},
		{name: "cert URL over http", body: func() string {
			return resigned(good, func(n map[string]string) { n["SigningCertURL"] = strings.Replace(testCertURL, "https", "http", 1) })
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL on another host", body: func() string {
			return resigned(other, func(n map[string]string) {
				n["SigningCertURL"] = "https://evil.example.com/SimpleNotificationService-x.pem"
			})
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL host suffix trick", body: func() string {
			return resigned(other, func(n map[string]string) {
				n["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem"
			})
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL userinfo trick", body: func() string {
			return resigned(other, func(n map[string]string) { n["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com@evil.com/x.pem" })
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL with port", body: func() string {
			return resigned(other, func(n map[string]string) { n["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com:8443/x.pem" })
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL S3 lookalike", body: func() string {
			return resigned(other, func(n map[string]string) { n["SigningCertURL"] = "https://sns-us-east-1.s3.amazonaws.com/x.pem" })
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL not .pem", body: func() string {
			return resigned(good, func(n map[string]string) { n["SigningCertURL"] = strings.TrimSuffix(testCertURL, ".pem") + ".txt" })
		}, status: 403, outcome: OutcomeForged},
		{name: "cert URL region not allowed", body: func() string {
			return resigned(other, func(n map[string]string) { n["SigningCertURL"] = otherURL })
		}, mod: func(o *SNSOptions, _ *IngesterOptions) {
			o.Verifier = NewVerifier(VerifierOptions{Fetcher: o.Verifier.fetcher, Regions: []string{"us-east-1"}})
		}, status: 403, outcome: OutcomeForged},
		{name: "unknown TopicArn", body: func() string {
			return resigned(good, func(n map[string]string) { n["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:evil" })
		}, status: 403, outcome: OutcomeTopic},
		{name: "truncated JSON", body: func() string { s := signed(nil); return s[:len(s)/2] }, status: 400, outcome: OutcomeMalformed},
		{name: "empty body", body: func() string { return "" }, status: 400, outcome: OutcomeMalformed},
		{name: "unknown Type", body: func() string { return resigned(good, func(n map[string]string) { n["Type"] = "Bogus" }) },
			status: 400, outcome: OutcomeMalformed},
		{name: "header contradicts Type", body: func() string { return signed(nil) }, hdr: map[string]string{"x-amz-sns-message-type": "SubscriptionConfirmation"},
			status: 400, outcome: OutcomeMalformed},
		{name: "raw delivery refused", body: func() string { return bounce("t1") }, hdr: map[string]string{"x-amz-sns-rawdelivery": "true"},
			status: 403, outcome: OutcomeRawRefused},
		{name: "stale timestamp", body: func() string {
			return mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, bounce("t1"), now.Add(-2*time.Hour)))
		}, status: 403, outcome: OutcomeStale, fetches: 1},
		{name: "event for unknown tenant", body: func() string {
			msg := strings.Replace(bounce("t9"), sesMsgID, "unknown-id", 1)
			return mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, msg, now))
		}, status: 422, outcome: OutcomeUnattributed, fetches: 1},
		{name: "event for unknown message", body: func() string {
			msg := strings.Replace(strings.Replace(bounce(""), `"eventType"`, `"notificationType"`, 1), sesMsgID, "unknown-id", 1)
			return mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, msg, now))
		}, status: 422, outcome: OutcomeUnattributed, fetches: 1},
		{name: "message not an SES event", body: func() string {
			return mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, `{"hello":"world"}`, now))
		}, status: 400, outcome: OutcomeInvalidEvent, fetches: 1},
		{name: "GET", method: http.MethodGet, body: func() string { return "" }, status: 405, outcome: OutcomeMethod},
		{name: "10 MB body", body: func() string { return strings.Repeat("x", 10<<20) }, status: 413, outcome: OutcomeTooLarge},

		// Temporary failures: 5xx so that SNS retries.
		{name: "processor fails", body: func() string { return signed(nil) }, processErr: 1, status: 503, outcome: OutcomeTemporary, fetches: 1},
		{name: "lookup fails", body: func() string {
			msg := strings.Replace(bounce(""), `"eventType"`, `"notificationType"`, 1)
			return mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, msg, now))
		}, mod: func(_ *SNSOptions, i *IngesterOptions) { i.Lookup = lookup{err: errors.New("redis down")} },
			status: 503, outcome: OutcomeTemporary, fetches: 1},
		{name: "certificate host down", body: func() string { return signed(nil) }, mod: func(o *SNSOptions, _ *IngesterOptions) {
			o.Verifier.fetcher.(*fetcher).err = fmt.Errorf("%w: timeout", ErrCertUnavailable)
		}, status: 503, outcome: OutcomeCertUnavailable, fetches: 1},

		// Subscriptions.
		{name: "subscription confirmed", body: func() string {
			return mustJSON(subscription(good, SNSSubscriptionConfirmation, testTopic, "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok", now))
		}, status: 200, outcome: OutcomeConfirmed, fetches: 1, confirmed: 1},
		{name: "subscription to unknown topic", body: func() string {
			return mustJSON(subscription(good, SNSSubscriptionConfirmation, "arn:aws:sns:us-east-1:999999999999:evil", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", now))
		}, status: 403, outcome: OutcomeTopic},
		{name: "subscription URL elsewhere", body: func() string {
			return mustJSON(subscription(good, SNSSubscriptionConfirmation, testTopic, "https://169.254.169.254/latest/meta-data/", now))
		}, status: 403, outcome: OutcomeForged, fetches: 1},
		{name: "subscription URL over http", body: func() string {
			return mustJSON(subscription(good, SNSSubscriptionConfirmation, testTopic, "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", now))
		}, status: 403, outcome: OutcomeForged, fetches: 1},
		{name: "subscription confirm fails", body: func() string {
			return mustJSON(subscription(good, SNSSubscriptionConfirmation, testTopic, "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", now))
		}, mod: func(o *SNSOptions, _ *IngesterOptions) { o.Confirmer.(*confirmer).err = errors.New("timeout") },
			status: 503, outcome: OutcomeConfirmFailed, fetches: 1, confirmed: 1},
		{name: "unsubscribe confirmation", body: func() string {
			return mustJSON(subscription(good, SNSUnsubscribeConfirmation, testTopic, "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", now))
		}, status: 200, outcome: OutcomeUnsubscribed, fetches: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newSNSRig(t, tc.mod)
			now = r.now
			r.sink.fail = tc.processErr
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, r.url, strings.NewReader(tc.body()))
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || strings.TrimSpace(string(b)) != tc.outcome {
				t.Fatalf("answer %d %q; want %d %q\nlog: %s", resp.StatusCode, b, tc.status, tc.outcome, r.log)
			}
			evs := r.sink.Events()
			if len(evs) != tc.events {
				t.Fatalf("sink got %d events; want %d", len(evs), tc.events)
			}
			if tc.events == 1 && (evs[0].Tenant != tc.tenant || evs[0].Type != TypeBounce || evs[0].HardBounces() != 1) {
				t.Fatalf("event %+v", evs[0])
			}
			if got := r.fetch.Calls(); got != tc.fetches {
				t.Fatalf("certificate fetched %d times; want %d", got, tc.fetches)
			}
			r.confirm.mu.Lock()
			confirmed := len(r.confirm.urls)
			r.confirm.mu.Unlock()
			if confirmed != tc.confirmed {
				t.Fatalf("confirmer called %d times; want %d", confirmed, tc.confirmed)
			}
			if c := counter(t, r.reg, "sesgate_feedback_sns_requests_total", tc.outcome); c != 1 {
				t.Fatalf("counter{outcome=%s} = %v; want 1", tc.outcome, c)
			}
			if !strings.Contains(r.log.String(), "outcome="+tc.outcome) {
				t.Fatalf("no log line with outcome=%s: %s", tc.outcome, r.log)
			}
		})
	}
}

func TestSNSReplayAndRetry(t *testing.T) {
	good, _ := testKeys()
	r := newSNSRig(t, nil)
	body := mustJSON(notification(good, "2", "m-replay", testTopic, testCertURL, sesEvent("Bounce", "t1", r.now, "x@example.net"), r.now))

	// A processing failure answers 503 and releases the MessageId, so the
	// SNS retry is processed; a later replay is a duplicate.
	r.sink.fail = 1
	steps := []struct {
		name    string
		status  int
		outcome string
		events  int
	}{
		{"first attempt fails", 503, OutcomeTemporary, 0},
		{"retry processed", 200, OutcomeProcessed, 1},
		{"replay dropped", 200, OutcomeDuplicate, 1},
		{"replay dropped again", 200, OutcomeDuplicate, 1},
	}
	for _, st := range steps {
		status, outcome := r.post(t, body, nil)
		if status != st.status || outcome != st.outcome || len(r.sink.Events()) != st.events {
			t.Fatalf("%s: %d %s, %d events; want %d %s, %d", st.name, status, outcome, len(r.sink.Events()), st.status, st.outcome, st.events)
		}
	}
	if got := r.fetch.Calls(); got != 1 {
		t.Fatalf("certificate fetched %d times; want 1 (cached)", got)
	}
	if c := counter(t, r.reg, "sesgate_feedback_sns_requests_total", OutcomeDuplicate); c != 2 {
		t.Fatalf("duplicate counter %v", c)
	}
}

func TestSNSChunkedHugeBody(t *testing.T) {
	r := newSNSRig(t, nil)
	pr, pw := io.Pipe()
	written := make(chan int64, 1)
	go func() {
		var n int64
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n < 10<<20 {
			m, err := pw.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		pw.Close()
		written <- n
	}()
	req, _ := http.NewRequest(http.MethodPost, r.url, pr) // no Content-Length: chunked
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || strings.TrimSpace(string(b)) != OutcomeTooLarge {
			t.Fatalf("answer %d %q", resp.StatusCode, b)
		}
	}
	// Either way (answer or reset), the handler refused and counted it.
	pr.CloseWithError(errors.New("done"))
	<-written
	if c := counter(t, r.reg, "sesgate_feedback_sns_requests_total", OutcomeTooLarge); c != 1 {
		t.Fatalf("too_large counter %v", c)
	}
	if len(r.sink.Events()) != 0 {
		t.Fatal("event from a huge body")
	}
}

func TestNewSNSHandlerRequires(t *testing.T) {
	in, _ := NewIngester(IngesterOptions{Processor: &sink{}, Tenants: tenants{}})
	for _, o := range []SNSOptions{{Ingester: in}, {TopicARNs: []string{testTopic}}} {
		if _, err := NewSNSHandler(o); err == nil {
			t.Errorf("NewSNSHandler(%+v) accepted", o)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewSNSHandler(SNSOptions{TopicARNs: []string{testTopic}, Ingester: in, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSNSHandler(SNSOptions{TopicARNs: []string{testTopic}, Ingester: in, Registerer: reg}); err == nil {
		t.Fatal("second registration on one registry accepted")
	}
}
