package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/gateway/outbox"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/gateway/smtpd"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
)

// settings are the process settings of `sesgate serve`.
type settings struct {
	dataDir         string
	smtpAddr        string
	smtpsAddr       string
	httpAddr        string
	configPath      string
	sink            string
	tlsCert         string
	tlsKey          string
	insecureAuth    bool
	logLevel        string
	shutdownTimeout time.Duration
	shutdownDelay   time.Duration
	domain          string
	op              operateSettings
}

func parseSettings(args []string, stderr io.Writer) (*settings, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &settings{}
	fs.StringVar(&s.dataDir, "data-dir", env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory: dev token, outbox, embedded store (env SESGATE_DATA_DIR)")
	fs.StringVar(&s.smtpAddr, "smtp-addr", env("SESGATE_SMTP_ADDR", "127.0.0.1:2525"), "SMTP listener, STARTTLS when a certificate is set; empty disables (env SESGATE_SMTP_ADDR)")
	fs.StringVar(&s.smtpsAddr, "smtps-addr", env("SESGATE_SMTPS_ADDR", ""), "implicit-TLS SMTP listener, needs a certificate (env SESGATE_SMTPS_ADDR)")
	fs.StringVar(&s.httpAddr, "http-addr", env("SESGATE_HTTP_ADDR", "127.0.0.1:8025"), "HTTP listener; empty disables (env SESGATE_HTTP_ADDR)")
	fs.StringVar(&s.configPath, "config", env("SESGATE_CONFIG", ""), "policy file; none: a dev tenant (env SESGATE_CONFIG)")
	fs.StringVar(&s.sink, "sink", env("SESGATE_SINK", ""), "outbox or ses; default ses with a policy file, outbox without (env SESGATE_SINK)")
	fs.StringVar(&s.tlsCert, "tls-cert", env("SESGATE_TLS_CERT", ""), "TLS certificate file, PEM (env SESGATE_TLS_CERT)")
	fs.StringVar(&s.tlsKey, "tls-key", env("SESGATE_TLS_KEY", ""), "TLS key file, PEM (env SESGATE_TLS_KEY)")
	insecure, _ := strconv.ParseBool(env("SESGATE_INSECURE_AUTH", "false"))
	fs.BoolVar(&s.insecureAuth, "insecure-auth", insecure, "allow SMTP AUTH without TLS on non-loopback listeners (env SESGATE_INSECURE_AUTH)")
	fs.StringVar(&s.logLevel, "log-level", env("SESGATE_LOG_LEVEL", "info"), "debug, info, warn or error (env SESGATE_LOG_LEVEL)")
	st, err := time.ParseDuration(env("SESGATE_SHUTDOWN_TIMEOUT", "20s"))
	if err != nil {
		return nil, usageError{Msg: "SESGATE_SHUTDOWN_TIMEOUT: " + err.Error()}
	}
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", st, "bound on draining sessions at SIGTERM; keep below the pod's grace period (env SESGATE_SHUTDOWN_TIMEOUT)")
	sd, err := time.ParseDuration(env("SESGATE_SHUTDOWN_DELAY", "0s"))
	if err != nil {
		return nil, usageError{Msg: "SESGATE_SHUTDOWN_DELAY: " + err.Error()}
	}
	fs.DurationVar(&s.shutdownDelay, "shutdown-delay", sd, "time between readiness going false and listeners closing (env SESGATE_SHUTDOWN_DELAY)")
	host, _ := os.Hostname()
	fs.StringVar(&s.domain, "domain", env("SESGATE_DOMAIN", host), "host name in the SMTP greeting (env SESGATE_DOMAIN)")
	operateFlags(fs, &s.op)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{Msg: "serve takes no arguments"}
	}
	if s.sink == "" {
		s.sink = "outbox"
		if s.configPath != "" {
			s.sink = "ses"
		}
	}
	if s.sink != "outbox" && s.sink != "ses" {
		return nil, usageError{Msg: fmt.Sprintf("--sink %q: want outbox or ses", s.sink)}
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return nil, usageError{Msg: "--tls-cert and --tls-key go together"}
	}
	if s.smtpsAddr != "" && s.tlsCert == "" {
		return nil, usageError{Msg: "--smtps-addr needs --tls-cert and --tls-key"}
	}
	if s.shutdownTimeout <= 0 {
		return nil, usageError{Msg: "--shutdown-timeout must be positive"}
	}
	return s, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{Msg: "--log-level: " + err.Error()}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func outboxDir(dataDir string) string { return filepath.Join(dataDir, "outbox") }

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, s.logLevel)
	if err != nil {
		return err
	}
	stopPprof, err := startPprof(log) // SESGATE_PPROF_ADDR, off by default
	if err != nil {
		return err
	}
	defer stopPprof()
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	// Policy: the file, or the dev tenant.
	var tenants []*gateway.Tenant
	var entries []auth.Entry
	var sesCfg config.SES
	var policy *config.Policy
	var devTokenPath string
	if s.configPath != "" {
		p, err := config.Load(s.configPath)
		if err != nil {
			return err
		}
		sesCfg, policy = p.SES, p
		tenants, entries = p.Build()
	} else {
		t, e, path, err := devTenant(s.dataDir)
		if err != nil {
			return err
		}
		tenants, entries, devTokenPath = []*gateway.Tenant{t}, []auth.Entry{e}, path
	}

	// Store: Redis or embedded.
	st, err := openStore(ctx, s.dataDir, policy, log)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer st.Close()
	op, err := newOperator(s, log, st, policy)
	if err != nil {
		return err
	}
	var storeCfg config.Store
	if policy != nil {
		storeCfg = policy.Store
	}
	lim, err := limiter.NewShared(limiter.SharedOptions{
		Store: st, Logger: log, CallTimeout: storeCfg.CallTimeout, DegradedWindow: storeCfg.DegradedWindow,
		DegradedFraction: storeCfg.DegradedFraction, Replicas: storeCfg.Replicas, MaxCache: storeCfg.MaxCache,
		Registerer: op.reg,
	})
	if err != nil {
		return err
	}

	// Sink.
	var sink gateway.Sink
	sinkDesc := ""
	sendRate := sesCfg.MaxSendRate
	switch s.sink {
	case "outbox":
		o, err := outbox.New(outboxDir(s.dataDir), nil)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		sink, sinkDesc = o, "outbox "+o.Dir()+" (mail is NOT sent to SES)"
	case "ses":
		client, err := ses.NewClient(ctx, ses.ClientOptions{Region: sesCfg.Region, Endpoint: sesCfg.Endpoint, MaxAttempts: sesCfg.MaxAttempts})
		if err != nil {
			return fmt.Errorf("SES client: %w", err)
		}
		sk, err := ses.New(ses.Options{Client: client, Logger: log, Timeout: sesCfg.Timeout, MaxAttempts: sesCfg.MaxAttempts, Observe: op.sesObserved})
		if err != nil {
			return err
		}
		sink, sinkDesc = sk, "Amazon SES (SES v2 SendEmail, region "+client.Options().Region+")"
		if sendRate == 0 {
			if sendRate, err = sesMaxSendRate(ctx, client); err != nil {
				log.Warn("SES max send rate unknown; the account rate is left to SES", "err", err.Error())
			}
		}
	}
	if sendRate > 0 {
		ao := limiter.AccountOptions{Rate: sendRate, Replicas: storeCfg.Replicas, Logger: log}
		if st.redis != nil {
			ao.Leaser = st.redis
		}
		acct, err := limiter.NewAccount(ao)
		if err != nil {
			return err
		}
		sink = limiter.AccountSink{Sink: sink, Account: acct}
		log.Info("account send rate shared", "rate", sendRate, "lease_batch", acct.Batch())
	}

	fb, err := startFeedback(ctx, feedbackDeps{log: log, st: st, policy: policy, tenants: tenants, lim: lim, sink: &sink, reg: op.reg})
	if err != nil {
		return err
	}
	defer fb.close()
	op.onReload = fb.reload
	registry := auth.NewRegistry(auth.RegistryOptions{Entries: entries, Logger: log})
	pipe := gateway.NewPipeline(gateway.Options{
		Auth: op.auth(registry), Limiter: lim, Sink: sink, Logger: log, Observe: op.observed,
	})

	var tlsConf *tls.Config
	if s.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	var ready atomic.Bool
	g := &group{}
	var smtpServers []*smtpd.Server
	listen := func(addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		g.closers = append(g.closers, l)
		return l, nil
	}
	defer g.closeAll()
	for _, ls := range []struct {
		addr     string
		implicit bool
	}{{s.smtpAddr, false}, {s.smtpsAddr, true}} {
		if ls.addr == "" {
			continue
		}
		srv, err := smtpd.New(smtpd.Options{
			Pipeline: pipe, Logger: log, Domain: s.domain, TLSConfig: tlsConf,
			ImplicitTLS: ls.implicit, AllowInsecureAuth: s.insecureAuth,
		})
		if err != nil {
			return err
		}
		l, err := listen(ls.addr)
		if err != nil {
			return err
		}
		smtpServers = append(smtpServers, srv)
		g.goServe(func() error { return srv.Serve(l) })
	}
	var httpSrv *http.Server
	if s.httpAddr != "" {
		h := httpapi.New(httpapi.Options{Pipeline: pipe, Logger: log, Ready: ready.Load})
		httpSrv = httpapi.NewServer(httpapi.ServerOptions{Handler: fb.handler(h), Logger: log})
		l, err := listen(s.httpAddr)
		if err != nil {
			return err
		}
		g.goServe(func() error { return httpSrv.Serve(l) })
	}
	if err := op.start(ctx, registry, lim, fb.Breakers(), tenants, entries, policy); err != nil {
		return err
	}
	defer op.close()
	ready.Store(true)

	banner(stderr, s, g.addrs(), sinkDesc, devTokenPath, len(tenants))
	op.banner(stderr)
	log.Info("sesgate started", "sink", s.sink, "tenants", len(tenants), "store", st.desc)

	select {
	case <-ctx.Done():
	case err := <-g.errc:
		log.Error("listener failed", "err", err)
		return err
	}

	// Shutdown: readiness first, then drain within the bound.
	ready.Store(false)
	log.Info("shutting down", "delay", s.shutdownDelay, "timeout", s.shutdownTimeout)
	time.Sleep(s.shutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	shutdown := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(sctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	for _, srv := range smtpServers {
		shutdown(srv.Shutdown)
	}
	if httpSrv != nil {
		shutdown(httpSrv.Shutdown)
	}
	wg.Wait()
	if err := op.shutdown(sctx); err != nil { // the admin listener closes last
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("shutdown incomplete", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// group runs servers and remembers their listeners.
type group struct {
	closers []net.Listener
	errc    chan error
}

func (g *group) goServe(f func() error) {
	if g.errc == nil {
		g.errc = make(chan error, 8)
	}
	go func() {
		if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			g.errc <- err
		}
	}()
}

func (g *group) addrs() []string {
	out := make([]string, 0, len(g.closers))
	for _, l := range g.closers {
		out = append(out, l.Addr().String())
	}
	return out
}

func (g *group) closeAll() {
	for _, l := range g.closers {
		l.Close()
	}
}

func banner(w io.Writer, s *settings, addrs []string, sink, devToken string, tenants int) {
	var b strings.Builder
	b.WriteString("sesgate is running\n")
	i := 0
	next := func() string { a := addrs[i]; i++; return a }
	if s.smtpAddr != "" {
		tlsNote := "plain, AUTH allowed on loopback only"
		if s.tlsCert != "" {
			tlsNote = "STARTTLS"
		}
		fmt.Fprintf(&b, "  SMTP   %s (%s)\n", next(), tlsNote)
	}
	if s.smtpsAddr != "" {
		fmt.Fprintf(&b, "  SMTPS  %s (implicit TLS)\n", next())
	}
	httpAddr := ""
	if s.httpAddr != "" {
		httpAddr = next()
		fmt.Fprintf(&b, "  HTTP   http://%s/v1/messages\n", httpAddr)
	}
	fmt.Fprintf(&b, "  sink   %s\n", sink)
	if devToken != "" {
		fmt.Fprintf(&b, "  tenant dev (any From address); token in %s\n", devToken)
		fmt.Fprintf(&b, "  try:   curl -H \"Authorization: Bearer $(cat %s)\" -H 'Content-Type: application/json' \\\n", devToken)
		fmt.Fprintf(&b, "           -d '{\"from\":\"me@example.com\",\"to\":[\"you@example.com\"],\"subject\":\"hi\",\"text\":\"hello\"}' http://%s/v1/messages\n", httpAddr)
	} else {
		fmt.Fprintf(&b, "  policy %s (%d tenants)\n", s.configPath, tenants)
	}
	fmt.Fprint(w, b.String())
}
