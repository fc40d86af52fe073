package main

// The operator's side of `sesgate serve`: the admin listener (API,
// dashboard, /metrics), the one Prometheus registry, the watch that keeps
// store tokens and kill switches in step across replicas, and the policy
// reload (SIGHUP and a change of the file).

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// operateSettings are the process settings of the admin side.
type operateSettings struct {
	adminAddr  string
	reloadPoll time.Duration
}

// Defaults of the admin side.
const (
	defaultAdminAddr       = "127.0.0.1:8026"
	defaultReloadPoll      = 2 * time.Second
	defaultMaxTenantLabels = 100
	lastUsedFlushEvery     = 10 * time.Second
	maxLastUsedBatch       = 10000
)

// operateFlags registers the admin side's flags on fs.
func operateFlags(fs *flag.FlagSet, o *operateSettings) {
	addr := defaultAdminAddr
	if v, ok := os.LookupEnv("SESGATE_ADMIN_ADDR"); ok { // empty disables
		addr = v
	}
	fs.StringVar(&o.adminAddr, "admin-addr", addr, "admin API, dashboard and /metrics listener; empty disables (env SESGATE_ADMIN_ADDR)")
	poll, err := time.ParseDuration(env("SESGATE_RELOAD_POLL", defaultReloadPoll.String()))
	if err != nil {
		poll = defaultReloadPoll
	}
	fs.DurationVar(&o.reloadPoll, "reload-poll", poll, "how often the policy file is checked for a change; 0 disables (env SESGATE_RELOAD_POLL)")
}

// operator holds the admin side of one serve process.
type operator struct {
	s       *settings
	log     *slog.Logger
	st      *openedStore
	ops     storeadmin.Store
	reg     *metricsRegistry // the one registry: pass it as the Registerer of every part
	backend *storeadmin.Backend

	mAccepted *prometheus.CounterVec
	mRefused  *prometheus.CounterVec
	mSESLat   prometheus.Histogram
	mSESErr   *prometheus.CounterVec
	mReloads  *prometheus.CounterVec
	labels    *tenantLabels

	// Set by start.
	registry  *auth.Registry
	limiter   *limiter.Shared
	handler   *admin.Handler
	srv       *http.Server
	addr      string
	tokenPath string

	// onReload, when set, is told of every accepted policy (the breakers'
	// tenants and settings).
	onReload func(*config.Policy, []*gateway.Tenant)

	mu     sync.Mutex // the current policy and its file's fingerprint
	policy *storeadmin.Policy
	print  fileStamp

	usedMu sync.Mutex
	used   map[string]time.Time // key id -> last successful use, not yet written

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// newOperator creates the metrics registry (and instruments the Redis
// client) before the rest of serve is built, so every part registers on it.
func newOperator(s *settings, log *slog.Logger, st *openedStore, p *config.Policy) (*operator, error) {
	ops, ok := st.Store.(storeadmin.Store)
	if !ok {
		return nil, errors.New("the store does not keep admin state")
	}
	o := &operator{s: s, log: log, st: st, ops: ops, reg: &metricsRegistry{Registry: prometheus.NewRegistry()}, used: map[string]time.Time{}}
	maxLabels := defaultMaxTenantLabels
	if p != nil && p.Metrics.MaxTenantLabels > 0 {
		maxLabels = p.Metrics.MaxTenantLabels
	}
	o.labels = &tenantLabels{max: maxLabels, seen: map[string]struct{}{}}
	o.mAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_messages_accepted_total", Help: "Messages accepted by SES through the gateway, by tenant.",
	}, []string{"tenant"})
	o.mRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_messages_refused_total", Help: "Messages refused by the gateway, by tenant and reason (the error code); failed authentications count under tenant \"unauthenticated\".",
	}, []string{"tenant", "reason"})
	o.mSESLat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sesgate_ses_send_seconds", Help: "Duration of SES SendEmail calls, retries included.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	o.mSESErr = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_ses_errors_total", Help: "Failed SES SendEmail calls, by type (the gateway code the error maps to).",
	}, []string{"type"})
	o.mReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_policy_reloads_total", Help: "Policy reloads, by result (ok, invalid, unchanged).",
	}, []string{"result"})
	for _, c := range []prometheus.Collector{
		o.mAccepted, o.mRefused, o.mSESLat, o.mSESErr, o.mReloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := o.reg.Register(c); err != nil {
			return nil, err
		}
	}
	if st.redis != nil {
		if err := redisstore.Instrument(st.redis.Client(), o.reg); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// metricsRegistry is the process's Prometheus registry; it remembers the
// names of what was registered (logged at debug level at start; a test
// checks each is in the README).
type metricsRegistry struct {
	*prometheus.Registry
	mu    sync.Mutex
	names []string
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// Register registers c and remembers its metric names.
func (m *metricsRegistry) Register(c prometheus.Collector) error {
	if err := m.Registry.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range ch {
		if sm := fqNameRE.FindStringSubmatch(d.String()); sm != nil && strings.HasPrefix(sm[1], "sesgate_") {
			m.names = append(m.names, sm[1])
		}
	}
	return nil
}

// MustRegister registers cs or panics.
func (m *metricsRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := m.Register(c); err != nil {
			panic(err)
		}
	}
}

// Names returns the sesgate_ metric names registered so far, sorted.
func (m *metricsRegistry) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.names)
	slices.Sort(out)
	return slices.Compact(out)
}

// observed is the pipeline's per-message hook.
func (o *operator) observed(tenant string, err *gateway.Error) {
	l := o.labels.of(tenant)
	if err == nil {
		o.mAccepted.WithLabelValues(l).Inc()
		return
	}
	o.mRefused.WithLabelValues(l, err.Code.String()).Inc()
}

// sesObserved is the SES sink's per-call hook.
func (o *operator) sesObserved(took time.Duration, errType string) {
	o.mSESLat.Observe(took.Seconds())
	if errType != "" {
		o.mSESErr.WithLabelValues(errType).Inc()
	}
}

// tenantLabels bounds the tenant label: the first max tenants seen keep
// their id, the others are counted as "other".
type tenantLabels struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func (t *tenantLabels) of(id string) string {
	if id == "" {
		return "unauthenticated"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[id]; ok {
		return id
	}
	if len(t.seen) >= t.max {
		return "other"
	}
	t.seen[id] = struct{}{}
	return id
}

// auth wraps the registry: successful uses are remembered for the
// batched last-used write.
func (o *operator) auth(r *auth.Registry) gateway.Authenticator {
	return usedAuth{r: r, o: o}
}

type usedAuth struct {
	r *auth.Registry
	o *operator
}

func (u usedAuth) Authenticate(ctx context.Context, username, token string, src netip.Addr) (*gateway.Tenant, error) {
	t, err := u.r.Authenticate(ctx, username, token, src)
	if err != nil {
		u.o.mRefused.WithLabelValues(u.o.labels.of(""), gateway.AsError(err).Code.String()).Inc()
	}
	if err == nil {
		if kid, ok := auth.KeyID(token); ok {
			u.o.usedMu.Lock()
			if len(u.o.used) < maxLastUsedBatch {
				u.o.used[kid] = time.Now().UTC()
			}
			u.o.usedMu.Unlock()
		}
	}
	return t, err
}

func (o *operator) flushUsed(ctx context.Context) {
	o.usedMu.Lock()
	batch := o.used
	o.used = map[string]time.Time{}
	o.usedMu.Unlock()
	if len(batch) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := o.ops.TouchTokens(cctx, batch); err != nil {
		o.log.Warn("recording token last-used times failed", "err", err.Error())
	}
}

// start wires the admin backend (breakers: the feedback side's; nil:
// storeadmin.NoBreakers), starts the admin listener, the watch of
// the store's admin state, the reload triggers and the last-used writer.
func (o *operator) start(ctx context.Context, reg *auth.Registry, lim *limiter.Shared, breakers admin.Breakers, tenants []*gateway.Tenant, entries []auth.Entry, policy *config.Policy) error {
	o.registry, o.limiter = reg, lim
	o.policy = &storeadmin.Policy{Tenants: tenants, Entries: entries}
	if o.s.configPath != "" {
		o.print, _ = stampFile(o.s.configPath)
	}
	if breakers == nil {
		breakers = storeadmin.NoBreakers{}
	}
	b, err := storeadmin.New(storeadmin.Options{Store: o.ops, Breakers: breakers, Logger: o.log}, o.policy)
	if err != nil {
		return err
	}
	o.backend = b
	adminTokens, err := o.adminTokens(policy)
	if err != nil {
		return err
	}
	o.handler, err = admin.New(admin.Options{
		Tokens: b.Tokens(), Tenants: b.Tenants(), Suppressions: b.Suppressions(), Audit: b.Audit(),
		Breakers:    breakers,
		AdminTokens: adminTokens, Metrics: o.reg, Logger: o.log,
	})
	if err != nil {
		return err
	}
	// The store's tokens before the first message: one synchronous apply.
	actx, acancel := context.WithTimeout(ctx, 2*time.Second)
	err = o.apply(actx)
	acancel()
	if err != nil {
		o.log.Warn("store tokens not loaded at start; retried every second", "err", err.Error())
	}

	if o.s.op.adminAddr != "" {
		l, err := net.Listen("tcp", o.s.op.adminAddr)
		if err != nil {
			return fmt.Errorf("listen %s (admin): %w", o.s.op.adminAddr, err)
		}
		o.addr = l.Addr().String()
		o.srv = &http.Server{
			Handler: o.handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 6 * time.Minute,
			WriteTimeout: 6 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
		}
		go func() {
			if err := o.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.log.Error("admin listener failed", "err", err.Error())
			}
		}()
	}

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	o.done.Add(3)
	go func() { defer o.done.Done(); b.Watch(wctx, o.apply) }()
	go func() { defer o.done.Done(); o.reloadLoop(wctx) }()
	go func() {
		defer o.done.Done()
		t := time.NewTicker(lastUsedFlushEvery)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				o.flushUsed(context.Background())
				return
			case <-t.C:
				o.flushUsed(wctx)
			}
		}
	}()
	return nil
}

// apply brings the process in line with the store's admin state: the
// token table (policy tokens + store tokens - revocations) and no cached
// refusal older than the change (an unfreeze is seen at once).
func (o *operator) apply(ctx context.Context) error {
	entries, err := o.backend.Entries(ctx)
	if err != nil {
		return err
	}
	o.registry.Replace(entries)
	o.limiter.ForgetCached()
	return nil
}

// adminTokens returns the policy's admin tokens or, without a policy file,
// the laptop's token from <data-dir>/admin-token (minted on first start).
func (o *operator) adminTokens(p *config.Policy) ([]admin.AdminToken, error) {
	if p == nil {
		path := filepath.Join(o.s.dataDir, "admin-token")
		tok, err := readOrMintToken(path)
		if err != nil {
			return nil, err
		}
		o.tokenPath = path
		kid, _ := auth.KeyID(tok)
		return []admin.AdminToken{{KeyID: kid, Hash: auth.HashToken(tok), Name: "local"}}, nil
	}
	out := make([]admin.AdminToken, 0, len(p.AdminTokens))
	for _, a := range p.AdminTokens {
		h, _ := auth.ParseHash(a.SHA256) // validated by config
		out = append(out, admin.AdminToken{KeyID: a.KeyID, Hash: h, Name: a.Name})
	}
	if len(out) == 0 && o.s.op.adminAddr != "" {
		o.log.Warn("the policy file has no admin_tokens: every admin call is refused (sesgate token new --admin --name NAME)")
	}
	return out, nil
}

// readOrMintToken reads a token file, or mints one into it (0600).
func readOrMintToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if _, ok := auth.KeyID(tok); !ok {
			return "", fmt.Errorf("%s does not hold a sesgate token; delete it to mint a new one", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok := auth.NewToken("").Token
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(tok + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return tok, err
}

// banner adds the admin lines to the start banner.
func (o *operator) banner(w io.Writer) {
	o.log.Debug("metrics registered", "names", o.reg.Names())
	if o.addr == "" {
		fmt.Fprint(w, "  admin  disabled\n")
		return
	}
	fmt.Fprintf(w, "  admin  http://%s/dashboard/ (API /v1/, /metrics)\n", o.addr)
	if o.tokenPath != "" {
		fmt.Fprintf(w, "         admin token in %s (sesgate admin: SESGATE_ADMIN_TOKEN=$(cat %s))\n", o.tokenPath, o.tokenPath)
	}
}

// shutdown stops the admin side; called after the sending listeners
// drained, so the admin listener closes last.
func (o *operator) shutdown(ctx context.Context) error {
	if o.cancel != nil {
		o.cancel()
		o.done.Wait()
	}
	if o.srv == nil {
		return nil
	}
	return o.srv.Shutdown(ctx)
}

// close stops the admin side at once (an error path of serve).
func (o *operator) close() {
	if o.cancel != nil {
		o.cancel()
	}
	if o.srv != nil {
		o.srv.Close()
	}
}

// --- reload ---

// fileStamp identifies a policy file's content.
type fileStamp struct {
	mtime time.Time
	size  int64
	sum   [sha256.Size]byte
}

func stampFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mtime: fi.ModTime(), size: fi.Size(), sum: sha256.Sum256(data)}, nil
}

// reloadLoop reloads on SIGHUP and when the file changes (polled).
func (o *operator) reloadLoop(ctx context.Context) {
	if o.s.configPath == "" {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if o.s.op.reloadPoll > 0 {
		t := time.NewTicker(o.s.op.reloadPoll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			o.reload(ctx, "SIGHUP")
		case <-tick:
			fi, err := os.Stat(o.s.configPath)
			o.mu.Lock()
			same := err == nil && fi.ModTime().Equal(o.print.mtime) && fi.Size() == o.print.size
			o.mu.Unlock()
			if !same {
				o.reload(ctx, "file changed")
			}
		}
	}
}

// reload reads the policy file and swaps tenants, tokens, admin tokens and
// limits at once; an invalid file changes nothing.
func (o *operator) reload(ctx context.Context, why string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	stamp, err := stampFile(o.s.configPath)
	if err == nil && stamp.sum == o.print.sum {
		o.print = stamp // touched, same content
		o.mReloads.WithLabelValues("unchanged").Inc()
		return
	}
	var p *config.Policy
	if err == nil {
		p, err = config.Load(o.s.configPath)
	}
	if err != nil {
		o.print = stamp // do not retry the same broken content every poll
		o.mReloads.WithLabelValues("invalid").Inc()
		var ce *config.Error
		if errors.As(err, &ce) {
			o.log.Error("policy reload rejected; the old policy stays", "why", why, "problems", ce.Problems)
		} else {
			o.log.Error("policy reload rejected; the old policy stays", "why", why, "err", err.Error())
		}
		return
	}
	tenants, entries := p.Build()
	adminTokens, _ := o.adminTokens(p)
	o.policy = &storeadmin.Policy{Tenants: tenants, Entries: entries}
	o.backend.SetPolicy(o.policy)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = o.apply(cctx)
	cancel()
	if err != nil {
		// The store is out of reach: the policy's own tokens now, the
		// store's at the next successful poll.
		o.log.Warn("store tokens not refreshed on reload", "err", err.Error())
		o.registry.Replace(entries)
		o.backend.Refresh()
	}
	o.print = stamp
	o.mReloads.WithLabelValues("ok").Inc()
	o.handler.SetAdminTokens(adminTokens)
	if o.onReload != nil {
		o.onReload(p, tenants)
	}
	o.log.Info("policy reloaded (tenants, tokens, admin tokens, limits; listeners and store settings need a restart)",
		"why", why, "tenants", len(tenants), "tokens", len(entries), "admin_tokens", len(adminTokens))
}
