package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/server"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/internal/sestest/sqstest"
)

// TestEndToEndFeedbackEmbedded runs `sesgate serve` on the embedded store
// with sestest publishing signed SNS bounces to its SNS endpoint (trusted
// through SESGATE_SNS_TRUST_CERT): the bouncing tenant is stopped, the
// bounced address is suppressed, the other tenant keeps sending, and the
// trip reaches the alert webhook, which fails once first.
func TestEndToEndFeedbackEmbedded(t *testing.T) {
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	pem, err := srv.SNSCertificatePEM()
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(t.TempDir(), "sns.pem")
	if err := os.WriteFile(certPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var alerts []map[string]any
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var a map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &a); err != nil {
			t.Errorf("alert body %q: %v", b, err)
		}
		alerts = append(alerts, a)
	}))
	defer hook.Close()

	tokRE := regexp.MustCompile(`(sg_\S+)`)
	lineRE := regexp.MustCompile(`- (\{key_id: .*\})`)
	policy := "events:\n  sns: {topic_arns: [\"" + sestest.DefaultTopicArn + "\"]}\ntenants:\n"
	toks := map[string]string{}
	for _, id := range []string{"leaky", "clean"} {
		out := runCLI(t, nil, "token", "new", "--tenant", id)
		tm, lm := tokRE.FindStringSubmatch(out), lineRE.FindStringSubmatch(out)
		if tm == nil || lm == nil {
			t.Fatalf("token new output:\n%s", out)
		}
		toks[id] = tm[1]
		policy += "  - id: " + id + "\n    tokens:\n      - " + lm[1] + "\n    identities: [\"*\"]\n" +
			"    breaker: {min_sent: 20, fast_min_bounces: 5}\n"
	}
	path := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, append(sesEnv(t, url), "SESGATE_SNS_TRUST_CERT="+certPath, "SESGATE_ALERT_WEBHOOK="+hook.URL), "--config", path)
	if err := srv.SetEvents(&sestest.EventOptions{URL: "http://" + g.httpAddr + server.DefaultSNSPath, Delay: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	send := func(tenant, to string) sendResult {
		return postJSON(t, g.httpAddr, toks[tenant], map[string]any{"from": "app@example.com", "to": []string{to}, "subject": "x", "text": "x"})
	}
	stopped := false
	for i := 0; i < 500 && !stopped; i++ {
		rcpt := fmt.Sprintf("user%d@list.example", i)
		if i%10 < 3 {
			rcpt = fmt.Sprintf("bounce%d@list.example", i)
		}
		r := send("leaky", rcpt)
		switch {
		case r.status == 200:
		case errCode(r) == "breaker_open":
			stopped = true
		default:
			t.Fatalf("send %d: %d %v", i, r.status, r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !stopped {
		t.Fatal("leaky was never stopped")
	}
	tests := []struct {
		name, tenant, to, code string
	}{
		{name: "tripped tenant", tenant: "leaky", to: "user@list.example", code: "breaker_open"},
		{name: "other tenant", tenant: "clean", to: "user@list.example", code: ""},
		{name: "bounced address", tenant: "clean", to: "bounce0@list.example", code: "recipient_suppressed_bounce"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(tc.tenant, tc.to)
			if got := errCode(r); got != tc.code || (tc.code == "" && r.status != 200) {
				t.Fatalf("%d %v; want %q", r.status, r.body, tc.code)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(alerts)
		var text string
		if n > 0 {
			text, _ = alerts[0]["text"].(string)
		}
		mu.Unlock()
		if n > 0 {
			if !strings.Contains(text, "tenant leaky breaker trip") {
				t.Fatalf("alert text %q", text)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert delivered (webhook calls %d)", calls)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(g.logs(), `"msg":"breaker trip"`) {
		t.Fatalf("no trip in the log:\n%s", g.logs())
	}
}

// TestSESServerEvents: `sesgate ses-server --events-url --sns-cert-out`
// publishes a bounce for a chosen local part, signed by the certificate it
// wrote.
func TestSESServerEvents(t *testing.T) {
	got := make(chan []byte, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer hook.Close()
	certPath := filepath.Join(t.TempDir(), "sns.pem")
	cmd := exec.Command(binPath, "ses-server", "--addr", "127.0.0.1:0", "--events-url", hook.URL, "--sns-cert-out", certPath,
		"--bounce-local-part", "gone", "--complaint-local-part", "-")
	cmd.Env = baseEnv(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`on (http://\S+) `).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("banner %q", line)
	}
	client, err := ses.NewClient(context.Background(), ses.ClientOptions{Region: "us-east-1", Endpoint: m[1],
		Credentials: credentials.NewStaticCredentialsProvider("local", "localsecret", "")})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := ses.New(ses.Options{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	env := &gateway.Envelope{ID: "g1", Tenant: &gateway.Tenant{ID: "acme"}, From: "a@example.com",
		Recipients: []string{"gone1@example.org"}, Data: []byte("From: a@example.com\r\n\r\nx\r\n")}
	if _, err := sink.Send(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	var body []byte
	select {
	case body = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	pem, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := feedback.ParseCertPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := feedback.ParseSNS(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := feedback.NewVerifier(feedback.VerifierOptions{Fetcher: fixedCert{cert}}).Verify(context.Background(), msg); err != nil {
		t.Fatalf("signature: %v", err)
	}
	ev, err := feedback.ParseEvent([]byte(msg.Message))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != feedback.TypeBounce || ev.HardBounces() != 1 || ev.Tenant != "acme" || ev.Recipients[0].Address != "gone1@example.org" {
		t.Fatalf("event %+v", ev)
	}
}

// TestEndToEndSQS: `sesgate serve` with events.sqs.queue_url consumes a
// raw SES complaint from the queue (AWS default credentials and endpoint
// from the environment), suppresses the recipient and deletes the message.
func TestEndToEndSQS(t *testing.T) {
	_, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	q, err := sqstest.Start(sqstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := runCLI(t, nil, "token", "new", "--tenant", "acme")
	tm, lm := regexp.MustCompile(`(sg_\S+)`).FindStringSubmatch(out), regexp.MustCompile(`- (\{key_id: .*\})`).FindStringSubmatch(out)
	if tm == nil || lm == nil {
		t.Fatalf("token new output:\n%s", out)
	}
	policy := "events:\n  sqs: {queue_url: \"" + q.QueueURL("events") + "\", raw: true}\n  suppression_scope: tenant\n" +
		"tenants:\n  - id: acme\n    tokens:\n      - " + lm[1] + "\n    identities: [\"*\"]\n"
	path := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, append(sesEnv(t, url), "AWS_ENDPOINT_URL_SQS="+q.URL()), "--config", path)
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	ev := `{"eventType":"Complaint","complaint":{"timestamp":"` + now + `","complainedRecipients":[{"emailAddress":"angry@example.org"}],"complaintFeedbackType":"abuse"},` +
		`"mail":{"messageId":"m-1","timestamp":"` + now + `","source":"a@example.com","destination":["angry@example.org"],"tags":{"sesgate-tenant":["acme"]}}}`
	if _, err := q.Send("events", ev); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats("events").Deleted != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("message not consumed: %+v", q.Stats("events"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := postJSON(t, g.httpAddr, tm[1], map[string]any{"from": "a@example.com", "to": []string{"angry@example.org"}, "subject": "x", "text": "x"})
	if errCode(r) != "recipient_suppressed" {
		t.Fatalf("complained address: %d %v", r.status, r.body)
	}
}

// fixedCert answers every certificate URL with one certificate.
type fixedCert struct{ c *x509.Certificate }

func (f fixedCert) FetchCert(context.Context, string) (*x509.Certificate, error) { return f.c, nil }
