package ses

import (
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
)

// Retry policy bounds.
const (
	DefaultMaxAttempts = 3
	MaxMaxAttempts     = 5
	retryBaseDelay     = 200 * time.Millisecond // first retry waits 100-200 ms
	retryMaxDelay      = 2 * time.Second
	maxRetryMargin     = time.Second // time an attempt needs after a backoff
)

// newRetryer returns the SDK retryer of the sink: the standard one (with its
// retry token bucket, so a throttled account does not multiply its load),
// but retrying only errors after which SES certainly did not accept the
// message. See notAccepted.
func newRetryer(maxAttempts int) *retry.Standard {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.Retryables = []retry.IsErrorRetryable{
			retry.NoRetryCanceledError{},
			retry.IsErrorRetryableFunc(notAccepted),
		}
		o.Backoff = retry.BackoffDelayerFunc(backoff)
	})
}

// notAccepted reports whether err proves SES did not take the message, so
// that sending again cannot duplicate it.
func notAccepted(err error) aws.Ternary {
	// The SDK marks a signature refused because of clock skew as retryable
	// (with the skew corrected); SES refused it before looking at it.
	var skew interface{ RetryableError() bool }
	if errors.As(err, &skew) && skew.RetryableError() {
		return aws.TrueTernary
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case codeOf(&types.TooManyRequestsException{}), codeOf(&types.LimitExceededException{}):
			// Retrying a spent daily quota within seconds is pointless.
			daily := strings.Contains(strings.ToLower(ae.ErrorMessage()), "daily message quota exceeded")
			return aws.BoolTernary(!daily)
		}
		return aws.FalseTernary
	}
	// A connection that could not be opened carried no request.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return aws.TrueTernary
	}
	// Anything else (5xx, reset, timeout after sending) may have been sent.
	return aws.FalseTernary
}

// backoff waits a jittered 100-200 ms, then 200-400 ms, and so on, capped.
func backoff(attempt int, _ error) (time.Duration, error) {
	d := retryBaseDelay << min(max(attempt-1, 0), 8)
	d = min(d, retryMaxDelay)
	return d/2 + rand.N(d/2+1), nil
}

// deadlineRetryer refuses a retry that would start too close to the call's
// deadline: an attempt cut short by the deadline after its request was sent
// is ambiguous, while giving up now keeps SES's real answer.
type deadlineRetryer struct {
	aws.RetryerV2
	deadline time.Time
	margin   time.Duration
}

func (r *deadlineRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr != nil {
		return 0, derr
	}
	if time.Until(r.deadline) < d+r.margin {
		return 0, &noTimeError{err: err}
	}
	return d, nil
}

// noTimeError ends the retries; it wraps the last attempt's error so the
// caller still sees SES's answer.
type noTimeError struct{ err error }

func (e *noTimeError) Error() string { return "no time left to retry: " + e.err.Error() }
func (e *noTimeError) Unwrap() error { return e.err }
