package ses

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/sestest"
)

const testMessage = "From: App <app@example.com>\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n"

func startSES(t testing.TB, opts sestest.Options) (*sestest.Server, string) {
	t.Helper()
	srv, url, stop, err := sestest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv, url
}

func staticCreds(secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(sestest.DefaultAccessKeyID, secret, "")
}

// newSink returns a sink whose client goes to url through the real SDK.
func newSink(t testing.TB, url string, copts ClientOptions, opts Options) *Sink {
	t.Helper()
	copts.Region = sestest.DefaultRegion
	copts.Endpoint = url
	if copts.Credentials == nil {
		copts.Credentials = staticCreds(sestest.DefaultSecretAccessKey)
	}
	c, err := NewClient(context.Background(), copts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Client = c
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func envelope(tenant *gateway.Tenant, rcpts ...string) *gateway.Envelope {
	return &gateway.Envelope{
		ID:         "01jab3c4d5e6f7g8h9j0k1m2n3",
		Tenant:     tenant,
		From:       "app@example.com",
		Recipients: rcpts,
		Data:       []byte(testMessage),
	}
}

func TestSendBuildsRequest(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	tests := []struct {
		name       string
		tenant     gateway.Tenant
		defaultSet string
		id         string
		wantSet    string
		wantTags   map[string]string
	}{
		{"tenant configuration set and SES tenant",
			gateway.Tenant{ID: "acme", SES: gateway.SESOptions{ConfigurationSet: "acme-events", TenantName: "acme-ses"}},
			"gateway-events", "01jab3c4d5e6f7g8h9j0k1m2n3", "acme-events",
			map[string]string{TagTenant: "acme", TagID: "01jab3c4d5e6f7g8h9j0k1m2n3"}},
		{"default configuration set",
			gateway.Tenant{ID: "beta"}, "gateway-events", "id-1", "gateway-events",
			map[string]string{TagTenant: "beta", TagID: "id-1"}},
		{"no configuration set, odd characters sanitised",
			gateway.Tenant{ID: "team.eu/mail ö"}, "", "a:b", "",
			map[string]string{TagTenant: "team_eu_mail___", TagID: "a_b"}},
		{"empty id omitted",
			gateway.Tenant{ID: "gamma"}, "", "", "",
			map[string]string{TagTenant: "gamma"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			sink := newSink(t, url, ClientOptions{}, Options{DefaultConfigurationSet: tt.defaultSet})
			env := envelope(&tt.tenant, "a@example.net", "hidden-bcc@example.org")
			env.ID = tt.id
			id, err := sink.Send(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			sent := srv.Sent()
			if len(sent) != 1 {
				t.Fatalf("SES received %d messages", len(sent))
			}
			m := sent[0]
			checks := []struct {
				name      string
				got, want any
			}{
				{"message id", id, m.ID},
				{"from", m.From, "app@example.com"},
				{"destination", m.Recipients(), []string{"a@example.net", "hidden-bcc@example.org"}},
				{"raw", string(m.Raw), testMessage},
				{"configuration set", m.ConfigurationSet, tt.wantSet},
				{"ses tenant", m.TenantName, tt.tenant.SES.TenantName},
				{"tags", m.Tags, tt.wantTags},
			}
			for _, c := range checks {
				if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestSendRefusesBeforeCalling(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	sink := newSink(t, url, ClientOptions{}, Options{})
	tenant := &gateway.Tenant{ID: "t"}
	many := make([]string, MaxRecipients+1)
	for i := range many {
		many[i] = fmt.Sprintf("r%d@example.net", i)
	}
	tests := []struct {
		name string
		env  *gateway.Envelope
		code gateway.Code
	}{
		{"no tenant", envelope(nil, "a@example.net"), gateway.CodeInternal},
		{"no recipients", envelope(tenant), gateway.CodeNoRecipients},
		{"51 recipients", envelope(tenant, many...), gateway.CodeTooManyRecipients},
		{"empty message", func() *gateway.Envelope { e := envelope(tenant, "a@example.net"); e.Data = nil; return e }(), gateway.CodeBadContent},
		{"over 40 MiB", func() *gateway.Envelope {
			e := envelope(tenant, "a@example.net")
			e.Data = make([]byte, MaxMessageBytes+1)
			return e
		}(), gateway.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sink.Send(context.Background(), tt.env)
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Code != tt.code {
				t.Fatalf("err = %v, want code %v", err, tt.code)
			}
			if n := srv.Requests(); n != 0 {
				t.Errorf("SES received %d requests", n)
			}
		})
	}
}

// logRecorder is a slog.Handler that keeps records.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) take() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs
	l.recs = nil
	return r
}

func TestErrorTable(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	logs := &logRecorder{}
	sink := newSink(t, url, ClientOptions{}, Options{MaxAttempts: 1, Logger: slog.New(logs)})
	badKey := newSink(t, url, ClientOptions{Credentials: staticCreds("wrong-secret")}, Options{MaxAttempts: 1, Logger: slog.New(logs)})
	tests := []struct {
		name       string
		fault      sestest.Fault
		sink       *Sink
		code       gateway.Code
		retryAfter time.Duration
		alert      bool
	}{
		{"rate exceeded", sestest.Fault{Type: sestest.TooManyRequests}, sink, gateway.CodeUpstreamThrottled, time.Second, false},
		{"limit exceeded", sestest.Fault{Type: sestest.LimitExceeded, Message: "Too many requests."}, sink, gateway.CodeUpstreamThrottled, time.Second, false},
		{"daily quota as 429", sestest.Fault{Type: sestest.TooManyRequests, Message: "Daily message quota exceeded."}, sink, gateway.CodeUpstreamQuota, 10 * time.Minute, true},
		{"daily quota as LimitExceeded", sestest.Fault{Type: sestest.LimitExceeded, Message: "Daily message quota exceeded."}, sink, gateway.CodeUpstreamQuota, 10 * time.Minute, true},
		{"daily quota as another type", sestest.Fault{Type: sestest.BadRequest, Message: "Daily message quota exceeded."}, sink, gateway.CodeUpstreamQuota, 10 * time.Minute, true},
		{"sending paused", sestest.Fault{Type: sestest.SendingPaused}, sink, gateway.CodeUpstreamPaused, time.Minute, true},
		{"account suspended", sestest.Fault{Type: sestest.AccountSuspended}, sink, gateway.CodeUpstreamPaused, time.Minute, true},
		{"rejected: not verified", sestest.Fault{Type: sestest.MessageRejected, Message: "Email address is not verified. The following identities failed the check in region US-EAST-1: a@example.net"}, sink, gateway.CodeUpstreamNotAuthorized, 0, false},
		{"rejected: content", sestest.Fault{Type: sestest.MessageRejected, Message: "Illegal header."}, sink, gateway.CodeUpstreamRejected, 0, false},
		{"mail from unverified", sestest.Fault{Type: sestest.MailFromDomainNotVerified}, sink, gateway.CodeUpstreamSenderUnverified, 0, false},
		{"configuration set missing", sestest.Fault{Type: sestest.NotFound}, sink, gateway.CodeUpstreamMisconfigured, 0, true},
		{"bad request", sestest.Fault{Type: sestest.BadRequest}, sink, gateway.CodeUpstreamBadRequest, 0, false},
		{"internal error", sestest.Fault{Type: sestest.InternalServiceError}, sink, gateway.CodeUpstreamUnavailable, 0, false},
		{"unmodelled 503", sestest.Fault{Type: "ServiceUnavailable", Status: 503, Message: "busy"}, sink, gateway.CodeUpstreamUnavailable, 0, false},
		{"unmodelled 400", sestest.Fault{Type: "SomethingNewException", Status: 400, Message: "new"}, sink, gateway.CodeUpstreamUnavailable, 0, true},
		{"access denied", sestest.Fault{Type: "AccessDeniedException", Status: 403, Message: "not authorized to perform ses:SendEmail"}, sink, gateway.CodeUpstreamMisconfigured, 0, true},
		{"wrong secret key", sestest.Fault{}, badKey, gateway.CodeUpstreamMisconfigured, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			logs.take()
			if tt.fault.Type != "" {
				srv.FailNext(1, tt.fault)
			}
			_, err := tt.sink.Send(context.Background(), envelope(&gateway.Tenant{ID: "t"}, "a@example.net"))
			var ge *gateway.Error
			if !errors.As(err, &ge) {
				t.Fatalf("err = %v, want *gateway.Error", err)
			}
			if ge.Code != tt.code || ge.RetryAfter != tt.retryAfter {
				t.Errorf("code %v retry-after %v, want %v %v", ge.Code, ge.RetryAfter, tt.code, tt.retryAfter)
			}
			if !ge.Code.Temporary() && tt.code == gateway.CodeUpstreamPaused {
				t.Errorf("%v must be temporary", ge.Code)
			}
			sesText := tt.fault.Message
			if sesText == "" {
				sesText = tt.fault.Type.DefaultMessage()
			}
			if tt.fault.Type == "" {
				sesText = "signature we calculated does not match"
			}
			if strings.Contains(ge.Msg, sesText) || ge.Cause == nil || !strings.Contains(ge.Cause.Error(), sesText) {
				t.Errorf("client message %q / cause %v: SES text %q must be in the cause only", ge.Msg, ge.Cause, sesText)
			}
			recs := logs.take()
			if len(recs) != 1 {
				t.Fatalf("%d log records, want 1", len(recs))
			}
			if got := recs[0].Level == slog.LevelError; got != tt.alert {
				t.Errorf("logged at %v, alert %v", recs[0].Level, tt.alert)
			}
		})
	}
}

// countingDialer counts connection attempts.
type countingDialer struct {
	n atomic.Int64
	d net.Dialer
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, addr)
}

func TestRetryPolicy(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	type setup func(*sestest.Server)
	fail := func(n int, f sestest.Fault) setup { return func(s *sestest.Server) { s.FailNext(n, f) } }
	tests := []struct {
		name     string
		setup    setup
		timeout  time.Duration
		attempts int
		requests int64
		code     gateway.Code // -1: success
		maxTook  time.Duration
	}{
		{"429 then success", fail(1, sestest.Fault{Type: sestest.TooManyRequests}), 5 * time.Second, 0, 2, -1, 2 * time.Second},
		{"LimitExceeded then success", fail(1, sestest.Fault{Type: sestest.LimitExceeded}), 5 * time.Second, 0, 2, -1, 2 * time.Second},
		{"429 until attempts run out", fail(10, sestest.Fault{Type: sestest.TooManyRequests}), 5 * time.Second, 0, 3, gateway.CodeUpstreamThrottled, 2 * time.Second},
		{"429 with retries disabled", fail(10, sestest.Fault{Type: sestest.TooManyRequests}), 5 * time.Second, 1, 1, gateway.CodeUpstreamThrottled, time.Second},
		{"daily quota not retried", fail(10, sestest.Fault{Type: sestest.TooManyRequests, Message: "Daily message quota exceeded."}), 5 * time.Second, 0, 1, gateway.CodeUpstreamQuota, time.Second},
		{"500 not retried", fail(10, sestest.Fault{Type: sestest.InternalServiceError}), 5 * time.Second, 0, 1, gateway.CodeUpstreamUnavailable, time.Second},
		{"503 not retried", fail(10, sestest.Fault{Type: "ServiceUnavailable", Status: 503}), 5 * time.Second, 0, 1, gateway.CodeUpstreamUnavailable, time.Second},
		{"rejection not retried", fail(10, sestest.Fault{Type: sestest.MessageRejected}), 5 * time.Second, 0, 1, gateway.CodeUpstreamNotAuthorized, time.Second},
		{"hang times out, not retried", func(s *sestest.Server) { s.SetHang(true) }, 300 * time.Millisecond, 0, 1, gateway.CodeUpstreamUnavailable, time.Second},
		{"slow 429 near the deadline keeps SES's answer", func(s *sestest.Server) {
			s.SetLatency(800 * time.Millisecond)
			s.FailNext(10, sestest.Fault{Type: sestest.TooManyRequests})
		}, time.Second, 0, 1, gateway.CodeUpstreamThrottled, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			tt.setup(srv)
			sink := newSink(t, url, ClientOptions{}, Options{Timeout: tt.timeout, MaxAttempts: tt.attempts})
			start := time.Now()
			id, err := sink.Send(context.Background(), envelope(&gateway.Tenant{ID: "t"}, "a@example.net"))
			took := time.Since(start)
			srv.ClearFaults()
			if tt.code < 0 {
				if err != nil || id == "" {
					t.Fatalf("want success, got %q, %v", id, err)
				}
			} else {
				var ge *gateway.Error
				if !errors.As(err, &ge) || ge.Code != tt.code {
					t.Fatalf("err = %v, want %v", err, tt.code)
				}
			}
			if got := srv.Requests(); got != tt.requests {
				t.Errorf("SES saw %d requests, want %d", got, tt.requests)
			}
			if took > tt.maxTook {
				t.Errorf("took %v, want at most %v", took, tt.maxTook)
			}
		})
	}
}

func TestRetryConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	dialer := &countingDialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	sink := newSink(t, url, ClientOptions{HTTPClient: hc}, Options{Timeout: 5 * time.Second})
	_, err = sink.Send(context.Background(), envelope(&gateway.Tenant{ID: "t"}, "a@example.net"))
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Code != gateway.CodeUpstreamUnavailable || ge.Msg != "SES could not be reached" {
		t.Fatalf("err = %v, want ses_unavailable 'SES could not be reached'", err)
	}
	if n := dialer.n.Load(); n != DefaultMaxAttempts {
		t.Errorf("%d connection attempts, want %d", n, DefaultMaxAttempts)
	}
}

func TestNewClientFromEnvironment(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"service endpoint variable", map[string]string{"AWS_ENDPOINT_URL_SESV2": url, "AWS_REGION": "us-east-1"}, false},
		{"global endpoint variable", map[string]string{"AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1"}, false},
		{"no region", map[string]string{"AWS_ENDPOINT_URL_SESV2": url}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for k, v := range map[string]string{
				"AWS_ACCESS_KEY_ID":           sestest.DefaultAccessKeyID,
				"AWS_SECRET_ACCESS_KEY":       sestest.DefaultSecretAccessKey,
				"AWS_SESSION_TOKEN":           "",
				"AWS_PROFILE":                 "",
				"AWS_CONFIG_FILE":             dir + "/config",
				"AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials",
				"AWS_EC2_METADATA_DISABLED":   "true",
				"AWS_REGION":                  "",
				"AWS_DEFAULT_REGION":          "",
				"AWS_ENDPOINT_URL":            "",
				"AWS_ENDPOINT_URL_SESV2":      "",
			} {
				t.Setenv(k, v)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := NewClient(context.Background(), ClientOptions{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewClient err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			sink, err := New(Options{Client: c})
			if err != nil {
				t.Fatal(err)
			}
			before := srv.Accepted()
			if _, err := sink.Send(context.Background(), envelope(&gateway.Tenant{ID: "t"}, "a@example.net")); err != nil {
				t.Fatal(err)
			}
			if srv.Accepted() != before+1 {
				t.Errorf("sestest did not receive the message")
			}
		})
	}
}

func TestSanitizeTag(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"allowed", "abc-XYZ_019", "abc-XYZ_019"},
		{"punctuation", "a.b/c:d e", "a_b_c_d_e"},
		{"non-ascii bytes", "é", "__"},
		{"empty", "", ""},
		{"cut to 256", strings.Repeat("x", 300), strings.Repeat("x", 256)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SanitizeTag(tt.in); got != tt.want {
				t.Errorf("SanitizeTag(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewValidatesOptions(t *testing.T) {
	c := &fakeClient{}
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"defaults", Options{Client: c}, false},
		{"no client", Options{}, true},
		{"negative attempts", Options{Client: c, MaxAttempts: -1}, true},
		{"too many attempts", Options{Client: c, MaxAttempts: MaxMaxAttempts + 1}, true},
		{"negative timeout", Options{Client: c, Timeout: -time.Second}, true},
		{"huge timeout", Options{Client: c, Timeout: time.Hour}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && s.timeout != DefaultTimeout {
				t.Errorf("timeout %v, want %v", s.timeout, DefaultTimeout)
			}
		})
	}
}

// fakeClient injects answers SES never gives: only for fault injection.
type fakeClient struct {
	out *sesv2.SendEmailOutput
}

func (f *fakeClient) SendEmail(context.Context, *sesv2.SendEmailInput, ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	return f.out, nil
}

func TestMissingMessageID(t *testing.T) {
	tests := []struct {
		name string
		out  *sesv2.SendEmailOutput
	}{
		{"nil output", nil},
		{"nil id", &sesv2.SendEmailOutput{}},
		{"empty id", &sesv2.SendEmailOutput{MessageId: aws.String("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Client: &fakeClient{out: tt.out}})
			if err != nil {
				t.Fatal(err)
			}
			id, err := s.Send(context.Background(), envelope(&gateway.Tenant{ID: "t"}, "a@example.net"))
			var ge *gateway.Error
			if id != "" || !errors.As(err, &ge) || ge.Code != gateway.CodeUpstreamUnavailable {
				t.Fatalf("got %q, %v; want ses_unavailable", id, err)
			}
		})
	}
}

func BenchmarkSend(b *testing.B) {
	_, url := startSES(b, sestest.Options{MaxMessages: 100})
	sink := newSink(b, url, ClientOptions{}, Options{})
	tenant := &gateway.Tenant{ID: "bench", SES: gateway.SESOptions{ConfigurationSet: "events"}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		env := envelope(tenant, "a@example.net", "b@example.net")
		for pb.Next() {
			if _, err := sink.Send(context.Background(), env); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
