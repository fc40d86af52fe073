package load

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sesgate/sesgate/internal/bench"
	"github.com/sesgate/sesgate/internal/bench/stack"
)

// Settings are how Bench and Refuse run: the flags of `sesgate-bench load`
// and `refuse`. Without a target (HTTPURL, SMTPAddr) they start the stack
// themselves (package stack).
type Settings struct {
	Proto       string // http, smtp or both
	Concurrency int    // workers (refuse; load: the first of Concurrencies)
	// Concurrencies are the worker counts load measures, each in every
	// run, in this order; nil: Concurrency alone.
	Concurrencies []int
	Count         int64 // messages per phase; 0: until Duration
	Duration      time.Duration
	Rate          float64 // open-loop pacing over all workers; 0: closed loop
	Size          int     // approximate raw message size in bytes
	PerConn       int     // SMTP messages per connection; 0: one connection per worker
	Pipelining    bool    // SMTP PIPELINING
	StartTLS      bool
	Insecure      bool  // do not verify the gateway's certificate
	Warmup        int64 // messages before each phase, not counted
	Baseline      bool  // also send straight to SES with the SDK
	// ThinRelay adds the thin relay's SMTP phase (package thinrelay, run
	// as a child process) before the SDK's: self-started only.
	ThinRelay  bool
	SESLatency time.Duration
	Sesgate    string // the sesgate binary to start (stack.Binary)
	RedisURL   string
	StartRedis bool
	// Stores are the self-started gateways, one per store, "redis" or
	// "embedded", measured in turn in every run; nil: redis with
	// StartRedis or RedisURL, else embedded.
	Stores []string
	// Tenant is the scenario: "full" (a policy with every limit set and
	// the recipient Mix) or "dev" (the dev tenant, no limits, 100
	// recipients in turn).
	Tenant        string
	KnownFraction float64 // full: share of sends to known recipients
	Domains       int     // full: recipient domains
	LogLevel      string  // the started gateway's
	JSONPath      string  // write the report as JSON here
	Keep          bool    // keep the temporary directory
	ProfileDir    string  // CPU profiles of the started gateway, one per phase
	ProfileDur    time.Duration
	Runs          int
	From          string
	Domain        string // recipients are rcpt<N>@Domain (dev) or @d<N>.Domain (full)
	// A target: a running gateway.
	HTTPURL    string
	SMTPAddr   string
	Token      string
	User       string
	GatewayPID int    // for CPU per message (same host)
	SESURL     string // SES endpoint of the baseline
}

// Target reports whether the settings name a running gateway.
func (s *Settings) Target() bool { return s.HTTPURL != "" || s.SMTPAddr != "" }

// concurrencies returns the worker counts to measure.
func (s *Settings) concurrencies() []int {
	if len(s.Concurrencies) > 0 {
		return s.Concurrencies
	}
	return []int{s.Concurrency}
}

// stores returns the self-started gateways' stores.
func (s *Settings) stores() []string {
	switch {
	case len(s.Stores) > 0:
		return s.Stores
	case s.StartRedis || s.RedisURL != "":
		return []string{"redis"}
	}
	return []string{"embedded"}
}

// mixed reports whether recipients follow the Mix (the full scenario).
func (s *Settings) mixed() bool { return s.Tenant != "dev" }

// node is one gateway a run drives: self-started on one store, or the
// target.
type node struct {
	store    string // "redis", "embedded", or "target"
	gw       *stack.Gateway
	redis    *stack.Proc
	redisURL string
	httpURL  string // POST URL
	smtpAddr string
	token    string
	user     string
	pid      int // gateway pid, 0: unknown
	// pprofAddr serves the gateway's profiles (--cpu-profile).
	pprofAddr string
}

func (n *node) stop() {
	if n.gw != nil {
		n.gw.Stop()
	}
	if n.redis != nil {
		n.redis.Stop()
	}
}

// bed is what a run drives: a started stack or a target.
type bed struct {
	s        *Settings
	stderr   io.Writer
	dir      string
	ses      *stack.SES // nil for a target
	thin     *stack.ThinRelay
	nodes    []*node
	pool     *x509.CertPool // trusts the generated certificate
	sdkCreds aws.CredentialsProvider
	sdkURL   string
	sdkReg   string
	limits   *Limits // the full tenant's, when this run wrote its policy
	seeded   int64   // known recipients mailed per gateway before the runs
	phases   int     // phases measured so far, tags their first contacts
	// profiled is set after the first run (profiles of that run only).
	profiled bool
}

func (b *bed) close() {
	for _, n := range b.nodes {
		n.stop()
	}
	if b.thin != nil {
		b.thin.Stop()
	}
	if b.ses != nil {
		b.ses.Close()
	}
	switch {
	case b.dir != "" && b.s.Keep:
		fmt.Fprintf(b.stderr, "kept %s (per store: gateway.log, redis.log; policy.yml, thin-relay.log)\n", b.dir)
	case b.dir != "":
		_ = os.RemoveAll(b.dir)
	}
}

// policyFunc writes a policy file in dir and returns it with the token and
// the SMTP user (tenant id) to use.
type policyFunc func(bin, dir string) (path, token, user string, err error)

// setUp starts the stack (or checks the target). policy, when set, writes
// the policy file; without it the full scenario writes its own, the dev
// scenario none.
func setUp(ctx context.Context, s *Settings, stderr io.Writer, policy policyFunc) (_ *bed, err error) {
	b := &bed{s: s, stderr: stderr}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if s.Target() {
		n := &node{store: "target", redisURL: s.RedisURL, user: s.User, token: s.Token, pid: s.GatewayPID, smtpAddr: s.SMTPAddr}
		if s.HTTPURL != "" {
			n.httpURL = strings.TrimRight(s.HTTPURL, "/") + "/v1/messages"
		}
		b.nodes = []*node{n}
		if s.SESURL != "" {
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return nil, fmt.Errorf("AWS config for the baseline: %w", err)
			}
			b.sdkCreds, b.sdkURL, b.sdkReg = cfg.Credentials, s.SESURL, cfg.Region
		}
		return b, b.seed(ctx)
	}

	if b.dir, err = os.MkdirTemp("", "sesgate-bench-"); err != nil {
		return nil, err
	}
	bin, err := stack.Binary(ctx, s.Sesgate, b.dir, stderr)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	if b.ses, err = stack.StartSES(s.SESLatency, quiet); err != nil {
		return nil, err
	}
	b.sdkCreds = credentials.NewStaticCredentialsProvider(stack.AccessKey, stack.SecretKey, "")
	b.sdkURL, b.sdkReg = b.ses.URL, stack.Region
	if policy == nil && s.mixed() {
		policy = func(_, dir string) (string, string, string, error) {
			l := FullLimits()
			b.limits = &l
			path, token, err := WritePolicy(dir, PolicyOptions{Limits: l})
			return path, token, FullTenant, err
		}
	}
	var policyPath, policyToken, policyUser string
	if policy != nil {
		if policyPath, policyToken, policyUser, err = policy(bin, b.dir); err != nil {
			return nil, err
		}
	}
	var certPath, keyPath string
	if s.StartTLS {
		if certPath, keyPath, b.pool, err = stack.WriteCert(b.dir); err != nil {
			return nil, err
		}
	}
	if s.ProfileDir != "" {
		if err := os.MkdirAll(s.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	for _, store := range s.stores() {
		n := &node{store: store, user: s.User}
		b.nodes = append(b.nodes, n)
		dir := filepath.Join(b.dir, store)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if store == "redis" {
			n.redisURL = s.RedisURL
			if n.redisURL == "" {
				if n.redis, n.redisURL, err = stack.StartRedis(ctx, dir); err != nil {
					return nil, err
				}
			}
		}
		o := stack.GatewayOptions{Bin: bin, Dir: dir, SESURL: b.ses.URL, RedisURL: n.redisURL, LogLevel: s.LogLevel,
			ConfigPath: policyPath, TLSCert: certPath, TLSKey: keyPath}
		if s.ProfileDir != "" {
			if n.pprofAddr, err = stack.FreeAddr(); err != nil {
				return nil, err
			}
			o.Env = append(o.Env, "SESGATE_PPROF_ADDR="+n.pprofAddr)
		}
		if n.gw, err = stack.StartGateway(ctx, o); err != nil {
			return nil, err
		}
		n.token = n.gw.Token
		if policyToken != "" {
			n.token, n.user = policyToken, policyUser
		}
		n.pid = n.gw.Pid()
		n.httpURL = n.gw.HTTPURL + "/v1/messages"
		n.smtpAddr = n.gw.SMTPAddr
		redis := "no redis (embedded store)"
		if n.redisURL != "" {
			redis = "redis " + n.redisURL
		}
		fmt.Fprintf(stderr, "started: gateway pid %d (SMTP %s, HTTP %s), %s\n", n.pid, n.smtpAddr, n.gw.HTTPURL, redis)
	}
	if s.ThinRelay && s.Proto != "http" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("the thin relay runs this executable: %w", err)
		}
		if b.thin, err = stack.StartThinRelay(ctx, exe, b.dir, b.ses.URL); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "started: thin relay pid %d (SMTP %s)\n", b.thin.Pid(), b.thin.SMTPAddr)
	}
	fmt.Fprintf(stderr, "SES server %s (latency %s)\n", b.ses.URL, s.SESLatency)
	return b, b.seed(ctx)
}

// seed mails every known address of the Mix once through each gateway
// (HTTP when driven, else SMTP), so they are known recipients when the
// phases send to them again.
func (b *bed) seed(ctx context.Context) error {
	s := b.s
	if !s.mixed() {
		return nil
	}
	msg := Message{From: s.From, Domain: s.Domain, Size: s.Size, Mix: &Mix{Seed: true, Domains: s.Domains, Domain: s.Domain}}
	for _, n := range b.nodes {
		newSender, done, err := b.gatewaySender(n, s.Proto != "smtp", msg)
		if err != nil {
			return err
		}
		res, err := Run(ctx, Options{Workers: max(s.concurrencies()[0], 8), Count: KnownPool, Duration: time.Minute, NewSender: newSender})
		done()
		if err != nil {
			return fmt.Errorf("mailing the known recipients: %w", err)
		}
		// A few refusals (a store call slower than the limiter's timeout on a
		// loaded machine answers from the degraded mode) leave a few pool
		// addresses first contacts: stated in the report, not fatal.
		ok := res.Codes["200"] + res.Codes["250"]
		if ok < MinSeeded {
			return fmt.Errorf("mailing the %d known recipients through the %s gateway: answers %v (e.g. %v)", KnownPool, n.store, res.Codes, res.Errors)
		}
		if b.seeded == 0 || ok < b.seeded {
			b.seeded = ok
		}
	}
	return nil
}

// gatewaySender returns the sender factory of a gateway over HTTP (or
// SMTP) and what to call when done with it.
func (b *bed) gatewaySender(n *node, overHTTP bool, msg Message) (func(int) (Sender, error), func(), error) {
	s := b.s
	if overHTTP {
		h, err := NewHTTP(HTTPOptions{URL: n.httpURL, Token: n.token, Message: msg, Conns: maxConc(s), TLSConfig: stack.TLSClientConfig(b.pool, s.Insecure)})
		if err != nil {
			return nil, nil, err
		}
		return h.NewSender, h.Close, nil
	}
	sm, err := NewSMTP(SMTPOptions{
		Addr: n.smtpAddr, User: n.user, Token: n.token, StartTLS: s.StartTLS,
		TLSConfig: stack.TLSClientConfig(b.pool, s.Insecure), PerConn: s.PerConn, Pipelining: s.Pipelining, Message: msg,
	})
	if err != nil {
		return nil, nil, err
	}
	return sm.NewSender, func() {}, nil
}

func maxConc(s *Settings) int { return slices.Max(s.concurrencies()) }

// Bench is `sesgate-bench load`: per run and concurrency, the thin relay,
// the baseline (the SDK straight to SES) and each gateway's front ends,
// s.Runs times on one stack; the report, with the medians over the runs,
// goes to stdout and to s.JSONPath.
func Bench(ctx context.Context, s *Settings, stdout, stderr io.Writer) error {
	b, err := setUp(ctx, s, stderr, nil)
	if err != nil {
		return err
	}
	defer b.close()

	rep := newReport("load", s, b)
	for run := range s.Runs {
		if s.Runs > 1 {
			fmt.Fprintf(stderr, "run %d of %d\n", run+1, s.Runs)
		}
		one := newReport("load", s, b)
		if one.Phases, err = b.loadPhases(ctx); err != nil {
			return err
		}
		one.ratios()
		rep.Runs = append(rep.Runs, Measurement{Phases: one.Phases, Ratios: one.Ratios})
		b.profiled = true // profile the first run only
	}
	rep.median()
	return rep.write(stdout, s.JSONPath)
}

// subject is what a phase measures besides the load generator: a process
// (CPU per message), its Redis, its profile.
type subject struct {
	store     string
	pid       int
	redisURL  string
	pprofAddr string
}

// loadPhases measures, for each concurrency in turn, the thin relay, the
// baseline and every gateway's front ends once.
func (b *bed) loadPhases(ctx context.Context) ([]Phase, error) {
	s := b.s
	var phases []Phase
	add := func(p Phase, err error) error {
		if err == nil {
			phases = append(phases, p)
		}
		return err
	}
	for _, c := range s.concurrencies() {
		if b.thin != nil {
			msg := b.message()
			sm, err := NewSMTP(SMTPOptions{Addr: b.thin.SMTPAddr, NoAuth: true, PerConn: s.PerConn, Pipelining: s.Pipelining, Message: msg})
			if err != nil {
				return nil, err
			}
			if err := add(b.measure(ctx, "thin-relay", "250", c, msg, subject{pid: b.thin.Pid()}, sm.NewSender)); err != nil {
				return nil, err
			}
		}
		if s.Baseline && b.sdkURL != "" {
			msg := b.message()
			sdk, err := NewSDK(SDKOptions{Endpoint: b.sdkURL, Region: b.sdkReg, Credentials: b.sdkCreds, Message: msg, Conns: c})
			if err != nil {
				return nil, err
			}
			if err := add(b.measure(ctx, "baseline-sdk", "200", c, msg, subject{}, sdk.NewSender)); err != nil {
				return nil, err
			}
		}
		for _, n := range b.nodes {
			sub := subject{store: n.store, pid: n.pid, redisURL: n.redisURL, pprofAddr: n.pprofAddr}
			for _, proto := range []string{"http", "smtp"} {
				if s.Proto != proto && s.Proto != "both" {
					continue
				}
				msg := b.message()
				newSender, done, err := b.gatewaySender(n, proto == "http", msg)
				if err != nil {
					return nil, err
				}
				ok := map[string]string{"http": "200", "smtp": "250"}[proto]
				err = add(b.measure(ctx, proto, ok, c, msg, sub, newSender))
				done()
				if err != nil {
					return nil, err
				}
			}
		}
	}
	return phases, nil
}

// message is the next phase's message: with the Mix, first contacts no
// phase used before.
func (b *bed) message() Message {
	s := b.s
	msg := Message{From: s.From, Domain: s.Domain, Size: s.Size}
	if s.mixed() {
		b.phases++
		msg.Mix = &Mix{KnownFraction: s.KnownFraction, Domains: s.Domains, Domain: s.Domain, Tag: fmt.Sprintf("p%d", b.phases)}
	}
	return msg
}

// Refuse is `sesgate-bench refuse`: HTTP sends of a tenant over its limit
// (self-started: a policy with one tenant at one message per second), so
// nearly every answer is a refusal; the report as for Bench.
func Refuse(ctx context.Context, s *Settings, stdout, stderr io.Writer) error {
	b, err := setUp(ctx, s, stderr, func(bin, dir string) (string, string, string, error) {
		path, token, err := stack.WriteLimitedPolicy(ctx, bin, dir)
		return path, token, "limited", err
	})
	if err != nil {
		return err
	}
	defer b.close()
	rep := newReport("refuse", s, b)
	n := b.nodes[0]
	msg := Message{From: s.From, Domain: s.Domain, Size: s.Size}
	h, err := NewHTTP(HTTPOptions{URL: n.httpURL, Token: n.token, Message: msg, Conns: s.Concurrency, TLSConfig: stack.TLSClientConfig(b.pool, s.Insecure)})
	if err != nil {
		return err
	}
	defer h.Close()
	for run := range s.Runs {
		if s.Runs > 1 {
			fmt.Fprintf(stderr, "run %d of %d\n", run+1, s.Runs)
		}
		p, err := b.measure(ctx, "refuse-http", "429", s.Concurrency, msg,
			subject{store: n.store, pid: n.pid, redisURL: n.redisURL, pprofAddr: n.pprofAddr}, h.NewSender)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, Measurement{Phases: []Phase{p}})
		b.profiled = true
	}
	rep.median()
	return rep.write(stdout, s.JSONPath)
}

// measure runs the warm-up, then the measured phase with c workers and
// the CPU, Redis and SES counters read around it.
func (b *bed) measure(ctx context.Context, name, okCode string, c int, msg Message, sub subject, newSender func(int) (Sender, error)) (Phase, error) {
	s := b.s
	label := name
	if sub.store != "" {
		label += "[" + sub.store + "]"
	}
	label = fmt.Sprintf("%s c=%d", label, c)
	opts := Options{Workers: c, NewSender: newSender, SendTimeout: 30 * time.Second}
	if s.Warmup > 0 {
		w := opts
		w.Count, w.Duration = s.Warmup, min(s.Duration, 10*time.Second)
		if w.Duration == 0 {
			w.Duration = 10 * time.Second
		}
		w.SeqBase = warmupSeqBase
		if _, err := Run(ctx, w); err != nil {
			return Phase{}, fmt.Errorf("%s warm-up: %w", label, err)
		}
	}
	opts.Count, opts.Duration, opts.Rate = s.Count, s.Duration, s.Rate
	if name == "refuse-http" {
		opts.Rate = 0
	}
	var done atomic.Int64
	opts.Done = &done
	if b.ses != nil {
		b.ses.Timer.Reset()
		opts.SESTime = b.ses.Timer.Take
	}

	var errs []error
	var procBefore, selfBefore time.Duration
	var err error
	if sub.pid != 0 {
		procBefore, err = bench.ProcCPU(sub.pid)
		errs = append(errs, err)
	}
	selfBefore, err = bench.SelfCPU()
	errs = append(errs, err)
	var redisBefore bench.RedisSnapshot
	if sub.redisURL != "" {
		redisBefore, err = bench.RedisStats(ctx, sub.redisURL)
		errs = append(errs, err)
	}
	var sesBefore int64
	if b.ses != nil {
		sesBefore = b.ses.Server.Accepted()
	}
	if err := errors.Join(errs...); err != nil {
		return Phase{}, fmt.Errorf("%s: reading counters: %w", label, err)
	}

	var profiled chan error
	if sub.pprofAddr != "" && !b.profiled {
		profiled = make(chan error, 1)
		file := fmt.Sprintf("%s-%s-c%d", name, sub.store, c)
		go func() { profiled <- b.profile(ctx, sub.pprofAddr, file) }()
	}
	bar := startProgress(b.stderr, label, s.Count, s.Duration, &done)
	res, err := Run(ctx, opts)
	bar.stop()
	if profiled != nil {
		if perr := <-profiled; perr != nil {
			fmt.Fprintf(b.stderr, "%s: CPU profile: %v\n", label, perr)
		}
	}
	if err != nil {
		return Phase{}, fmt.Errorf("%s: %w", label, err)
	}

	p := newPhase(name, okCode, res)
	p.Store, p.Concurrency = sub.store, c
	if sub.pid != 0 {
		after, err := bench.ProcCPU(sub.pid)
		if err != nil {
			return Phase{}, fmt.Errorf("%s: process CPU: %w", label, err)
		}
		p.GatewayCPUPerMsgUs = perMsg(float64(after-procBefore)/1e3, res.Sent)
	}
	if selfAfter, err := bench.SelfCPU(); err == nil {
		p.BenchCPUPerMsgUs = perMsg(float64(selfAfter-selfBefore)/1e3, res.Sent)
	}
	if sub.redisURL != "" {
		after, err := bench.RedisStats(ctx, sub.redisURL)
		if err != nil {
			return Phase{}, fmt.Errorf("%s: Redis INFO: %w", label, err)
		}
		p.Redis = redisFigures(after.Sub(redisBefore), res.Sent)
	}
	if b.ses != nil {
		n := b.ses.Server.Accepted() - sesBefore
		p.SESAccepted = &n
	}
	return p, nil
}

// warmupSeqBase numbers a warm-up's sends apart from its phase's (so its
// first contacts are its own).
const warmupSeqBase = 1 << 40

func perMsg(total float64, n int64) *float64 {
	if n == 0 {
		return nil
	}
	v := total / float64(n)
	return &v
}

// hostInfo describes the machine, for the report.
func hostInfo() Host {
	h, _ := os.Hostname()
	return Host{Hostname: h, CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version()}
}

// profile writes a CPU profile of the gateway, --cpu-profile-time long, to
// the --cpu-profile directory as <phase>.pprof.
func (b *bed) profile(ctx context.Context, pprofAddr, phase string) error {
	secs := int(b.s.ProfileDur / time.Second)
	ctx, cancel := context.WithTimeout(ctx, b.s.ProfileDur+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	path := filepath.Join(b.s.ProfileDir, phase+".pprof")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(b.stderr, "%s: CPU profile of the gateway in %s (go tool pprof -top %s)\n", phase, path, path)
	return nil
}
