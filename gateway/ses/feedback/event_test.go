package feedback

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Examples shaped like the SES developer guide's.
const (
	exBounce = `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
"bouncedRecipients":[{"emailAddress":"r@example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],
"timestamp":"2017-08-05T00:41:02.669Z","feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","reportingMTA":"dsn; mta.example.com"},
"mail":{"timestamp":"2017-08-05T00:40:02.012Z","source":"Sender Name <sender@example.com>","sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
"sendingAccountId":"123456789012","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["r@example.com"],
"headersTruncated":false,"headers":[{"name":"From","value":"Sender Name <sender@example.com>"}],"commonHeaders":{"from":["Sender Name <sender@example.com>"],"to":["r@example.com"],"messageId":"<x@example.com>","subject":"Message sent from Amazon SES"},
"tags":{"ses:configuration-set":["ConfigSet"],"ses:source-ip":["192.0.2.0"],"sesgate-tenant":["t1"],"sesgate-id":["01jab3c4d5e6f7g8h9j0k1m2n3"]}},"newField":{"x":1}}`
	exComplaint = `{"notificationType":"Complaint","complaint":{"feedbackId":"0100","complaintSubType":null,"complainedRecipients":[{"emailAddress":"r@example.com"}],
"timestamp":"2017-08-05T00:41:02.669Z","userAgent":"Mozilla","complaintFeedbackType":"abuse","arrivalDate":"2017-08-05T00:41:02.669Z"},
"mail":{"timestamp":"2017-08-05T00:40:01.123Z","messageId":"m1","source":"s@example.com","destination":["r@example.com"]}}`
	exDelivery = `{"eventType":"Delivery","mail":{"timestamp":"2016-10-19T23:20:52.240Z","messageId":"m2","destination":["a@example.com","b@example.com"],"tags":{"sesgate-tenant":["t2"]}},
"delivery":{"timestamp":"2016-10-19T23:21:04.133Z","processingTimeMillis":11893,"recipients":["a@example.com","b@example.com"],"smtpResponse":"250 2.6.0 ok","reportingMTA":"mta.example.com"}}`
	exSend          = `{"eventType":"Send","mail":{"timestamp":"2016-10-14T05:02:16.645Z","messageId":"m3","destination":["a@example.com"]},"send":{}}`
	exReject        = `{"eventType":"Reject","mail":{"timestamp":"2016-10-14T17:38:15.211Z","messageId":"m4","destination":["a@example.com"]},"reject":{"reason":"Bad content"}}`
	exDelay         = `{"eventType":"DeliveryDelay","mail":{"timestamp":"2020-06-16T00:15:40.641Z","messageId":"m5","destination":["a@example.com"]},"deliveryDelay":{"timestamp":"2020-06-16T00:25:40.095Z","delayType":"TransientCommunicationFailure","expirationTime":"2020-06-16T00:25:40.914Z","delayedRecipients":[{"emailAddress":"a@example.com","status":"4.4.1","diagnosticCode":"smtp; 421 4.4.1 Unable to connect"}]}}`
	exRendering     = `{"eventType":"Rendering Failure","mail":{"timestamp":"2018-01-22T18:43:06.197Z","messageId":"m6","destination":["a@example.com"]},"failure":{"errorMessage":"Attribute 'attributeName' is not present in the rendering data.","templateName":"MyTemplate"}}`
	exOpen          = `{"eventType":"Open","mail":{"timestamp":"2017-08-09T21:59:49.927Z","messageId":"m7","destination":["a@example.com"]},"open":{"ipAddress":"192.0.2.1","timestamp":"2017-08-09T22:00:19.652Z","userAgent":"Mozilla"}}`
	exSuppressed    = `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"OnAccountSuppressionList","bouncedRecipients":[{"emailAddress":"r@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z","messageId":"m8","destination":["r@example.com"]}}`
	exTransient     = `{"eventType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull","bouncedRecipients":[{"emailAddress":"r@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z","messageId":"m9","destination":["r@example.com"]}}`
	exUndetermined  = `{"notificationType":"Bounce","bounce":{"bounceType":"Undetermined","bounceSubType":"Undetermined","bouncedRecipients":[{"emailAddress":"r@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z","messageId":"m10","destination":["r@example.com"]}}`
	exNotSpam       = `{"eventType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"r@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z","complaintFeedbackType":"not-spam"},"mail":{"timestamp":"2017-08-05T00:40:01.123Z","messageId":"m11","destination":["r@example.com"]}}`
	exAmbiguousTags = `{"eventType":"Send","mail":{"timestamp":"2016-10-14T05:02:16.645Z","messageId":"m12","destination":["a@example.com"],"tags":{"sesgate-tenant":["t1","t2"]}},"send":{}}`
)

func TestParseEvent(t *testing.T) {
	ms := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	tests := []struct {
		name         string
		in           string
		typ          EventType
		tenant, gwID string
		id           string
		mail, evTime time.Time
		rcpts        string
		hard, compl  int
		reason       string
		notification bool
		status       string
		suppress     string
	}{
		{name: "bounce with tags and unknown fields", in: exBounce, typ: TypeBounce, tenant: "t1", gwID: "01jab3c4d5e6f7g8h9j0k1m2n3",
			id: "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000", mail: ms("2017-08-05T00:40:02.012Z"), evTime: ms("2017-08-05T00:41:02.669Z"),
			rcpts: "r@example.com", hard: 1, status: "5.1.1", suppress: SuppressHardBounce},
		{name: "complaint notification with null subtype", in: exComplaint, typ: TypeComplaint, id: "m1", mail: ms("2017-08-05T00:40:01.123Z"),
			evTime: ms("2017-08-05T00:41:02.669Z"), rcpts: "r@example.com", compl: 1, notification: true, suppress: SuppressComplaint},
		{name: "delivery to two", in: exDelivery, typ: TypeDelivery, tenant: "t2", id: "m2", mail: ms("2016-10-19T23:20:52.240Z"),
			evTime: ms("2016-10-19T23:21:04.133Z"), rcpts: "a@example.com,b@example.com"},
		{name: "send", in: exSend, typ: TypeSend, id: "m3", mail: ms("2016-10-14T05:02:16.645Z"), evTime: ms("2016-10-14T05:02:16.645Z"), rcpts: "a@example.com"},
		{name: "reject", in: exReject, typ: TypeReject, id: "m4", mail: ms("2016-10-14T17:38:15.211Z"), evTime: ms("2016-10-14T17:38:15.211Z"),
			rcpts: "a@example.com", reason: "Bad content"},
		{name: "delivery delay", in: exDelay, typ: TypeDeliveryDelay, id: "m5", mail: ms("2020-06-16T00:15:40.641Z"), evTime: ms("2020-06-16T00:25:40.095Z"),
			rcpts: "a@example.com", reason: "TransientCommunicationFailure", status: "4.4.1"},
		{name: "rendering failure", in: exRendering, typ: TypeRenderingFailure, id: "m6", mail: ms("2018-01-22T18:43:06.197Z"), evTime: ms("2018-01-22T18:43:06.197Z"),
			reason: "Attribute 'attributeName' is not present in the rendering data."},
		{name: "open", in: exOpen, typ: TypeOpen, id: "m7", mail: ms("2017-08-09T21:59:49.927Z"), evTime: ms("2017-08-09T21:59:49.927Z")},
		{name: "suppressed bounce is not hard", in: exSuppressed, typ: TypeBounce, id: "m8", mail: ms("2017-08-05T00:40:02.012Z"), evTime: ms("2017-08-05T00:41:02.669Z"), rcpts: "r@example.com", suppress: SuppressHardBounce},
		{name: "transient bounce is not hard", in: exTransient, typ: TypeBounce, id: "m9", mail: ms("2017-08-05T00:40:02.012Z"), evTime: ms("2017-08-05T00:41:02.669Z"), rcpts: "r@example.com"},
		{name: "undetermined bounce notification", in: exUndetermined, typ: TypeBounce, id: "m10", mail: ms("2017-08-05T00:40:02.012Z"), evTime: ms("2017-08-05T00:41:02.669Z"), rcpts: "r@example.com", notification: true},
		{name: "not-spam complaint not counted", in: exNotSpam, typ: TypeComplaint, id: "m11", mail: ms("2017-08-05T00:40:01.123Z"), evTime: ms("2017-08-05T00:41:02.669Z"), rcpts: "r@example.com"},
		{name: "ambiguous tenant tag ignored", in: exAmbiguousTags, typ: TypeSend, id: "m12", mail: ms("2016-10-14T05:02:16.645Z"), evTime: ms("2016-10-14T05:02:16.645Z"), rcpts: "a@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != tc.typ || ev.Tenant != tc.tenant || ev.GatewayID != tc.gwID || ev.SESMessageID != tc.id ||
				!ev.MailTime.Equal(tc.mail) || !ev.EventTime.Equal(tc.evTime) || ev.Reason != tc.reason || ev.Notification != tc.notification {
				t.Fatalf("event %+v", ev)
			}
			if got := strings.Join(ev.Addresses(), ","); got != tc.rcpts {
				t.Fatalf("recipients %q; want %q", got, tc.rcpts)
			}
			if ev.HardBounces() != tc.hard || ev.Complaints() != tc.compl {
				t.Fatalf("hard %d complaints %d; want %d %d", ev.HardBounces(), ev.Complaints(), tc.hard, tc.compl)
			}
			if got := ev.SuppressionReason(); got != tc.suppress {
				t.Fatalf("suppression reason %q; want %q", got, tc.suppress)
			}
			if tc.status != "" && ev.Recipients[0].Status != tc.status {
				t.Fatalf("status %q", ev.Recipients[0].Status)
			}
			if tc.typ == TypeBounce && (ev.Recipients[0].BounceType != ev.BounceType || ev.Recipients[0].BounceSubType != ev.BounceSubType) {
				t.Fatalf("recipient bounce type %+v", ev.Recipients[0])
			}
		})
	}
}

func TestParseEventRefuses(t *testing.T) {
	many := `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[` +
		strings.Repeat(`{"emailAddress":"a@b.c"},`, MaxEventRecipients) + `{"emailAddress":"a@b.c"}],"timestamp":"2017-08-05T00:41:02.669Z"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z","messageId":"m"}}`
	tests := []struct{ name, in, want string }{
		{"not JSON", `{"eventType":`, "not JSON"},
		{"no type", `{"mail":{}}`, "no eventType"},
		{"both types", `{"eventType":"Send","notificationType":"Send","mail":{}}`, "both"},
		{"unknown type", strings.Replace(exSend, `"Send"`, `"Teleport"`, 1), "unknown event type"},
		{"no mail", `{"eventType":"Send","send":{}}`, "no mail"},
		{"no messageId", strings.Replace(exSend, `"messageId":"m3",`, ``, 1), "messageId"},
		{"bad mail timestamp", strings.Replace(exSend, `2016-10-14T05:02:16.645Z`, `yesterday`, 1), "mail.timestamp"},
		{"bounce without object", `{"eventType":"Bounce","mail":{"timestamp":"2017-08-05T00:40:02.012Z","messageId":"m"}}`, "without bounce"},
		{"unknown bounce type", strings.Replace(exBounce, `"Permanent"`, `"Hard"`, 1), "bounceType"},
		{"bounce without recipients", strings.Replace(exTransient, `[{"emailAddress":"r@example.com"}]`, `[]`, 1), "empty"},
		{"bounce recipient without address", strings.Replace(exTransient, `"emailAddress":"r@example.com"`, `"emailAddress":"  "`, 1), "no address"},
		{"bounce without timestamp", strings.Replace(exTransient, `"timestamp":"2017-08-05T00:41:02.669Z"`, `"x":1`, 1), "bounce.timestamp"},
		{"too many recipients", many, "more than"},
		{"complaint without recipients", strings.Replace(exComplaint, `[{"emailAddress":"r@example.com"}]`, `null`, 1), "empty"},
		{"delivery without timestamp", strings.Replace(exDelivery, `"timestamp":"2016-10-19T23:21:04.133Z",`, ``, 1), "delivery.timestamp"},
		{"send without object", strings.Replace(exSend, `,"send":{}`, ``, 1), "without send"},
		{"wrong field type", strings.Replace(exSend, `"messageId":"m3"`, `"messageId":3`, 1), "not JSON"},
		{"too large", `{"eventType":"Send","pad":"` + strings.Repeat("x", MaxEventBytes) + `"}`, "larger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tc.in))
			if err == nil || !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseEvent = %+v, %v; want ErrInvalidEvent with %q", ev, err, tc.want)
			}
		})
	}
}

func TestCheckCertURL(t *testing.T) {
	tests := []struct {
		url     string
		regions []string
		ok      bool
	}{
		{"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", nil, true},
		{"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", nil, true},
		{"https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem", []string{"us-gov-west-1"}, true},
		{"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", []string{"eu-west-1"}, false},
		{"http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", nil, false},
		{"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1", nil, false},
		{"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.crt", nil, false},
		{"https://sns.us-east-1.amazonaws.com.evil.com/a.pem", nil, false},
		{"https://evil.com/sns.us-east-1.amazonaws.com/a.pem", nil, false},
		{"https://sns.us-east-1.amazonaws.com@evil.com/a.pem", nil, false},
		{"https://x@sns.us-east-1.amazonaws.com/a.pem", nil, false},
		{"https://sns.us-east-1.amazonaws.com:444/a.pem", nil, false},
		{"https://sns.x.amazonaws.com/a.pem", nil, false},
		{"https://bucket.s3.amazonaws.com/a.pem", nil, false},
		{"https:sns.us-east-1.amazonaws.com/a.pem", nil, false},
		{"", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := CheckCertURL(tc.url, tc.regions)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForged)) {
				t.Fatalf("CheckCertURL(%q) = %v; want ok=%v", tc.url, err, tc.ok)
			}
		})
	}
}

// TestSNSHostPattern: only sns.<region>.amazonaws.com (and the China
// sns.cn-<...>.amazonaws.com.cn) with a real region shape is an SNS host;
// any other label in the region's place (an S3 bucket host, a word, an
// extra label) is refused, for certificate and subscribe URLs alike.
func TestSNSHostPattern(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"sns.us-east-1.amazonaws.com", true},
		{"sns.eu-central-2.amazonaws.com", true},
		{"sns.ap-southeast-4.amazonaws.com", true},
		{"sns.il-central-1.amazonaws.com", true},
		{"sns.us-gov-west-1.amazonaws.com", true},
		{"sns.us-gov-east-1.amazonaws.com", true},
		{"sns.us-iso-east-1.amazonaws.com", true},
		{"sns.us-isob-east-1.amazonaws.com", true},
		{"sns.cn-north-1.amazonaws.com.cn", true},
		{"sns.cn-northwest-1.amazonaws.com.cn", true},

		{"sns.s3-us-west-2.amazonaws.com", false},   // passed before: an S3 host shape
		{"sns.s3.us-west-2.amazonaws.com", false},   // extra label
		{"sns.bucket-name.amazonaws.com", false},    // any label
		{"sns.evil-host-123.amazonaws.com", false},  // letters-letters-digits, but not a region
		{"sns.us-east-1a.amazonaws.com", false},     // an availability zone
		{"sns.us-east.amazonaws.com", false},        // no number
		{"sns.useast-1.amazonaws.com", false},       // no area
		{"sns.u-east-1.amazonaws.com", false},       // one-letter area
		{"sns.US-EAST-1.amazonaws.com", false},      // SNS names are lower case
		{"sns.us-east-1.amazonaws.com.cn", false},   // .cn only for China regions
		{"sns.cn-north-1.amazonaws.com", false},     // China regions only under .cn
		{"sns.us-east-1.amazonaws.com.evil", false}, // another suffix
		{"sns..amazonaws.com", false},
		{"sqs.us-east-1.amazonaws.com", false},
		{"xsns.us-east-1.amazonaws.com", false},
		{"sns.us-east-1.amazonaws.co", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			for _, u := range []string{"https://" + tc.host + "/SimpleNotificationService-abc.pem", "https://" + tc.host + "/?Action=ConfirmSubscription"} {
				_, err := CheckSNSURL(u, nil)
				if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForged)) {
					t.Fatalf("CheckSNSURL(%q) = %v; want ok=%v", u, err, tc.ok)
				}
			}
		})
	}
}

func TestHTTPCertFetcher(t *testing.T) {
	good, _ := testKeys()
	pemBytes := pemOf(good)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok.pem", func(w http.ResponseWriter, r *http.Request) { w.Write(pemBytes) })
	mux.HandleFunc("/missing.pem", http.NotFound)
	mux.HandleFunc("/broken.pem", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", 502) })
	mux.HandleFunc("/huge.pem", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("A", MaxCertBytes+10))) })
	mux.HandleFunc("/garbage.pem", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("not a cert")) })
	mux.HandleFunc("/slow.pem", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/redirect.pem", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok.pem", http.StatusFound) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	f := &HTTPCertFetcher{Timeout: 300 * time.Millisecond}
	tests := []struct {
		path string
		want error // nil: ok
	}{
		{"/ok.pem", nil},
		{"/missing.pem", ErrForged},
		{"/broken.pem", ErrCertUnavailable},
		{"/huge.pem", ErrForged},
		{"/garbage.pem", ErrForged},
		{"/slow.pem", ErrCertUnavailable},
		{"/redirect.pem", ErrCertUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			c, err := f.FetchCert(context.Background(), ts.URL+tc.path)
			if tc.want == nil {
				if err != nil || !c.Equal(good.cert) {
					t.Fatalf("FetchCert = %v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestVerifierCacheBounded(t *testing.T) {
	good, other := testKeys()
	now := time.Now()
	u := func(i int) string {
		return fmt.Sprintf("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-%d.pem", i)
	}
	f := &fetcher{certs: map[string]*x509.Certificate{u(1): good.cert, u(2): good.cert, u(3): other.cert}}
	v := NewVerifier(VerifierOptions{Fetcher: f, CacheMax: 2, CacheTTL: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	steps := []struct {
		name  string
		url   string
		calls int
	}{
		{"first", u(1), 1}, {"second", u(2), 2}, {"cached", u(1), 2}, {"third evicts", u(3), 3},
	}
	for _, st := range steps {
		if _, err := v.cert(ctx, st.url); err != nil || f.Calls() != st.calls {
			t.Fatalf("%s: err %v, %d fetches; want %d", st.name, err, f.Calls(), st.calls)
		}
	}
	v.mu.Lock()
	n := len(v.cache)
	v.mu.Unlock()
	if n != 2 {
		t.Fatalf("cache holds %d; want 2", n)
	}
	now = now.Add(2 * time.Minute)
	if _, err := v.cert(ctx, u(3)); err != nil || f.Calls() != 4 {
		t.Fatalf("expired entry not refetched: %v, %d", err, f.Calls())
	}
	now = now.Add(48 * time.Hour) // past the certificates' NotAfter
	if _, err := v.cert(ctx, u(1)); !errors.Is(err, ErrForged) {
		t.Fatalf("expired certificate: %v", err)
	}
}

func pemOf(s signer) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw})
}

func TestMemDeduper(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d := NewMemDeduper(MemDeduperOptions{TTL: time.Minute, Max: 3, Now: func() time.Time { return now }})
	ctx := context.Background()
	claim := func(k string) bool { ok, _ := d.Claim(ctx, k); return ok }
	steps := []struct {
		name string
		do   func() bool
		want bool
	}{
		{"first a", func() bool { return claim("a") }, true},
		{"again a", func() bool { return claim("a") }, false},
		{"b", func() bool { return claim("b") }, true},
		{"release b then claim", func() bool { d.Release(ctx, "b"); return claim("b") }, true},
		{"c", func() bool { return claim("c") }, true},
		{"d evicts the oldest (a)", func() bool { return claim("d") }, true},
		{"a is new again", func() bool { return claim("a") }, true},
		{"bounded", func() bool { return d.Len() <= 3 }, true},
		{"expired after TTL", func() bool { now = now.Add(61 * time.Second); return claim("d") }, true},
		{"expired entries dropped", func() bool { return d.Len() == 1 }, true},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Fatalf("%s: %v; want %v", st.name, got, st.want)
		}
	}
}
