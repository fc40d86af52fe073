package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/gateway/smtpd"
)

// frontOptions are what the front ends are built from.
type frontOptions struct {
	Settings *Settings // listeners, TLS, SMTP greeting and AUTH policy
	Pipeline *gateway.Pipeline
	// Mount wraps the HTTP API (the SNS endpoint beside it).
	Mount func(http.Handler) http.Handler
	Ready func() bool // for /readyz
	// SESAPI, when set, serves the SES API beside the HTTP API.
	SESAPI     *sesAPIOptions
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Idempotency is the shared store's idempotency records (HTTP
	// Idempotency-Key).
	Idempotency gateway.IdempotencyStore
}

// frontEnds are the sending listeners: SMTP, SMTPS and HTTP, each served
// from the moment it is built.
type frontEnds struct {
	smtp      []*smtpd.Server
	http      *http.Server // nil: no HTTP listener
	listeners []net.Listener
	errc      chan error // a listener that failed
	// budget bounds the message bytes SMTP and HTTP hold in memory
	// together: the one budget of the process.
	budget *gateway.MemBudget
}

// newFrontEnds listens on the configured addresses and serves them; a
// failed listen closes those already open.
func newFrontEnds(o frontOptions) (_ *frontEnds, err error) {
	s := o.Settings
	var tlsConf *tls.Config
	if s.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	f := &frontEnds{errc: make(chan error, 8)}
	if f.budget, err = gateway.NewMemBudget(s.MemBudget); err != nil {
		return nil, err
	}
	if o.Registerer != nil {
		err := o.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sesgate_mem_budget_used_bytes", Help: "Message bytes SMTP and HTTP hold in memory now (of --mem-budget).",
		}, func() float64 { return float64(f.budget.InUse()) }))
		if err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	for _, ls := range []struct {
		addr     string
		implicit bool
	}{{s.SMTPAddr, false}, {s.SMTPSAddr, true}} {
		if ls.addr == "" {
			continue
		}
		srv, err := smtpd.New(smtpd.Options{
			Pipeline: o.Pipeline, Logger: o.Logger, Domain: s.Domain, TLSConfig: tlsConf,
			ImplicitTLS: ls.implicit, AllowInsecureAuth: s.InsecureAuth, Budget: f.budget,
			MaxConnectionsPerSource: s.SMTPMaxConnsPerSource, AuthTimeout: s.SMTPAuthTimeout,
			PreAuthReadTimeout: s.SMTPPreAuthTimeout,
		})
		if err != nil {
			return nil, err
		}
		l, err := f.listen(ls.addr)
		if err != nil {
			return nil, err
		}
		f.smtp = append(f.smtp, srv)
		f.serve(func() error { return srv.Serve(l) })
	}
	if s.HTTPAddr != "" {
		h := httpapi.New(httpapi.Options{Pipeline: o.Pipeline, Logger: o.Logger, Ready: o.Ready,
			Budget: f.budget, MaxRequestsPerTenant: s.HTTPMaxRequestsPerTenant, Idempotency: o.Idempotency})
		var api http.Handler = h
		if o.SESAPI != nil {
			sh, err := o.SESAPI.handler(f.budget)
			if err != nil {
				return nil, err
			}
			api = withSESAPI(h, sh)
		}
		f.http = httpapi.NewServer(httpapi.ServerOptions{Handler: o.Mount(api), Logger: o.Logger})
		l, err := f.listen(s.HTTPAddr)
		if err != nil {
			return nil, err
		}
		// The API and the SNS endpoint share the listener and its bounds.
		ll, err := httpapi.LimitListener(l, httpapi.ListenerOptions{
			MaxConns: s.HTTPMaxConns, MaxConnsPerSource: s.HTTPMaxConnsPerSource, Logger: o.Logger, Registerer: o.Registerer,
		})
		if err != nil {
			return nil, err
		}
		f.serve(func() error { return f.http.Serve(ll) })
	}
	return f, nil
}

func (f *frontEnds) listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	f.listeners = append(f.listeners, l)
	return l, nil
}

func (f *frontEnds) serve(run func() error) {
	go func() {
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			f.errc <- err
		}
	}()
}

// addrs are the listeners' addresses, in the order SMTP, SMTPS, HTTP.
func (f *frontEnds) addrs() []string {
	out := make([]string, 0, len(f.listeners))
	for _, l := range f.listeners {
		out = append(out, l.Addr().String())
	}
	return out
}

// shutdown drains every listener at once, within ctx.
func (f *frontEnds) shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	stop := func(shutdown func(context.Context) error) {
		wg.Go(func() {
			if err := shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	for _, srv := range f.smtp {
		stop(srv.Shutdown)
	}
	if f.http != nil {
		stop(f.http.Shutdown)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// close closes the listeners at once.
func (f *frontEnds) close() {
	for _, l := range f.listeners {
		l.Close()
	}
}
