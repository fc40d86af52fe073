package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/webhook"
)

// DefaultSNSPath is where the SNS endpoint listens on the HTTP listener.
const DefaultSNSPath = "/v1/events/sns"

// feedbackOptions are what the feedback side is built from.
type feedbackOptions struct {
	Store      *Store
	Policy     *config.Policy // nil: the dev tenant
	Tenants    []*gateway.Tenant
	Deny       *limiter.Shared // told of the tenants a breaker stops
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// SNS bounds what the SNS endpoint reads (Settings: --sns-*).
	SNSBodyTimeout        time.Duration
	SNSMemBudget          int64
	SNSMaxBodiesPerSource int
	Webhooks              WebhookSettings
}

// feedbackSide is the running feedback side of serve: the breakers,
// suppression from events, attribution of SES events to messages, the SNS
// endpoint, the SQS consumer and the alerts.
type feedbackSide struct {
	guard    *guard.Guard
	remember *guard.Remember // its Sink is part of the sink chain
	alerts   *guard.Alerter
	hooks    *webhook.Dispatcher // the apps' webhooks
	dead     admin.Webhooks      // their dead letters
	status   statusStore         // the apps' status reads
	sns      http.Handler        // nil: no SNS endpoint
	snsPath  string
	cfgs     breakerConfigs
	windows  windowConfigs
	log      *slog.Logger
	api      apiBreakers // the tenants of the admin API (apitenants.go)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// guardStore is the store side the guard needs, both stores have it.
type guardStore interface {
	guard.Store
	guard.MessageStore
	guard.KeyStore
	webhook.Queue
	admin.Webhooks
	guard.StatusStore
	statusStore
}

// newFeedback wires the feedback side and starts its loops (until ctx
// ends or close). The breakers run always (admin resets, trip
// propagation); the event inputs only when configured.
func newFeedback(ctx context.Context, o feedbackOptions) (_ *feedbackSide, err error) {
	var gs guardStore
	if o.Store.Redis != nil {
		gs = o.Store.Redis
	} else if b, ok := o.Store.Store.(*boltstore.Store); ok {
		gs = b
	} else {
		return nil, errors.New("feedback: store has no breaker records")
	}
	var ev config.Events
	var alerts config.Alerts
	var account *breaker.Config
	if p := o.Policy; p != nil {
		ev, alerts, account = p.Events, p.Alerts, p.AccountConfig()
	}
	f := &feedbackSide{snsPath: ev.SNS.Path, log: o.Logger}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	f.cfgs.set(o.Tenants, o.Policy)
	f.windows.set(o.Tenants, o.Logger)
	if f.snsPath == "" {
		f.snsPath = DefaultSNSPath
	}
	webhook := cli.Env("SESGATE_ALERT_WEBHOOK", alerts.WebhookURL)
	if webhook != "" {
		if f.alerts, err = guard.NewAlerter(guard.AlerterOptions{URL: webhook, Logger: o.Logger, Registerer: o.Registerer}); err != nil {
			return nil, err
		}
	}
	f.dead, f.status = gs, gs
	if f.hooks, err = newWebhooks(gs, o); err != nil {
		return nil, err
	}
	if o.Policy != nil {
		f.api.file = o.Policy.Webhooks() // kept for the API tenants' (apitenants.go)
	}
	f.guard, err = guard.New(guard.Options{
		Store: gs, Tenants: f.cfgs.ids(), Account: account, Deny: o.Deny, Alerts: f.alerts, Notify: f.hooks,
		Status: gs, StatusTTL: ev.MessageTTL,
		Registerer: o.Registerer, Logger: o.Logger,
		Config: f.breakerConfig, Windows: f.window,
		SuppressionScope: ev.SuppressionScope, SuppressionTTL: ev.SuppressionTTL,
	})
	if err != nil {
		return nil, err
	}
	f.remember, err = guard.NewRemember(guard.RememberOptions{Store: gs, TTL: ev.MessageTTL, Logger: o.Logger, Guard: f.guard, Status: gs})
	if err != nil {
		return nil, err
	}
	consumer, err := f.eventInputs(ctx, ev, gs, o)
	if err != nil {
		return nil, err
	}

	cctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	if consumer != nil {
		f.wg.Go(func() {
			if err := consumer.Run(cctx); err != nil {
				o.Logger.Error("SQS consumer stopped", "err", err.Error())
			}
		})
	}
	loops := f.guard.Start(cctx)
	f.wg.Go(loops.Wait)
	f.wg.Go(func() { runWebhooks(cctx, f.hooks) })
	o.Logger.Info("feedback wired", "sns_path", f.snsPathIfOn(), "sqs", consumer != nil, "account_guard", account != nil,
		"alerts", webhook != "", "suppression_scope", f.guard.Scope())
	return f, nil
}

// eventInputs builds the SNS endpoint (with topics) and the SQS consumer
// (with a queue), both feeding the guard; the consumer is nil without a
// queue.
func (f *feedbackSide) eventInputs(ctx context.Context, ev config.Events, gs guardStore, o feedbackOptions) (*feedback.SQSConsumer, error) {
	in, err := feedback.NewIngester(feedback.IngesterOptions{Processor: f.guard, Tenants: knownTenants(f.breakerConfig), Lookup: f.remember})
	if err != nil {
		return nil, err
	}
	verifier, err := snsVerifier(ev.SNS.Regions, o.Logger)
	if err != nil {
		return nil, err
	}
	dedupe := guard.Deduper{Store: gs, TTL: 2 * feedback.DefaultDedupeTTL}
	if len(ev.SNS.TopicARNs) > 0 {
		var budget *gateway.MemBudget // nil: the handler's default
		if o.SNSMemBudget > 0 {
			if budget, err = gateway.NewMemBudget(o.SNSMemBudget); err != nil {
				return nil, fmt.Errorf("SNS: %w", err)
			}
		}
		f.sns, err = feedback.NewSNSHandler(feedback.SNSOptions{
			TopicARNs: ev.SNS.TopicARNs, Regions: ev.SNS.Regions, Ingester: in, Verifier: verifier, Dedupe: dedupe,
			Logger: o.Logger, Registerer: o.Registerer,
			BodyTimeout: o.SNSBodyTimeout, Budget: budget, MaxBodiesPerSource: o.SNSMaxBodiesPerSource,
		})
		if err != nil {
			return nil, err
		}
	}
	if ev.SQS.QueueURL == "" {
		return nil, nil
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("SQS: load AWS configuration: %w", err)
	}
	return feedback.NewSQSConsumer(feedback.SQSOptions{
		Client: sqs.NewFromConfig(awsCfg), QueueURL: ev.SQS.QueueURL, Ingester: in, TopicARNs: ev.SNS.TopicARNs, Verifier: verifier,
		AcceptRaw: ev.SQS.Raw, Dedupe: dedupe, Logger: o.Logger, Registerer: o.Registerer,
	})
}

func (f *feedbackSide) snsPathIfOn() string {
	if f.sns == nil {
		return ""
	}
	return f.snsPath
}

// handler mounts the SNS endpoint beside the HTTP API.
func (f *feedbackSide) handler(api http.Handler) http.Handler {
	if f.sns == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == f.snsPath {
			f.sns.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// breakers is the admin backend of the tenants' breakers.
func (f *feedbackSide) breakers() admin.Breakers { return f.guard }

// reload applies a new policy's tenants and breaker settings.
func (f *feedbackSide) reload(p *config.Policy, tenants []*gateway.Tenant) {
	f.cfgs.set(tenants, p)
	f.windows.set(tenants, f.log)
	f.api.mu.Lock()
	f.api.file = p.Webhooks()
	f.api.primed = false // the next apply sets the whole lists again
	f.api.mu.Unlock()
	if src := f.api.src.Load(); src != nil {
		f.apiTenantsApplied(*src) // the file's webhooks with the API tenants'
	} else {
		f.hooks.SetEndpoints(f.api.file)
		f.guard.SetTenants(f.cfgs.ids())
	}
}

// breakerConfig is the breaker settings of a file tenant, else of an API
// tenant.
func (f *feedbackSide) breakerConfig(id string) (breaker.Config, bool) {
	if c, ok := f.cfgs.get(id); ok {
		return c, ok
	}
	return f.api.get(id)
}

// close stops the loops, writes the queued attribution records and stops
// the alerts.
func (f *feedbackSide) close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	if f.remember != nil {
		f.remember.Close()
	}
	if f.alerts != nil {
		f.alerts.Close()
	}
}

// breakerConfigs are the tenants' breaker settings, swapped whole on a
// policy reload; it is also the Ingester's set of known tenants.
type breakerConfigs struct {
	m atomic.Pointer[map[string]breaker.Config]
}

// set builds the configs: defaults for every tenant, the policy's own
// settings where it has them.
func (c *breakerConfigs) set(tenants []*gateway.Tenant, p *config.Policy) {
	m := make(map[string]breaker.Config, len(tenants))
	for _, t := range tenants {
		m[t.ID] = breaker.TenantDefaults()
	}
	if p != nil {
		for i := range p.Tenants {
			m[p.Tenants[i].ID] = p.Tenants[i].BreakerConfig()
		}
	}
	c.m.Store(&m)
}

func (c *breakerConfigs) get(id string) (breaker.Config, bool) {
	cfg, ok := (*c.m.Load())[id]
	return cfg, ok
}

func (c *breakerConfigs) ids() []string { return slices.Collect(maps.Keys(*c.m.Load())) }

// knownTenants is the Ingester's set of known tenants: those with breaker
// settings (the file's and the API's).
type knownTenants func(string) (breaker.Config, bool)

// KnownTenant implements feedback.TenantSet.
func (k knownTenants) KnownTenant(id string) bool { _, ok := k(id); return ok }

// snsVerifier is the strict verifier, or, with SESGATE_SNS_TRUST_CERT, one
// whose fetcher answers every certificate URL that passed the URL checks
// with that PEM file's certificate (local testing with sesgate ses-server).
func snsVerifier(regions []string, log *slog.Logger) (*feedback.Verifier, error) {
	path := os.Getenv("SESGATE_SNS_TRUST_CERT")
	if path == "" {
		return feedback.NewVerifier(feedback.VerifierOptions{Regions: regions}), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("SESGATE_SNS_TRUST_CERT: %w", err)
	}
	cert, err := feedback.ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("SESGATE_SNS_TRUST_CERT: %w", err)
	}
	log.Warn("SNS signatures are checked against a local certificate (SESGATE_SNS_TRUST_CERT): for testing only", "file", path)
	return feedback.NewVerifier(feedback.VerifierOptions{Regions: regions, Fetcher: fixedCert{cert}}), nil
}

// fixedCert is the certificate fetcher of SESGATE_SNS_TRUST_CERT.
type fixedCert struct{ c *x509.Certificate }

func (f fixedCert) FetchCert(context.Context, string) (*x509.Certificate, error) { return f.c, nil }
