// Package server wires `sesgate serve`: the store, the metrics registry,
// the limiter, the sink chain (message-id memory, account pacing, SES or
// the outbox), the feedback side (breakers, SES events, alerts), the
// sending front ends (SMTP, SMTPS, HTTP), the admin side (API, dashboard,
// /metrics, the watch of the store's admin state), the batched token
// last-used writes, the policy reload, the refusal log throttle shared by
// the front ends and the pipeline (--refusal-log-rate), and the drain at
// shutdown.
//
// One gateway.MemBudget (--mem-budget) is built here and given to every
// SMTP server and the HTTP API: message bytes in memory are bounded for the
// process, not per front end. The HTTP listener (API and SNS endpoint) is
// wrapped in httpapi.LimitListener.
//
// Each piece is built by its own constructor; Start builds them in order
// and, when one fails, closes those already built in one step. Run is
// Start, then the wait for the context or a failed listener, then the
// drain: readiness false, the sending listeners drained within the
// shutdown timeout, the background loops stopped, the admin listener last.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/logthrottle"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// Options configure a Server. Settings and Logger are required.
type Options struct {
	Settings *Settings
	Logger   *slog.Logger
	Banner   io.Writer // where the start banner is printed; nil: nowhere
}

// Server is a started gateway.
type Server struct {
	s       *Settings
	log     *slog.Logger
	ready   atomic.Bool
	front   *frontEnds
	admin   *adminSide
	loops   *loops
	closers []func() // run in reverse by close
}

// Run starts the gateway and serves until ctx ends (then drains) or a
// listener fails.
func Run(ctx context.Context, o Options) error {
	srv, err := Start(ctx, o)
	if err != nil {
		return err
	}
	defer srv.close()
	select {
	case <-ctx.Done():
	case err := <-srv.front.errc:
		srv.log.Error("listener failed", "err", err)
		return err
	}
	return srv.shutdown()
}

// Start builds and starts every part of the gateway. The parts that run
// until shutdown (the feedback loops) take ctx; the others stop at
// shutdown.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	s, log := o.Settings, o.Logger
	// The admin feed shows the warnings and errors logged (degraded store,
	// SES errors, the account guard's actions): tee them into its ring.
	events := admin.NewEventLog(0)
	log = slog.New(slog.NewMultiHandler(log.Handler(), events))
	srv := &Server{s: s, log: log}
	defer func() {
		if err != nil {
			srv.close()
		}
	}()
	stopPprof, err := startPprof(log) // SESGATE_PPROF_ADDR, off by default
	if err != nil {
		return nil, err
	}
	srv.onClose(stopPprof)
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	pol, err := loadPolicy(s.ConfigPath, s.DataDir)
	if err != nil {
		return nil, err
	}
	awsKeys, err := awsKeysOf(s, pol)
	if err != nil {
		return nil, err
	}
	if pol.file == nil && awsKeys != nil {
		e, path, err := devAWSKey(s.DataDir, awsKeys, pol.tenants[0])
		if err != nil {
			return nil, err
		}
		pol.entries, pol.devAWSPath = append(pol.entries, e), path
	}

	st, err := OpenStoreWith(ctx, s.DataDir, pol.file, log, s.StoreSettings, s.ViewSettings.viewOptions())
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	srv.onClose(func() { st.Close() })
	ops, ok := st.Store.(storeadmin.Store)
	if !ok {
		return nil, errors.New("the store does not keep admin state")
	}
	var maxLabels int
	if pol.file != nil {
		maxLabels = pol.file.Metrics.MaxTenantLabels
	}
	m, err := newMetrics(maxLabels) // before the rest: every part registers on it
	if err != nil {
		return nil, err
	}
	if st.Redis != nil {
		if err := redisstore.Instrument(st.Redis.Client(), m.reg); err != nil {
			return nil, err
		}
		if err := st.Redis.RegisterViewMetrics(m.reg); err != nil {
			return nil, err
		}
	}
	sc := pol.store()
	lim, err := limiter.NewShared(limiter.SharedOptions{
		Store: st, Logger: log, CallTimeout: sc.CallTimeout, DegradedWindow: sc.DegradedWindow,
		DegradedFraction: sc.DegradedFraction, Replicas: sc.Replicas, MaxCache: sc.MaxCache,
		Registerer: m.reg,
	})
	if err != nil {
		return nil, err
	}

	do := destOptions{Kind: s.Sink, DataDir: s.DataDir, Observe: m.sesObserved, Logger: log}
	if pol.file != nil {
		do.SES = pol.file.SES
	}
	dst, err := newDest(ctx, do)
	if err != nil {
		return nil, err
	}
	acct, err := newAccount(dst.rate, sc.Replicas, st, log)
	if err != nil {
		return nil, err
	}
	fb, err := newFeedback(ctx, feedbackOptions{Store: st, Policy: pol.file, Tenants: pol.tenants, Deny: lim, Registerer: m.reg, Logger: log,
		SNSBodyTimeout: s.SNSBodyTimeout, SNSMemBudget: s.SNSMemBudget, SNSMaxBodiesPerSource: s.SNSMaxBodiesPerSource,
		Webhooks: s.Webhook})
	if err != nil {
		return nil, err
	}
	srv.onClose(fb.close)
	// The sink chain, outermost first: the message-id memory (attributes
	// SES events to tenants), the account's send-rate pacing, then SES or
	// the outbox.
	sink := fb.remember.Sink(paced(dst.sink, acct))
	dash, err := newDashboard(st.Store, s.ReplicaName, events, log)
	if err != nil {
		return nil, err
	}
	srv.onClose(dash.close)

	registry := auth.NewRegistry(auth.RegistryOptions{Entries: pol.entries, Logger: log, AWSKeys: awsKeys})
	used := newLastUsed(ops, log)
	// One throttle for the refusal lines of every front end and of Submit.
	refusals := logthrottle.New(logthrottle.Options{Rate: rate.Limit(s.RefusalLogRate)})
	pipe := gateway.NewPipeline(gateway.Options{
		Auth: used.authenticator(registry), Limiter: lim, Sink: sink, Logger: log, Observe: fb.observed(dash.observe(m.observed)),
		Refusals: refusals,
	})
	region := s.SESAPIRegion
	if region == "" {
		region = dst.region
	}
	sesAPI := &sesAPIOptions{Pipeline: pipe, Keys: registry, Usage: storeUsage{st: st, timeout: time.Second}, Region: region,
		PerTenant: s.HTTPMaxRequestsPerTenant, Logger: log}
	// The apps' read-only status routes, then the SNS endpoint, then the API.
	status := &statusAPI{auth: pipe, st: fb.status, log: log, timeout: statusCallTimeout}
	mount := func(api http.Handler) http.Handler { return status.mount(fb.handler(api)) }
	idem, _ := st.Store.(gateway.IdempotencyStore) // both stores are
	if srv.front, err = newFrontEnds(frontOptions{Settings: s, Pipeline: pipe, Mount: mount, Ready: srv.ready.Load, Logger: log, Registerer: m.reg,
		Idempotency: idem, SESAPI: sesAPI}); err != nil {
		return nil, err
	}
	srv.onClose(srv.front.close)
	srv.admin, err = newAdmin(ctx, adminOptions{
		Addr: s.AdminAddr, DataDir: s.DataDir, Store: ops, Breakers: fb.breakers(), Webhooks: fb.dead, Policy: pol,
		Registry: registry, Limiter: lim, Metrics: m.reg, Logger: log, AWSKeys: awsKeys, OnApply: fb.apiTenantsApplied,
		Events: events, SESQuota: dst.quota, Dashboard: dash.store,
	})
	if err != nil {
		return nil, err
	}
	srv.onClose(srv.admin.close)
	rl := newReloader(reloaderOptions{Path: s.ConfigPath, Poll: s.ReloadPoll, Admin: srv.admin, Reloads: m.reloads, OnReload: fb.reload,
		Check: func(p *config.Policy) error { return checkAWSKeys(p, awsKeys) }, Logger: log})
	srv.loops = startLoops(ctx, srv.admin.watch, rl.run, used.run,
		func(ctx context.Context) { refusals.Run(ctx, logthrottle.DefaultFlushEvery) })
	srv.onClose(srv.loops.stop)
	srv.ready.Store(true)

	if o.Banner != nil {
		banner(o.Banner, bannerInfo{s: s, addrs: srv.front.addrs(), sink: dst.desc, devToken: pol.devTokenPath, devAWS: pol.devAWSPath, sesRegion: region,
			tenants: len(pol.tenants), adminAddr: srv.admin.addr, adminToken: srv.admin.tokenPath})
	}
	log.Debug("metrics registered", "names", m.reg.Names())
	log.Info("sesgate started", "sink", s.Sink, "tenants", len(pol.tenants), "store", st.Desc)
	return srv, nil
}

func (srv *Server) onClose(f func()) { srv.closers = append(srv.closers, f) }

// close stops what Start built, last built first.
func (srv *Server) close() {
	for _, f := range slices.Backward(srv.closers) {
		f()
	}
	srv.closers = nil
}

// shutdown drains: readiness first, then, after the shutdown delay, the
// sending listeners within the shutdown timeout, the background loops, and
// the admin listener last.
func (srv *Server) shutdown() error {
	s := srv.s
	srv.ready.Store(false)
	srv.log.Info("shutting down", "delay", s.ShutdownDelay, "timeout", s.ShutdownTimeout)
	time.Sleep(s.ShutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.front.shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	srv.loops.stop()
	if err := srv.admin.shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		srv.log.Error("shutdown incomplete", "err", err)
		return err
	}
	srv.log.Info("stopped")
	return nil
}

// loops are the background loops that stop at shutdown, after the sending
// listeners drained (not when the start context ends): the watch of the
// store's admin state, the policy reload, the last-used writer and the
// flush of the refusal log throttle (which writes what it holds at stop).
type loops struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoops(ctx context.Context, runs ...func(context.Context)) *loops {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &loops{cancel: cancel}
	for _, run := range runs {
		l.wg.Go(func() { run(ctx) })
	}
	return l
}

// stop ends the loops and waits for them (the last-used writer flushes).
func (l *loops) stop() {
	l.cancel()
	l.wg.Wait()
}
