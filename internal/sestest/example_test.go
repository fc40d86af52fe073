package sestest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/sesgate/sesgate/internal/sestest"
)

// Point the real SDK at a local server, inject a throttle, then send.
func ExampleStart() {
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		panic(err)
	}
	defer stop()

	client := sesv2.New(sesv2.Options{
		Region:       sestest.DefaultRegion,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(sestest.DefaultAccessKeyID, sestest.DefaultSecretAccessKey, ""),
		Retryer:      aws.NopRetryer{},
	})
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String("app@example.com"),
		Destination:      &types.Destination{ToAddresses: []string{"user@example.net"}},
		Content: &types.EmailContent{Raw: &types.RawMessage{
			Data: []byte("From: app@example.com\r\nTo: user@example.net\r\nSubject: hi\r\n\r\nhello\r\n"),
		}},
	}

	srv.FailNext(1, sestest.Fault{Type: sestest.TooManyRequests})
	_, err = client.SendEmail(context.Background(), in)
	var throttled *types.TooManyRequestsException
	fmt.Println("throttled:", errors.As(err, &throttled))

	if _, err := client.SendEmail(context.Background(), in); err != nil {
		panic(err)
	}
	m := srv.Sent()[0]
	fmt.Println(m.From, m.Recipients(), srv.Requests(), srv.Accepted())
	// Output:
	// throttled: true
	// app@example.com [user@example.net] 2 1
}
