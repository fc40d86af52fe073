package limiter

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/gateway"
)

// Leaser grants tokens of the account-wide rate from shared state
// (redisstore.Store.Lease): up to want at once, or none and the wait.
type Leaser interface {
	Lease(ctx context.Context, rate float64, burst, want int) (granted int, retry time.Duration, err error)
}

// AccountOptions configure NewAccount. Rate is required.
type AccountOptions struct {
	// Rate is the SES account's max send rate, recipients per second.
	Rate float64
	// Leaser shares Rate among replicas; nil limits this process alone.
	Leaser Leaser
	// Replicas estimates the fleet size (default 1): the lease batch is
	// about 100 ms of the replica's share, and the fallback rate when the
	// Leaser fails is Rate / Replicas.
	Replicas int
	// MaxWait bounds how long a send waits for tokens (default 1 s).
	MaxWait time.Duration
	Logger  *slog.Logger
}

// Account spends the account's SES send rate. With a Leaser, every replica
// leases Batch tokens at a time from one Redis GCRA key ({g} tag), at most
// one lease call per Batch recipients, and spends them locally.
//
// Over-admission bound: the GCRA grants at most Rate*W + Burst tokens in
// any window of W seconds (Burst = max(Batch*Replicas, 50)), and replicas may
// still hold up to Batch leased tokens each from before the window, so the
// fleet sends at most Rate*W + Burst + Batch*Replicas recipients in W. With
// Batch ~ Rate*0.1/Replicas that is about 0.1 s of the account rate plus
// one burst; SES's own throttling (retried by the sink) is the backstop.
// When a lease call fails (Redis down), each replica falls back to a local
// bucket at Rate/Replicas.
type Account struct {
	rate     float64
	leaser   Leaser
	batch    int
	burst    int
	maxWait  time.Duration
	log      *slog.Logger
	fallback *rate.Limiter

	mu      sync.Mutex
	tokens  int
	waitTil time.Time // after a refused lease: no lease call before then
}

// NewAccount builds an Account.
func NewAccount(opts AccountOptions) (*Account, error) {
	if opts.Rate <= 0 {
		return nil, errors.New("limiter: account rate must be positive")
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Second
	}
	a := &Account{rate: opts.Rate, leaser: opts.Leaser, maxWait: opts.MaxWait, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.batch = max(1, int(math.Ceil(opts.Rate*0.1/float64(opts.Replicas))))
	a.burst = max(a.batch*opts.Replicas, gateway.DefaultMaxRecipients)
	share := opts.Rate / float64(opts.Replicas)
	a.fallback = rate.NewLimiter(rate.Limit(share), max(gateway.DefaultMaxRecipients, int(math.Ceil(share))))
	if opts.Leaser == nil {
		a.fallback = rate.NewLimiter(rate.Limit(opts.Rate), max(gateway.DefaultMaxRecipients, int(math.Ceil(opts.Rate))))
	}
	return a, nil
}

// Batch is the lease size.
func (a *Account) Batch() int { return a.batch }

// Take takes n tokens, waiting at most MaxWait (and ctx). Refusal is
// CodeUpstreamThrottled with a retry delay: SES would throttle the send.
func (a *Account) Take(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, a.maxWait)
	defer cancel()
	if a.leaser == nil {
		return a.waitFallback(ctx, n)
	}
	for {
		a.mu.Lock()
		if a.tokens >= n {
			a.tokens -= n
			a.mu.Unlock()
			return nil
		}
		if wait := time.Until(a.waitTil); wait > 0 {
			// Another caller was just refused: wait with it, not against Redis.
			a.mu.Unlock()
			if err := sleep(ctx, wait); err != nil {
				return throttled(wait)
			}
			continue
		}
		want := max(a.batch, n-a.tokens)
		got, retry, err := a.leaser.Lease(ctx, a.rate, a.burst, want)
		if err != nil {
			a.mu.Unlock()
			if ctx.Err() != nil {
				return throttled(a.maxWait)
			}
			a.log.Warn("account rate lease failed; local share of the rate applies", "err", err.Error())
			return a.waitFallback(ctx, n)
		}
		a.tokens += got
		if got == 0 {
			// Come back when a whole batch has accrued, so a saturated
			// fleet still leases in batches.
			a.waitTil = time.Now().Add(retry + time.Duration(float64(want-1)/a.rate*float64(time.Second)))
		}
		a.mu.Unlock()
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (a *Account) waitFallback(ctx context.Context, n int) error {
	if err := a.fallback.WaitN(ctx, n); err != nil {
		return throttled(time.Second)
	}
	return nil
}

func throttled(retry time.Duration) error {
	return &gateway.Error{Code: gateway.CodeUpstreamThrottled, Msg: "account send rate reached, try again later", RetryAfter: max(retry, time.Second)}
}

// AccountSink spends the account rate before each send.
type AccountSink struct {
	Sink    gateway.Sink
	Account *Account
}

var _ gateway.Sink = AccountSink{}

// Send takes one token per recipient, then sends.
func (s AccountSink) Send(ctx context.Context, env *gateway.Envelope) (string, error) {
	if err := s.Account.Take(ctx, len(env.Recipients)); err != nil {
		return "", err
	}
	return s.Sink.Send(ctx, env)
}
