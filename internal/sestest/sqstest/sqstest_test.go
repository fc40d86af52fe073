package sqstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestWithRealSDK(t *testing.T) {
	srv, err := Start(Options{Visibility: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := sqs.New(sqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
	})
	ctx := context.Background()
	q := srv.QueueURL("events")

	url, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("events")})
	if err != nil || aws.ToString(url.QueueUrl) != q {
		t.Fatalf("GetQueueUrl = %v, %v", url, err)
	}
	// SendMessage: the SDK checks MD5OfMessageBody.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String("hello")}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		wait int32
		want int
	}{
		{"receive", 0, 1},
		{"invisible while in flight", 0, 0},
		{"long poll sees it again after the visibility timeout", 5, 1},
	}
	var receipt *string
	for _, st := range steps {
		start := time.Now()
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), MaxNumberOfMessages: 10, WaitTimeSeconds: st.wait})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(out.Messages) != st.want {
			t.Fatalf("%s: %d messages; want %d", st.name, len(out.Messages), st.want)
		}
		if st.want == 1 {
			if aws.ToString(out.Messages[0].Body) != "hello" {
				t.Fatalf("body %q", aws.ToString(out.Messages[0].Body))
			}
			receipt = out.Messages[0].ReceiptHandle
		}
		if st.wait > 0 && time.Since(start) < 500*time.Millisecond {
			t.Fatalf("%s: long poll returned after %v", st.name, time.Since(start))
		}
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q), ReceiptHandle: aws.String("stale")}); err == nil {
		t.Fatal("bad receipt handle accepted")
	} else if bad := new(types.ReceiptHandleIsInvalid); !errors.As(err, &bad) {
		t.Fatalf("bad receipt: %v; want ReceiptHandleIsInvalid", err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q), ReceiptHandle: receipt}); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats("events"); st.Queued != 0 || st.Deleted != 1 || st.Received != 2 || st.Polls != 3 {
		t.Fatalf("stats %+v", st)
	}
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.QueueURL("nope"))})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Fatalf("unknown queue: %v; want QueueDoesNotExist", err)
	}
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), MaxNumberOfMessages: 11})
	if err == nil {
		t.Fatal("11 messages per receive accepted")
	}
}

func TestCloseEndsLongPoll(t *testing.T) {
	srv, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := sqs.New(sqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
	})
	done := make(chan struct{})
	go func() {
		_, _ = c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.QueueURL("events")), WaitTimeSeconds: 20})
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	srv.Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("long poll survived Close")
	}
}
