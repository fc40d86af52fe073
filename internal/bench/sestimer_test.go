package bench

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/sesgate/sesgate/internal/sestest"
)

func sesClient(url, secret string) *sesv2.Client {
	return sesv2.New(sesv2.Options{
		Region: sestest.DefaultRegion, BaseEndpoint: aws.String(url), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(sestest.DefaultAccessKeyID, secret, ""),
	})
}

var sendInput = &sesv2.SendEmailInput{
	FromEmailAddress: aws.String("app@example.com"),
	Destination:      &types.Destination{ToAddresses: []string{"user@example.net"}},
	Content: &types.EmailContent{Raw: &types.RawMessage{
		Data: []byte("From: app@example.com\r\nTo: user@example.net\r\nSubject: hi\r\n\r\nhello\r\n"),
	}},
}

func TestSESTimer(t *testing.T) {
	srv := sestest.New(sestest.Options{})
	timer := NewSESTimer(SESTimerOptions{Next: srv, MaxPending: 2})
	hs := httptest.NewServer(timer)
	defer hs.Close()
	ctx := context.Background()
	good := sesClient(hs.URL, sestest.DefaultSecretAccessKey)

	const latency = 20 * time.Millisecond
	srv.SetLatency(latency)
	out, err := good.SendEmail(ctx, sendInput)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := timer.Take(aws.ToString(out.MessageId))
	if !ok || d < latency || d > 5*time.Second {
		t.Fatalf("Take = %v, %v; want the injected %v or a little more", d, ok, latency)
	}
	if _, ok := timer.Take(aws.ToString(out.MessageId)); ok {
		t.Error("second Take found the timing again")
	}
	srv.SetLatency(0)

	// A refused request has no MessageId and leaves nothing behind.
	bad := sesClient(hs.URL, "wrong-secret")
	if _, err := bad.SendEmail(ctx, sendInput); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: err = %v", err)
	}
	timer.mu.Lock()
	pending := len(timer.pending)
	timer.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d timings pending after a refused request, want 0", pending)
	}

	// Unclaimed timings are bounded by MaxPending; the rest are dropped.
	var ids []string
	for range 3 {
		out, err := good.SendEmail(ctx, sendInput)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.MessageId))
	}
	if timer.Dropped() != 1 {
		t.Errorf("Dropped = %d, want 1", timer.Dropped())
	}
	if _, ok := timer.Take(ids[2]); ok {
		t.Error("the third timing was kept beyond MaxPending 2")
	}
	timer.Reset()
	if _, ok := timer.Take(ids[0]); ok {
		t.Error("a timing survived Reset")
	}
}
