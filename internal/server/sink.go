package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/outbox"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
)

// OutboxDir is the local outbox under the data directory.
func OutboxDir(dataDir string) string { return filepath.Join(dataDir, "outbox") }

// destOptions are what the destination of the mail is built from.
type destOptions struct {
	Kind    string // "outbox" or "ses"
	DataDir string
	SES     config.SES
	Observe func(took time.Duration, errType string) // each SES call
	Logger  *slog.Logger
}

// dest is where accepted mail goes, the innermost sink of the chain.
type dest struct {
	sink gateway.Sink
	desc string  // for the banner
	rate float64 // the SES account's max send rate; 0: unknown or the outbox
	// quota is the account's quota as GetAccount answered at start; nil
	// when not asked (the outbox, or the rate set in the policy) or failed.
	quota *admin.SESQuota
	// region is the SES region (the outbox's: the policy's, else us-east-1).
	region string
}

// newDest opens the outbox or the SES client. Without ses.max_send_rate in
// the policy, the account's rate is asked of SES once (GetAccount).
func newDest(ctx context.Context, o destOptions) (dest, error) {
	if o.Kind == "outbox" {
		ob, err := outbox.New(OutboxDir(o.DataDir), nil)
		if err != nil {
			return dest{}, fmt.Errorf("outbox: %w", err)
		}
		region := o.SES.Region
		if region == "" {
			region = "us-east-1"
		}
		return dest{sink: ob, desc: "outbox " + ob.Dir() + " (mail is NOT sent to SES)", rate: o.SES.MaxSendRate, region: region}, nil
	}
	c := o.SES
	client, err := ses.NewClient(ctx, ses.ClientOptions{Region: c.Region, Endpoint: c.Endpoint, MaxAttempts: c.MaxAttempts})
	if err != nil {
		return dest{}, fmt.Errorf("SES client: %w", err)
	}
	sk, err := ses.New(ses.Options{Client: client, Logger: o.Logger, Timeout: c.Timeout, MaxAttempts: c.MaxAttempts, Observe: o.Observe})
	if err != nil {
		return dest{}, err
	}
	d := dest{sink: sk, desc: "Amazon SES (SES v2 SendEmail, region " + client.Options().Region + ")", rate: c.MaxSendRate, region: client.Options().Region}
	if d.rate == 0 {
		if d.quota, err = sesQuota(ctx, client); err != nil {
			d.quota = nil
			o.Logger.Warn("SES max send rate unknown; the account rate is left to SES", "err", err.Error())
		} else {
			d.rate = d.quota.MaxSendRate
		}
	}
	return d, nil
}

// sesQuota reads the account's send quota once from SES (its max send
// rate paces the sends; the dashboard shows the rest).
func sesQuota(ctx context.Context, c *sesv2.Client) (*admin.SESQuota, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := c.GetAccount(ctx, &sesv2.GetAccountInput{})
	if err != nil {
		return nil, err
	}
	q := out.SendQuota
	if q == nil || q.MaxSendRate <= 0 {
		return nil, errors.New("GetAccount returned no send quota")
	}
	return &admin.SESQuota{Max24HourSend: q.Max24HourSend, MaxSendRate: q.MaxSendRate, SentLast24Hours: q.SentLast24Hours,
		At: time.Now().UTC()}, nil
}

// newAccount returns the pacing of sends at the account's rate, shared
// among the replicas through Redis when the store is Redis; nil without a
// rate.
func newAccount(rate float64, replicas int, st *Store, log *slog.Logger) (*limiter.Account, error) {
	if rate <= 0 {
		return nil, nil
	}
	ao := limiter.AccountOptions{Rate: rate, Replicas: replicas, Logger: log}
	if st.Redis != nil {
		ao.Leaser = st.Redis
	}
	acct, err := limiter.NewAccount(ao)
	if err != nil {
		return nil, err
	}
	log.Info("account send rate shared", "rate", rate, "lease_batch", acct.Batch())
	return acct, nil
}

// paced wraps s in the account's pacing; s itself without one.
func paced(s gateway.Sink, acct *limiter.Account) gateway.Sink {
	if acct == nil {
		return s
	}
	return limiter.AccountSink{Sink: s, Account: acct}
}
