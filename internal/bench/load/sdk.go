package load

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
)

// SDKOptions configure the baseline: SES v2 SendEmail (Raw) straight to an
// SES endpoint with the AWS SDK, no gateway.
type SDKOptions struct {
	Endpoint    string // base URL, e.g. the sestest server's
	Region      string
	Credentials aws.CredentialsProvider
	Message     Message
	// Conns is the idle connection pool, normally the worker count.
	Conns int
}

// SDK makes senders that share one SES client.
type SDK struct {
	client *sesv2.Client
	inputs []*sesv2.SendEmailInput
	msg    Message
}

// NewSDK makes the client and the requests. Like the gateway's own client
// it keeps a large idle pool, and it does not retry, so every figure is one
// SendEmail call.
func NewSDK(opts SDKOptions) (*SDK, error) {
	if opts.Endpoint == "" || opts.Region == "" || opts.Credentials == nil {
		return nil, errors.New("load: SDK endpoint, region and credentials required")
	}
	conns := max(opts.Conns, 1)
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = max(conns, 256)
		t.MaxIdleConnsPerHost = max(conns, 256)
		t.ResponseHeaderTimeout = time.Minute
	})
	client := sesv2.New(sesv2.Options{
		Region: opts.Region, BaseEndpoint: aws.String(opts.Endpoint),
		Credentials: opts.Credentials, Retryer: aws.NopRetryer{}, HTTPClient: hc,
	})
	m := opts.Message.withDefaults()
	raws := m.raw()
	inputs := make([]*sesv2.SendEmailInput, len(raws))
	for i, raw := range raws {
		inputs[i] = &sesv2.SendEmailInput{
			FromEmailAddress: aws.String(m.From),
			Destination:      &types.Destination{ToAddresses: []string{m.rcpt(int64(i))}},
			Content:          &types.EmailContent{Raw: &types.RawMessage{Data: raw}},
		}
	}
	return &SDK{client: client, inputs: inputs, msg: m}, nil
}

// NewSender returns a sender; all of them share the client.
func (s *SDK) NewSender(int) (Sender, error) { return sdkSender{s}, nil }

type sdkSender struct{ s *SDK }

func (sdkSender) Close() error { return nil }

func (c sdkSender) Send(ctx context.Context, seq int64) Outcome {
	in := c.s.inputs[seq%int64(len(c.s.inputs))]
	if c.s.msg.Mix != nil {
		cp := *in
		cp.Destination = &types.Destination{ToAddresses: []string{c.s.msg.Mix.Recipient(seq)}}
		in = &cp
	}
	out, err := c.s.client.SendEmail(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return Outcome{Code: ae.ErrorCode(), Err: err}
		}
		return Outcome{Code: CodeError, Err: err}
	}
	return Outcome{Code: "200", SESID: aws.ToString(out.MessageId)}
}
