package ses

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
)

// ClientOptions configure NewClient. The zero value uses the AWS default
// credential chain, AWS_REGION (or the shared config's region) and the
// regional SES endpoint.
type ClientOptions struct {
	// Region overrides AWS_REGION and the shared config.
	Region string
	// Endpoint overrides the SES endpoint (BaseEndpoint), for example a
	// sestest server. Without it the SDK also honours
	// AWS_ENDPOINT_URL_SESV2 and AWS_ENDPOINT_URL.
	Endpoint string
	// Credentials replaces the default chain (environment, shared profile,
	// web identity / IRSA, EKS pod identity, container and instance role).
	Credentials aws.CredentialsProvider
	// HTTPClient replaces the SDK's HTTP client; the default keeps up to
	// MaxIdleConns idle connections to SES.
	HTTPClient aws.HTTPClient
	// MaxAttempts bounds attempts per call under the sink's retry policy
	// (default 3, at most 5).
	MaxAttempts int
}

// MaxIdleConns is the idle connection pool of the default HTTP client, sized
// for thousands of sends per second.
const MaxIdleConns = 256

// NewClient loads the AWS configuration and returns an SES v2 client whose
// default retryer is the sink's retry policy. Credentials are resolved
// lazily, at the first call.
func NewClient(ctx context.Context, opts ClientOptions) (*sesv2.Client, error) {
	attempts, err := maxAttempts(opts.MaxAttempts)
	if err != nil {
		return nil, err
	}
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return newRetryer(attempts) }),
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.HTTPClient == nil {
		// A buildable client, so AWS_CA_BUNDLE still applies.
		load = append(load, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = MaxIdleConns
			t.MaxIdleConnsPerHost = MaxIdleConns
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("ses: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("ses: no AWS region: set AWS_REGION or the region option")
	}
	return sesv2.NewFromConfig(cfg, func(o *sesv2.Options) {
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient // as given: AWS_CA_BUNDLE is its owner's business
		}
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	}), nil
}

func maxAttempts(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultMaxAttempts, nil
	case n < 0 || n > MaxMaxAttempts:
		return 0, fmt.Errorf("ses: max attempts %d outside 1..%d", n, MaxMaxAttempts)
	}
	return n, nil
}
