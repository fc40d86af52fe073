package main

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

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

// DefaultSNSPath is where the SNS endpoint listens on the HTTP listener.
const DefaultSNSPath = "/v1/events/sns"

// feedbackDeps are what the feedback wiring takes from serve.
type feedbackDeps struct {
	log     *slog.Logger
	st      *openedStore
	policy  *config.Policy // nil: the dev tenant
	tenants []*gateway.Tenant
	lim     *limiter.Shared
	sink    *gateway.Sink // wrapped to remember SES MessageIds
	reg     prometheus.Registerer
}

// feedbackRuntime is the running feedback side of serve.
type feedbackRuntime struct {
	guard    *guard.Guard
	remember *guard.Remember
	alerts   *guard.Alerter
	sns      http.Handler // nil: no SNS endpoint
	snsPath  string
	cfgs     breakerConfigs
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// guardStore is the store side the guard needs, both stores have it.
type guardStore interface {
	guard.Store
	guard.MessageStore
	guard.KeyStore
}

// startFeedback wires the breakers, suppression from events, attribution,
// the SNS endpoint, the SQS consumer and the alerts. The breakers run
// always (admin resets, trip propagation); the event inputs only when
// configured.
func startFeedback(ctx context.Context, d feedbackDeps) (*feedbackRuntime, error) {
	var gs guardStore
	if d.st.redis != nil {
		gs = d.st.redis
	} else if b, ok := d.st.Store.(*boltstore.Store); ok {
		gs = b
	} else {
		return nil, errors.New("feedback: store has no breaker records")
	}
	var ev config.Events
	var alerts config.Alerts
	var account *breaker.Config
	if p := d.policy; p != nil {
		ev, alerts, account = p.Events, p.Alerts, p.AccountConfig()
	}
	rt := &feedbackRuntime{snsPath: ev.SNS.Path}
	rt.cfgs.set(d.tenants, d.policy)
	if rt.snsPath == "" {
		rt.snsPath = DefaultSNSPath
	}
	webhook := env("SESGATE_ALERT_WEBHOOK", alerts.WebhookURL)
	if webhook != "" {
		a, err := guard.NewAlerter(guard.AlerterOptions{URL: webhook, Logger: d.log, Registerer: d.reg})
		if err != nil {
			return nil, err
		}
		rt.alerts = a
	}
	g, err := guard.New(guard.Options{
		Store: gs, Tenants: rt.cfgs.ids(), Account: account, Deny: d.lim, Alerts: rt.alerts, Registerer: d.reg, Logger: d.log,
		Config:           rt.cfgs.get,
		SuppressionScope: ev.SuppressionScope, SuppressionTTL: ev.SuppressionTTL,
	})
	if err != nil {
		rt.close()
		return nil, err
	}
	rt.guard = g
	rem, err := guard.NewRemember(guard.RememberOptions{Store: gs, TTL: ev.MessageTTL, Logger: d.log, Guard: g})
	if err != nil {
		rt.close()
		return nil, err
	}
	rt.remember = rem
	*d.sink = rem.Sink(*d.sink)

	in, err := feedback.NewIngester(feedback.IngesterOptions{Processor: g, Tenants: &rt.cfgs, Lookup: rem})
	if err != nil {
		rt.close()
		return nil, err
	}
	verifier, err := snsVerifier(ev.SNS.Regions, d.log)
	if err != nil {
		rt.close()
		return nil, err
	}
	dedupe := guard.Deduper{Store: gs, TTL: 2 * feedback.DefaultDedupeTTL}
	if len(ev.SNS.TopicARNs) > 0 {
		h, err := feedback.NewSNSHandler(feedback.SNSOptions{
			TopicARNs: ev.SNS.TopicARNs, Regions: ev.SNS.Regions, Ingester: in, Verifier: verifier, Dedupe: dedupe,
			Logger: d.log, Registerer: d.reg,
		})
		if err != nil {
			rt.close()
			return nil, err
		}
		rt.sns = h
	}
	cctx, cancel := context.WithCancel(ctx)
	rt.cancel = cancel
	if q := ev.SQS.QueueURL; q != "" {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			rt.close()
			return nil, fmt.Errorf("SQS: load AWS configuration: %w", err)
		}
		c, err := feedback.NewSQSConsumer(feedback.SQSOptions{
			Client: sqs.NewFromConfig(awsCfg), QueueURL: q, Ingester: in, TopicARNs: ev.SNS.TopicARNs, Verifier: verifier,
			AcceptRaw: ev.SQS.Raw, Dedupe: dedupe, Logger: d.log, Registerer: d.reg,
		})
		if err != nil {
			rt.close()
			return nil, err
		}
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			if err := c.Run(cctx); err != nil {
				d.log.Error("SQS consumer stopped", "err", err.Error())
			}
		}()
	}
	wg := g.Start(cctx)
	rt.wg.Add(1)
	go func() { defer rt.wg.Done(); wg.Wait() }()
	d.log.Info("feedback wired", "sns_path", rt.snsPathIfOn(), "sqs", ev.SQS.QueueURL != "", "account_guard", account != nil,
		"alerts", webhook != "", "suppression_scope", g.Scope())
	return rt, nil
}

func (rt *feedbackRuntime) snsPathIfOn() string {
	if rt.sns == nil {
		return ""
	}
	return rt.snsPath
}

// handler mounts the SNS endpoint beside the HTTP API.
func (rt *feedbackRuntime) handler(api http.Handler) http.Handler {
	if rt == nil || rt.sns == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == rt.snsPath {
			rt.sns.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// Breakers is the admin backend of the tenants' breakers.
func (rt *feedbackRuntime) Breakers() admin.Breakers { return rt.guard }

// close stops the loops, writes the queued attribution records and stops
// the alerts.
func (rt *feedbackRuntime) close() {
	if rt == nil {
		return
	}
	if rt.cancel != nil {
		rt.cancel()
	}
	rt.wg.Wait()
	if rt.remember != nil {
		rt.remember.Close()
	}
	if rt.alerts != nil {
		rt.alerts.Close()
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

// KnownTenant implements feedback.TenantSet.
func (c *breakerConfigs) KnownTenant(id string) bool { _, ok := c.get(id); return ok }

// reload applies a new policy's tenants and breaker settings.
func (rt *feedbackRuntime) reload(p *config.Policy, tenants []*gateway.Tenant) {
	rt.cfgs.set(tenants, p)
	rt.guard.SetTenants(rt.cfgs.ids())
}

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

type fixedCert struct{ c *x509.Certificate }

func (f fixedCert) FetchCert(context.Context, string) (*x509.Certificate, error) { return f.c, nil }
