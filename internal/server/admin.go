package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store"
)

// adminOptions are what the admin side is built from.
type adminOptions struct {
	Addr     string // the admin listener; empty: none
	DataDir  string // holds the laptop's admin-token without a policy file
	Store    storeadmin.Store
	Breakers admin.Breakers // nil: storeadmin.NoBreakers
	Webhooks admin.Webhooks // the apps' webhook dead letters; nil: none
	Policy   *startPolicy
	// Registry and Limiter are kept in step with the store's admin state
	// (tokens, freezes) by apply.
	Registry *auth.Registry
	Limiter  *limiter.Shared
	Metrics  prometheus.Gatherer // served at /metrics
	// OnApply is told after every apply of the store's admin state (the
	// feedback side's view of the API tenants).
	OnApply func(apiTenants)
	Logger  *slog.Logger
	AWSKeys *auth.AWSKeys // mints AWS keys; nil: none
	// Events is the feed's ring of logged warnings and errors;
	// SESQuota the account's quota read at start (nil: not read).
	Events   *admin.EventLog
	SESQuota *admin.SESQuota
	// Dashboard is the store's shared dashboard state (nil: none).
	Dashboard store.DashboardStore
}

// adminSide is the admin API and dashboard of one serve process, on its
// own listener, and the application of the store's admin state.
type adminSide struct {
	log       *slog.Logger
	enabled   bool
	dataDir   string
	backend   *storeadmin.Backend
	handler   *admin.Handler
	registry  *auth.Registry
	limiter   *limiter.Shared
	srv       *http.Server // nil: no listener
	addr      string
	tokenPath string // the laptop's admin-token file
	onApply   func(apiTenants)
	// policyPath names the policy file in the API's messages.
	policyPath string
}

// newAdmin builds the admin backend and handler, applies the store's
// tokens once (before the first message), then listens.
func newAdmin(ctx context.Context, o adminOptions) (*adminSide, error) {
	a := &adminSide{log: o.Logger, enabled: o.Addr != "", dataDir: o.DataDir, registry: o.Registry, limiter: o.Limiter, onApply: o.OnApply, policyPath: o.Policy.path}
	breakers := o.Breakers
	if breakers == nil {
		breakers = storeadmin.NoBreakers{}
	}
	var err error
	a.backend, err = storeadmin.New(storeadmin.Options{Store: o.Store, Breakers: breakers, Logger: o.Logger, CallTimeout: watchTimeout},
		&storeadmin.Policy{Tenants: o.Policy.tenants, Entries: o.Policy.entries, File: o.Policy.file, FilePath: o.Policy.path})
	if err != nil {
		return nil, err
	}
	adminTokens, err := a.tokensOf(o.Policy.file)
	if err != nil {
		return nil, err
	}
	a.handler, err = admin.New(admin.Options{
		Tokens: a.backend.Tokens(), Tenants: a.backend.Tenants(), Suppressions: a.backend.Suppressions(), Audit: a.backend.Audit(),
		Breakers: breakers, Webhooks: o.Webhooks, TenantEntries: a.backend.TenantEntries(),
		AdminTokens: adminTokens, Metrics: o.Metrics, Logger: o.Logger, AWSKeys: o.AWSKeys,
		Events: o.Events, SESQuota: o.SESQuota, Messages: messagesOf(o.Store), Dashboard: o.Dashboard,
	})
	if err != nil {
		return nil, err
	}
	// The API tenants before the first message (their tokens resolve to
	// them); what is not read now is read by the watch.
	actx, acancel := context.WithTimeout(ctx, apiTenantsStartTimeout)
	err = a.apply(actx)
	acancel()
	if err != nil {
		a.log.Warn("store tokens not loaded at start; retried every second", "err", err.Error())
	}
	if !a.enabled {
		return a, nil
	}
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (admin): %w", o.Addr, err)
	}
	a.addr = l.Addr().String()
	a.srv = &http.Server{
		Handler: a.handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 6 * time.Minute,
		WriteTimeout: 6 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := a.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin listener failed", "err", err.Error())
		}
	}()
	return a, nil
}

// apiTenantsStartTimeout bounds the first apply of the store's admin state
// at start (the API tenants and tokens; 100,000 of them take seconds), and
// watchTimeout each later one (the token table is read whole).
const (
	apiTenantsStartTimeout = 2 * time.Minute
	watchTimeout           = 10 * time.Second
)

// apply brings the process in line with the store's admin state: the
// token table (policy tokens + store tokens - revocations) and no cached
// refusal older than the change (an unfreeze is seen at once).
func (a *adminSide) apply(ctx context.Context) error {
	if err := a.backend.ApplyTo(ctx, a.registry); err != nil {
		return err
	}
	a.limiter.ForgetCached()
	if a.onApply != nil {
		a.onApply(a.backend)
	}
	return nil
}

// watch applies every change of the store's admin state, until ctx ends.
func (a *adminSide) watch(ctx context.Context) { a.backend.Watch(ctx, a.apply) }

// setPolicy serves a reloaded policy: its tenants, its tokens with the
// store's, its admin tokens. It returns the number of admin tokens.
func (a *adminSide) setPolicy(ctx context.Context, p *config.Policy, tenants []*gateway.Tenant, entries []auth.Entry) int {
	adminTokens, _ := a.tokensOf(p)
	a.backend.SetPolicy(&storeadmin.Policy{Tenants: tenants, Entries: entries, File: p, FilePath: a.policyPath})
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := a.apply(cctx)
	cancel()
	if err != nil {
		// The store is out of reach: the policy's own tokens now, the
		// store's at the next successful poll.
		a.log.Warn("store tokens not refreshed on reload", "err", err.Error())
		a.registry.Replace(entries)
		a.backend.Refresh()
	}
	a.handler.SetAdminTokens(adminTokens)
	return len(adminTokens)
}

// tokensOf returns the policy's admin tokens or, without a policy file,
// the laptop's token from <data-dir>/admin-token (minted on first start).
func (a *adminSide) tokensOf(p *config.Policy) ([]admin.AdminToken, error) {
	if p == nil {
		path := filepath.Join(a.dataDir, "admin-token")
		tok, err := readOrMintToken(path)
		if err != nil {
			return nil, err
		}
		a.tokenPath = path
		kid, _ := auth.KeyID(tok)
		return []admin.AdminToken{{KeyID: kid, Hash: auth.HashToken(tok), Name: "local"}}, nil
	}
	out := make([]admin.AdminToken, 0, len(p.AdminTokens))
	for _, t := range p.AdminTokens {
		h, _ := auth.ParseHash(t.SHA256) // validated by config
		out = append(out, admin.AdminToken{KeyID: t.KeyID, Hash: h, Name: t.Name})
	}
	if len(out) == 0 && a.enabled {
		a.log.Warn("the policy file has no admin_tokens: every admin call is refused (sesgate token new --admin --name NAME)")
	}
	return out, nil
}

// shutdown stops the admin listener, draining its requests; serve calls it
// after the sending listeners drained, so it closes last.
func (a *adminSide) shutdown(ctx context.Context) error {
	if a.srv == nil {
		return nil
	}
	return a.srv.Shutdown(ctx)
}

// close stops the admin listener at once.
func (a *adminSide) close() {
	if a.srv != nil {
		a.srv.Close()
	}
}

// messagesOf is the store's message status (both stores keep it); nil
// when it has none.
func messagesOf(st storeadmin.Store) admin.Messages {
	m, _ := st.(admin.Messages)
	return m
}
