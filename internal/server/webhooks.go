package server

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/limiter/webhook"
)

// WebhookSettings tune the delivery of the apps' webhooks (policy
// tenants[].webhooks).
type WebhookSettings struct {
	Timeout     time.Duration // one delivery
	Concurrency int           // deliveries in flight per webhook and replica
	RetryFor    time.Duration // then the event is dead-lettered
	Backoff     time.Duration // the first retry's delay, doubled each time
	MaxBacklog  int           // events queued per tenant
	// AllowNetworks every webhook may reach although they are loopback,
	// private, link-local, CGNAT or metadata networks.
	AllowNetworks []netip.Prefix
}

// webhookFlags adds the --webhook-* flags.
func webhookFlags(fs *flag.FlagSet, w *WebhookSettings) error {
	env := cli.Env
	for _, d := range []struct {
		v          *time.Duration
		name, help string
		def        time.Duration
	}{
		{&w.Timeout, "webhook-timeout", "bound on one app webhook delivery (connect, TLS, answer)", webhook.DefaultTimeout},
		{&w.RetryFor, "webhook-retry-for", "how long an app webhook event is retried before it goes to the dead-letter list", webhook.DefaultRetryFor},
		{&w.Backoff, "webhook-backoff", "first retry delay of an app webhook, doubled each retry (with jitter) up to 1h", webhook.DefaultBackoff},
	} {
		name := "SESGATE_" + strings.ToUpper(strings.ReplaceAll(d.name, "-", "_"))
		def, err := time.ParseDuration(env(name, d.def.String()))
		if err != nil {
			return cli.UsageError{Msg: name + ": " + err.Error()}
		}
		fs.DurationVar(d.v, d.name, def, d.help+" (env "+name+")")
	}
	if err := intFlags(fs, []intFlag{
		{&w.Concurrency, "webhook-concurrency", "app webhook deliveries in flight per webhook and replica", webhook.DefaultConcurrency},
		{&w.MaxBacklog, "webhook-max-backlog", "app webhook events queued per tenant; more are dropped, counted and logged", webhook.DefaultMaxBacklog},
	}); err != nil {
		return err
	}
	parse := func(v string) error {
		w.AllowNetworks = nil
		for _, c := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR", c)
			}
			w.AllowNetworks = append(w.AllowNetworks, p.Masked())
		}
		return nil
	}
	if err := parse(env("SESGATE_WEBHOOK_ALLOW_NETWORKS", "")); err != nil {
		return cli.UsageError{Msg: "SESGATE_WEBHOOK_ALLOW_NETWORKS: " + err.Error()}
	}
	fs.Func("webhook-allow-networks", "comma-separated CIDRs every app webhook may reach although loopback, private, link-local, CGNAT or metadata (default none) (env SESGATE_WEBHOOK_ALLOW_NETWORKS)", parse)
	return nil
}

// check validates the settings after parsing.
func (w *WebhookSettings) check() error {
	switch {
	case w.Timeout <= 0 || w.Timeout > 5*time.Minute:
		return cli.UsageError{Msg: "--webhook-timeout must be above 0 and at most 5m"}
	case w.RetryFor <= 0 || w.RetryFor > 7*24*time.Hour:
		return cli.UsageError{Msg: "--webhook-retry-for must be above 0 and at most 168h"}
	case w.Backoff <= 0 || w.Backoff > time.Hour:
		return cli.UsageError{Msg: "--webhook-backoff must be above 0 and at most 1h"}
	case w.Concurrency < 1 || w.Concurrency > 64:
		return cli.UsageError{Msg: "--webhook-concurrency must be 1 to 64"}
	case w.MaxBacklog < 1 || w.MaxBacklog > 10_000_000:
		return cli.UsageError{Msg: "--webhook-max-backlog must be 1 to 10000000"}
	}
	return nil
}

// newWebhooks builds the dispatcher of the apps' webhooks on the store's
// queue; run delivers until ctx ends.
func newWebhooks(q webhook.Queue, o feedbackOptions) (*webhook.Dispatcher, error) {
	w := o.Webhooks
	d, err := webhook.New(webhook.Options{Store: q, Allow: w.AllowNetworks, Timeout: w.Timeout, Concurrency: w.Concurrency,
		RetryFor: w.RetryFor, Backoff: w.Backoff, MaxBacklog: w.MaxBacklog, Registerer: o.Registerer, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if o.Policy != nil {
		d.SetEndpoints(o.Policy.Webhooks())
	}
	return d, nil
}

// runWebhooks is the delivery loop.
func runWebhooks(ctx context.Context, d *webhook.Dispatcher) { d.Run(ctx) }

// observed wraps the pipeline's outcome hook: a message refused by the
// tenant's open breaker is told to its webhooks (refused_by_breaker, at
// most one per tenant per minute, queued in the background).
func (f *feedbackSide) observed(next func(string, *gateway.Error)) func(string, *gateway.Error) {
	return func(tenant string, err *gateway.Error) {
		next(tenant, err)
		if err != nil && err.Code == gateway.CodeBreakerOpen && tenant != "" {
			f.hooks.RefusedByBreaker(tenant)
		}
	}
}
