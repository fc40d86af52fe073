package sestest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
)

const testMessage = "From: Sender <sender@example.com>\r\nTo: to@example.net\r\nSubject: hi\r\n\r\nhello\r\n"

// start runs a server for one test.
func start(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	srv, url, stop, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv, url
}

// client returns a real SES v2 client for url without SDK retries.
func client(url string, mod ...func(*sesv2.Options)) *sesv2.Client {
	return sesv2.New(sesv2.Options{
		Region:       DefaultRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(DefaultAccessKeyID, DefaultSecretAccessKey, ""),
		BaseEndpoint: aws.String(url),
		Retryer:      aws.NopRetryer{},
	}, mod...)
}

func rawInput(to ...string) *sesv2.SendEmailInput {
	return &sesv2.SendEmailInput{
		FromEmailAddress: aws.String("sender@example.com"),
		Destination:      &types.Destination{ToAddresses: to},
		Content:          &types.EmailContent{Raw: &types.RawMessage{Data: []byte(testMessage)}},
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

var messageIDPattern = regexp.MustCompile(`^0100[0-9a-f]{12}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-000000$`)

func TestSendEmailRecorded(t *testing.T) {
	srv, url := start(t, Options{})
	c := client(url)
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String("sender@example.com"),
		Destination: &types.Destination{
			ToAddresses:  []string{"a@example.net"},
			CcAddresses:  []string{"b@example.net"},
			BccAddresses: []string{"c@example.net", "d@example.org"},
		},
		ReplyToAddresses:     []string{"reply@example.com"},
		Content:              &types.EmailContent{Raw: &types.RawMessage{Data: []byte(testMessage)}},
		EmailTags:            []types.MessageTag{{Name: aws.String("sesgate-tenant"), Value: aws.String("t-1")}, {Name: aws.String("id"), Value: aws.String("")}},
		ConfigurationSetName: aws.String("cs1"),
		TenantName:           aws.String("tenant-a"),
	}
	out, err := c.SendEmail(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.MessageId)
	if !messageIDPattern.MatchString(id) {
		t.Fatalf("MessageId %q does not look like an SES id", id)
	}
	sent := srv.Sent()
	if len(sent) != 1 {
		t.Fatalf("Sent() has %d messages, want 1", len(sent))
	}
	m := sent[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"id", m.ID, id},
		{"from", m.From, "sender@example.com"},
		{"to", m.To, []string{"a@example.net"}},
		{"cc", m.Cc, []string{"b@example.net"}},
		{"bcc", m.Bcc, []string{"c@example.net", "d@example.org"}},
		{"recipients", m.Recipients(), []string{"a@example.net", "b@example.net", "c@example.net", "d@example.org"}},
		{"reply-to", m.ReplyTo, []string{"reply@example.com"}},
		{"raw", string(m.Raw), testMessage},
		{"size", m.Size, len(testMessage)},
		{"tags", m.Tags, map[string]string{"sesgate-tenant": "t-1", "id": ""}},
		{"configuration set", m.ConfigurationSet, "cs1"},
		{"tenant", m.TenantName, "tenant-a"},
		{"accepted", srv.Accepted(), int64(1)},
		{"requests", srv.Requests(), int64(1)},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got, ok := srv.Message(id); !ok || got.ID != id {
		t.Errorf("Message(%q) = %v, %v", id, got.ID, ok)
	}
	srv.Reset()
	if len(srv.Sent()) != 0 || srv.Accepted() != 0 || srv.Requests() != 0 {
		t.Errorf("Reset left %d messages, %d accepted, %d requests", len(srv.Sent()), srv.Accepted(), srv.Requests())
	}
}

func TestInjectedErrorsDecodeToSDKTypes(t *testing.T) {
	srv, url := start(t, Options{})
	c := client(url)
	tests := []struct {
		name   string
		fault  Fault
		check  func(error) bool
		status int
	}{
		{"TooManyRequests", Fault{Type: TooManyRequests}, func(e error) bool { var x *types.TooManyRequestsException; return errors.As(e, &x) }, 429},
		{"LimitExceeded", Fault{Type: LimitExceeded}, func(e error) bool { var x *types.LimitExceededException; return errors.As(e, &x) }, 400},
		{"MessageRejected", Fault{Type: MessageRejected}, func(e error) bool { var x *types.MessageRejected; return errors.As(e, &x) }, 400},
		{"MailFromDomainNotVerified", Fault{Type: MailFromDomainNotVerified}, func(e error) bool { var x *types.MailFromDomainNotVerifiedException; return errors.As(e, &x) }, 400},
		{"SendingPaused", Fault{Type: SendingPaused}, func(e error) bool { var x *types.SendingPausedException; return errors.As(e, &x) }, 400},
		{"AccountSuspended", Fault{Type: AccountSuspended}, func(e error) bool { var x *types.AccountSuspendedException; return errors.As(e, &x) }, 400},
		{"NotFound", Fault{Type: NotFound}, func(e error) bool { var x *types.NotFoundException; return errors.As(e, &x) }, 404},
		{"BadRequest", Fault{Type: BadRequest}, func(e error) bool { var x *types.BadRequestException; return errors.As(e, &x) }, 400},
		{"InternalServiceError", Fault{Type: InternalServiceError}, func(e error) bool { var x *types.InternalServiceErrorException; return errors.As(e, &x) }, 500},
		{"unmodelled code", Fault{Type: "ServiceUnavailable", Status: 503, Message: "try later"}, func(e error) bool { return apiCode(e) == "ServiceUnavailable" }, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.FailNext(1, tt.fault)
			_, err := c.SendEmail(context.Background(), rawInput("to@example.net"))
			if err == nil || !tt.check(err) {
				t.Fatalf("err = %v, want %s", err, tt.fault.Type)
			}
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != tt.status {
				t.Errorf("HTTP status: got %v, want %d", err, tt.status)
			}
			want := tt.fault.Message
			if want == "" {
				want = tt.fault.Type.DefaultMessage()
			}
			var ae smithy.APIError
			if errors.As(err, &ae); ae.ErrorMessage() != want {
				t.Errorf("message = %q, want %q", ae.ErrorMessage(), want)
			}
			// The fault was for one request only.
			if _, err := c.SendEmail(context.Background(), rawInput("to@example.net")); err != nil {
				t.Errorf("second send: %v", err)
			}
		})
	}
}

func TestSignatureChecks(t *testing.T) {
	srv, url := start(t, Options{})
	tests := []struct {
		name string
		mod  func(*sesv2.Options)
		code string
	}{
		{"correct", func(*sesv2.Options) {}, ""},
		{"wrong secret", func(o *sesv2.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider(DefaultAccessKeyID, "wrong", "")
		}, "SignatureDoesNotMatch"},
		{"unknown access key", func(o *sesv2.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider("AKIAOTHER", DefaultSecretAccessKey, "")
		}, "UnrecognizedClientException"},
		{"wrong region", func(o *sesv2.Options) { o.Region = "eu-west-1" }, "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Accepted()
			_, err := client(url, tt.mod).SendEmail(context.Background(), rawInput("to@example.net"))
			if got := apiCode(err); got != tt.code || (tt.code != "" && err == nil) {
				t.Fatalf("code = %q (err %v), want %q", got, err, tt.code)
			}
			if accepted := srv.Accepted() - before; (tt.code == "") != (accepted == 1) {
				t.Errorf("accepted %d messages", accepted)
			}
		})
	}
}

// signed builds a request signed with the SDK's signer, then lets mod tamper
// with it.
func signed(t *testing.T, url, method, path, body, service, region string, at time.Time, mod func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Date", at.UTC().Format(amzDateLayout))
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: DefaultSecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestSignatureChecksRaw(t *testing.T) {
	_, url := start(t, Options{})
	body := `{"Content":{"Raw":{"Data":"` + b64(testMessage) + `"}},"Destination":{"ToAddresses":["to@example.net"]}}`
	now := time.Now()
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		service string
		at      time.Time
		mod     func(*http.Request)
		status  int
		errType string
	}{
		{"valid send", "POST", "/v2/email/outbound-emails", body, "ses", now, nil, 200, ""},
		{"valid get with query", "GET", "/v2/email/account?b=2&a=x%20y&a=1", "", "ses", now, nil, 200, ""},
		{"wrong service", "POST", "/v2/email/outbound-emails", body, "email", now, nil, 403, "SignatureDoesNotMatch"},
		{"tampered body", "POST", "/v2/email/outbound-emails", body, "ses", now, func(r *http.Request) {
			tampered := strings.Replace(body, "to@example.net", "tx@example.net", 1)
			r.Body = io.NopCloser(strings.NewReader(tampered))
		}, 403, "SignatureDoesNotMatch"},
		{"tampered query", "GET", "/v2/email/account?a=1", "", "ses", now, func(r *http.Request) { r.URL.RawQuery = "a=2" }, 403, "SignatureDoesNotMatch"},
		{"tampered signed header", "POST", "/v2/email/outbound-emails", body, "ses", now, func(r *http.Request) {
			r.Header.Set("Content-Type", "text/plain")
		}, 403, "SignatureDoesNotMatch"},
		{"content hash header mismatch", "POST", "/v2/email/outbound-emails", body, "ses", now, func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		}, 400, "SignatureDoesNotMatch"},
		{"stale date", "POST", "/v2/email/outbound-emails", body, "ses", now.Add(-16 * time.Minute), nil, 403, "InvalidSignatureException"},
		{"future date", "POST", "/v2/email/outbound-emails", body, "ses", now.Add(16 * time.Minute), nil, 403, "InvalidSignatureException"},
		{"no authorization", "POST", "/v2/email/outbound-emails", body, "ses", now, func(r *http.Request) { r.Header.Del("Authorization") }, 403, "MissingAuthenticationTokenException"},
		{"malformed authorization", "POST", "/v2/email/outbound-emails", body, "ses", now, func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
		}, 400, "IncompleteSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := signed(t, url, tt.method, tt.path, tt.body, tt.service, DefaultRegion, tt.at, tt.mod)
			if resp.StatusCode != tt.status || resp.Header.Get("X-Amzn-Errortype") != tt.errType {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("got %d %q (%s), want %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b, tt.status, tt.errType)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	srv, url := start(t, Options{
		MaxMessageBytes:   1024,
		Identities:        []string{"sender@example.com", "example.org"},
		ConfigurationSets: []string{"cs1"},
	})
	c := client(url)
	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprintf("r%d@example.net", i)
	}
	tests := []struct {
		name string
		mod  func(*sesv2.SendEmailInput)
		code string
		text string
	}{
		{"valid", func(*sesv2.SendEmailInput) {}, "", ""},
		{"50 recipients", func(in *sesv2.SendEmailInput) { in.Destination.ToAddresses = many[:50] }, "", ""},
		{"51 recipients", func(in *sesv2.SendEmailInput) {
			in.Destination.ToAddresses, in.Destination.BccAddresses = many[:25], many[25:]
		}, "BadRequestException", "Recipient count exceeds 50."},
		{"recipients from headers", func(in *sesv2.SendEmailInput) { in.Destination = nil }, "", ""},
		{"illegal address", func(in *sesv2.SendEmailInput) { in.Destination.CcAddresses = []string{"no-at-sign"} }, "BadRequestException", "Illegal address"},
		{"8-bit address", func(in *sesv2.SendEmailInput) { in.Destination.ToAddresses = []string{"jö@example.net"} }, "BadRequestException", "Illegal address"},
		{"too large", func(in *sesv2.SendEmailInput) {
			in.Content.Raw.Data = []byte(testMessage + strings.Repeat("x", 1024))
		}, "MessageRejected", "Message length is more than 1024 bytes long"},
		{"simple content", func(in *sesv2.SendEmailInput) {
			in.Content = &types.EmailContent{Simple: &types.Message{
				Subject: &types.Content{Data: aws.String("s")},
				Body:    &types.Body{Text: &types.Content{Data: aws.String("b")}},
			}}
		}, "BadRequestException", "only Raw"},
		{"no header section", func(in *sesv2.SendEmailInput) { in.Content.Raw.Data = []byte("no header here") }, "MessageRejected", "Illegal header."},
		{"unverified from", func(in *sesv2.SendEmailInput) { in.FromEmailAddress = aws.String("other@example.com") }, "MessageRejected", "Email address is not verified"},
		{"verified domain", func(in *sesv2.SendEmailInput) { in.FromEmailAddress = aws.String("any@example.org") }, "", ""},
		{"from header when no FromEmailAddress", func(in *sesv2.SendEmailInput) { in.FromEmailAddress = nil }, "", ""},
		{"unknown configuration set", func(in *sesv2.SendEmailInput) { in.ConfigurationSetName = aws.String("nope") }, "NotFoundException", "Configuration set <nope> does not exist."},
		{"known configuration set", func(in *sesv2.SendEmailInput) { in.ConfigurationSetName = aws.String("cs1") }, "", ""},
		{"tag name charset", func(in *sesv2.SendEmailInput) {
			in.EmailTags = []types.MessageTag{{Name: aws.String("a.b"), Value: aws.String("v")}}
		}, "BadRequestException", "Invalid tag name"},
		{"tag value charset", func(in *sesv2.SendEmailInput) {
			in.EmailTags = []types.MessageTag{{Name: aws.String("a"), Value: aws.String("x y")}}
		}, "BadRequestException", "Invalid tag value"},
		{"tag value 256", func(in *sesv2.SendEmailInput) {
			in.EmailTags = []types.MessageTag{{Name: aws.String("a"), Value: aws.String(strings.Repeat("v", 256))}}
		}, "", ""},
		{"tag value 257", func(in *sesv2.SendEmailInput) {
			in.EmailTags = []types.MessageTag{{Name: aws.String("a"), Value: aws.String(strings.Repeat("v", 257))}}
		}, "BadRequestException", "Invalid tag value"},
		{"duplicate tag", func(in *sesv2.SendEmailInput) {
			in.EmailTags = []types.MessageTag{{Name: aws.String("a"), Value: aws.String("1")}, {Name: aws.String("a"), Value: aws.String("2")}}
		}, "BadRequestException", "Duplicate tag name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Accepted()
			in := rawInput("to@example.net")
			tt.mod(in)
			_, err := c.SendEmail(context.Background(), in)
			if got := apiCode(err); got != tt.code {
				t.Fatalf("code = %q (err %v), want %q", got, err, tt.code)
			}
			if tt.code != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if accepted := srv.Accepted() - before; (tt.code == "") != (accepted == 1) {
				t.Errorf("accepted %d messages", accepted)
			}
		})
	}
}

func TestFailFraction(t *testing.T) {
	srv, url := start(t, Options{})
	c := client(url)
	tests := []struct {
		name     string
		fraction float64
		min, max int // failures out of 200
	}{
		{"none", 0, 0, 0},
		{"all", 1, 200, 200},
		{"half", 0.5, 60, 140},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.ClearFaults()
			srv.FailFraction(tt.fraction, Fault{Type: InternalServiceError})
			failed := 0
			for range 200 {
				if _, err := c.SendEmail(context.Background(), rawInput("to@example.net")); err != nil {
					if apiCode(err) != string(InternalServiceError) {
						t.Fatalf("unexpected error %v", err)
					}
					failed++
				}
			}
			if failed < tt.min || failed > tt.max {
				t.Errorf("%d of 200 failed, want %d..%d", failed, tt.min, tt.max)
			}
		})
	}
}

func TestLatencyAndHang(t *testing.T) {
	srv, url := start(t, Options{})
	c := client(url)
	send := func(timeout time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		_, err := c.SendEmail(ctx, rawInput("to@example.net"))
		return time.Since(start), err
	}

	srv.SetLatency(200 * time.Millisecond)
	if took, err := send(2 * time.Second); err != nil || took < 200*time.Millisecond {
		t.Errorf("with latency: took %v, err %v; want >= 200ms and success", took, err)
	}
	if took, err := send(50 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
		t.Errorf("latency over deadline: took %v, err %v; want deadline exceeded", took, err)
	}
	srv.SetLatency(0)

	srv.SetHang(true)
	if took, err := send(100 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
		t.Errorf("hang: took %v, err %v; want deadline exceeded", took, err)
	}
	// A hung request is released by SetHang(false).
	done := make(chan error, 1)
	go func() { _, err := send(5 * time.Second); done <- err }()
	time.Sleep(50 * time.Millisecond)
	srv.SetHang(false)
	if err := <-done; err != nil {
		t.Errorf("released request: %v", err)
	}
	if got := srv.Accepted(); got != 2 {
		t.Errorf("accepted %d, want 2 (one after latency, one released)", got)
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestMaxSendRate(t *testing.T) {
	clk := &clock{t: time.Now()}
	srv, url := start(t, Options{Now: clk.Now})
	c := client(url)
	srv.SetMaxSendRate(2)
	steps := []struct {
		name    string
		advance time.Duration
		rcpts   int
		code    string
	}{
		{"first of burst", 0, 1, ""},
		{"second of burst", 0, 1, ""},
		{"over rate", 0, 1, "TooManyRequestsException"},
		{"half a second later", 500 * time.Millisecond, 1, ""},
		{"one token, five recipients", 500 * time.Millisecond, 5, ""},
		{"bucket below zero", time.Second, 1, "TooManyRequestsException"},
		{"refilled", 2 * time.Second, 1, ""},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		to := make([]string, st.rcpts)
		for i := range to {
			to[i] = fmt.Sprintf("r%d@example.net", i)
		}
		_, err := c.SendEmail(context.Background(), rawInput(to...))
		if got := apiCode(err); got != st.code {
			t.Fatalf("%s: code %q (%v), want %q", st.name, got, err, st.code)
		}
		if st.code != "" && !strings.Contains(err.Error(), "Maximum sending rate exceeded.") {
			t.Errorf("%s: error %v lacks the SES text", st.name, err)
		}
	}
	srv.SetMaxSendRate(0)
	for range 5 {
		if _, err := c.SendEmail(context.Background(), rawInput("to@example.net")); err != nil {
			t.Fatalf("rate removed: %v", err)
		}
	}
}

func TestDailyQuotaAndAccount(t *testing.T) {
	clk := &clock{t: time.Now()}
	srv, url := start(t, Options{Now: clk.Now, Quota: Quota{Max24HourSend: 3, MaxSendRate: 100}})
	c := client(url)
	if _, err := c.SendEmail(context.Background(), rawInput("a@example.net", "b@example.net")); err != nil {
		t.Fatal(err)
	}
	_, err := c.SendEmail(context.Background(), rawInput("a@example.net", "b@example.net"))
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) || tm.ErrorMessage() != "Daily message quota exceeded." {
		t.Fatalf("over daily quota: %v", err)
	}
	acct, err := c.GetAccount(context.Background(), &sesv2.GetAccountInput{})
	if err != nil {
		t.Fatal(err)
	}
	q := acct.SendQuota
	if q.Max24HourSend != 3 || q.MaxSendRate != 100 || q.SentLast24Hours != 2 || !acct.SendingEnabled {
		t.Errorf("account = %+v, want 3/100/2, sending enabled", *q)
	}
	// The rolling day, without the SDK (whose signature would be stale).
	srv.mu.Lock()
	defer srv.mu.Unlock()
	day := clk.Now()
	steps := []struct {
		name  string
		at    time.Time
		rcpts int
		want  bool
	}{
		{"full an hour later", day.Add(time.Hour), 2, false},
		{"one left", day.Add(time.Hour), 1, true},
		{"23 hours later", day.Add(23 * time.Hour), 1, false},
		{"24 hours later, the first hour expired", day.Add(24 * time.Hour), 2, true},
		{"25 hours later, two still count", day.Add(25 * time.Hour), 2, false},
		{"25 hours later, one fits", day.Add(25 * time.Hour), 1, true},
	}
	for _, st := range steps {
		if got := srv.admitDay(st.at, st.rcpts); got != st.want {
			t.Errorf("%s: admitted %v, want %v", st.name, got, st.want)
		}
	}
}

func TestMemoryBounds(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		sends      int
		wantKept   int
		wantRawNil bool
	}{
		{"count bound", Options{MaxMessages: 3}, 5, 3, false},
		{"byte bound", Options{MaxStoredBytes: int64(2 * len(testMessage))}, 5, 2, false},
		{"message over byte bound", Options{MaxStoredBytes: 10}, 2, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, url := start(t, tt.opts)
			c := client(url)
			var ids []string
			for range tt.sends {
				out, err := c.SendEmail(context.Background(), rawInput("to@example.net"))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, *out.MessageId)
			}
			sent := srv.Sent()
			if len(sent) != tt.wantKept || srv.Accepted() != int64(tt.sends) {
				t.Fatalf("kept %d, accepted %d; want %d, %d", len(sent), srv.Accepted(), tt.wantKept, tt.sends)
			}
			for i, m := range sent {
				if want := ids[tt.sends-tt.wantKept+i]; m.ID != want {
					t.Errorf("kept[%d] = %s, want %s (newest kept, oldest first)", i, m.ID, want)
				}
				if (m.Raw == nil) != tt.wantRawNil || m.Size != len(testMessage) {
					t.Errorf("kept[%d]: raw nil %v, size %d", i, m.Raw == nil, m.Size)
				}
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	_, url := start(t, Options{MaxBodyBytes: 1000})
	in := rawInput("to@example.net")
	in.Content.Raw.Data = bytes.Repeat([]byte("a"), 1000)
	_, err := client(url).SendEmail(context.Background(), in)
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusRequestEntityTooLarge {
		t.Fatalf("err = %v, want 413", err)
	}
}

func TestControlEndpoints(t *testing.T) {
	post := func(t *testing.T, url, body string) int {
		resp, err := http.Post(url+"/_sestest/fault", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("disabled", func(t *testing.T) {
		_, url := start(t, Options{})
		if got := post(t, url, `{"error":"MessageRejected"}`); got != http.StatusNotFound {
			t.Errorf("status %d, want 404", got)
		}
		if _, err := client(url).SendEmail(context.Background(), rawInput("to@example.net")); err != nil {
			t.Errorf("send after refused control call: %v", err)
		}
	})

	t.Run("enabled", func(t *testing.T) {
		srv, url := start(t, Options{EnableControl: true})
		c := client(url)
		steps := []struct {
			name   string
			body   string
			status int
			code   string // of the next send
		}{
			{"error once", `{"error":"MessageRejected","message":"bad content"}`, 204, "MessageRejected"},
			{"back to normal", ``, 0, ""},
			{"two throttles", `{"error":"TooManyRequestsException","count":2}`, 204, "TooManyRequestsException"},
			{"second throttle", ``, 0, "TooManyRequestsException"},
			{"clear", `{"error":"NotFoundException","count":5}`, 204, "NotFoundException"},
			{"clear works", `{"clear":true}`, 204, ""},
			{"unknown field", `{"eror":"x"}`, 400, ""},
			{"bad latency", `{"latency":"soon"}`, 400, ""},
			{"rate", `{"max_send_rate":1}`, 204, ""},
			{"rate spent", ``, 0, "TooManyRequestsException"},
			{"rate removed", `{"max_send_rate":0}`, 204, ""},
		}
		for _, st := range steps {
			if st.body != "" {
				if got := post(t, url, st.body); got != st.status {
					t.Fatalf("%s: status %d, want %d", st.name, got, st.status)
				}
			}
			_, err := c.SendEmail(context.Background(), rawInput("to@example.net"))
			if got := apiCode(err); got != st.code {
				t.Fatalf("%s: code %q, want %q", st.name, got, st.code)
			}
		}

		resp, err := http.Get(url + "/_sestest/messages")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list MessageList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		kept := srv.Sent()
		if list.Accepted != 6 || list.Requests != 11 || len(list.Messages) != len(kept) {
			t.Fatalf("list: accepted %d requests %d messages %d; want 6, 11, %d", list.Accepted, list.Requests, len(list.Messages), len(kept))
		}
		last := list.Messages[len(list.Messages)-1]
		if last.ID != kept[len(kept)-1].ID || last.From != "sender@example.com" || last.Size != len(testMessage) ||
			fmt.Sprint(last.To) != "[to@example.net]" {
			t.Errorf("last message listed as %+v", last)
		}
		raw, err := http.Get(url + "/_sestest/messages/" + last.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Body.Close()
		if b, _ := io.ReadAll(raw.Body); string(b) != testMessage {
			t.Errorf("raw message = %q", b)
		}

		reset, err := http.Post(url+"/_sestest/reset", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		reset.Body.Close()
		if srv.Accepted() != 0 || len(srv.Sent()) != 0 {
			t.Errorf("after reset: accepted %d, kept %d", srv.Accepted(), len(srv.Sent()))
		}
	})
}

func TestControlHangOverHTTP(t *testing.T) {
	_, url := start(t, Options{EnableControl: true})
	resp, err := http.Post(url+"/_sestest/fault", "application/json", strings.NewReader(`{"hang":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := client(url).SendEmail(ctx, rawInput("to@example.net")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}
