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
	Concurrency int    // workers
	Count       int64  // messages per phase; 0: until Duration
	Duration    time.Duration
	Rate        float64 // open-loop pacing over all workers; 0: closed loop
	Size        int     // approximate raw message size in bytes
	PerConn     int     // SMTP messages per connection; 0: one connection per worker
	Pipelining  bool    // SMTP PIPELINING
	StartTLS    bool
	Insecure    bool  // do not verify the gateway's certificate
	Warmup      int64 // messages before each phase, not counted
	Baseline    bool  // also send straight to SES with the SDK
	SESLatency  time.Duration
	Sesgate     string // the sesgate binary to start (stack.Binary)
	RedisURL    string
	StartRedis  bool
	LogLevel    string // the started gateway's
	JSONPath    string // write the report as JSON here
	Keep        bool   // keep the temporary directory
	ProfileDir  string // CPU profiles of the started gateway, one per phase
	ProfileDur  time.Duration
	Runs        int
	From        string
	Domain      string // recipients are rcpt<N>@Domain
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

// bed is what a run drives: a started stack or a target.
type bed struct {
	s        *Settings
	stderr   io.Writer
	dir      string
	ses      *stack.SES // nil for a target
	gw       *stack.Gateway
	redis    *stack.Proc
	redisURL string
	httpURL  string // POST URL
	smtpAddr string
	token    string
	user     string
	pid      int            // gateway pid, 0: unknown
	pool     *x509.CertPool // trusts the generated certificate
	sdkCreds aws.CredentialsProvider
	sdkURL   string
	sdkReg   string
	// pprofAddr serves the gateway's profiles (--cpu-profile); profiled
	// is set after the first run.
	pprofAddr string
	profiled  bool
}

func (b *bed) close() {
	if b.gw != nil {
		b.gw.Stop()
	}
	if b.redis != nil {
		b.redis.Stop()
	}
	if b.ses != nil {
		b.ses.Close()
	}
	switch {
	case b.dir != "" && b.s.Keep:
		fmt.Fprintf(b.stderr, "kept %s (gateway.log, redis.log, policy)\n", b.dir)
	case b.dir != "":
		_ = os.RemoveAll(b.dir)
	}
}

// setUp starts the stack (or checks the target). policy, when set, writes
// the policy file and returns the token to use.
func setUp(ctx context.Context, s *Settings, stderr io.Writer, policy func(bin, dir string) (string, string, error)) (_ *bed, err error) {
	b := &bed{s: s, stderr: stderr, redisURL: s.RedisURL, user: s.User}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if s.Target() {
		b.token, b.pid = s.Token, s.GatewayPID
		if s.HTTPURL != "" {
			b.httpURL = strings.TrimRight(s.HTTPURL, "/") + "/v1/messages"
		}
		b.smtpAddr = s.SMTPAddr
		if s.SESURL != "" {
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return nil, fmt.Errorf("AWS config for the baseline: %w", err)
			}
			b.sdkCreds, b.sdkURL, b.sdkReg = cfg.Credentials, s.SESURL, cfg.Region
		}
		return b, nil
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
	if s.StartRedis {
		if b.redis, b.redisURL, err = stack.StartRedis(ctx, b.dir); err != nil {
			return nil, err
		}
	}
	o := stack.GatewayOptions{Bin: bin, Dir: b.dir, SESURL: b.ses.URL, RedisURL: b.redisURL, LogLevel: s.LogLevel}
	if s.ProfileDir != "" {
		if err := os.MkdirAll(s.ProfileDir, 0o755); err != nil {
			return nil, err
		}
		if b.pprofAddr, err = stack.FreeAddr(); err != nil {
			return nil, err
		}
		o.Env = append(o.Env, "SESGATE_PPROF_ADDR="+b.pprofAddr)
	}
	if s.StartTLS {
		if o.TLSCert, o.TLSKey, b.pool, err = stack.WriteCert(b.dir); err != nil {
			return nil, err
		}
	}
	var policyToken string
	if policy != nil {
		if o.ConfigPath, policyToken, err = policy(bin, b.dir); err != nil {
			return nil, err
		}
		b.user = "limited"
	}
	if b.gw, err = stack.StartGateway(ctx, o); err != nil {
		return nil, err
	}
	b.token = b.gw.Token
	if policyToken != "" {
		b.token = policyToken
	}
	b.pid = b.gw.Pid()
	b.httpURL = b.gw.HTTPURL + "/v1/messages"
	b.smtpAddr = b.gw.SMTPAddr
	redis := "no redis"
	if b.redisURL != "" {
		redis = "redis " + b.redisURL
	}
	fmt.Fprintf(stderr, "started: SES server %s (latency %s), gateway pid %d (SMTP %s, HTTP %s), %s\n",
		b.ses.URL, s.SESLatency, b.pid, b.smtpAddr, b.gw.HTTPURL, redis)
	return b, nil
}

// Bench is `sesgate-bench load`: the baseline (the SDK straight to SES)
// and the gateway's front ends, s.Runs times on one stack; the report, with
// the medians over the runs, goes to stdout and to s.JSONPath.
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

// loadPhases measures the baseline and the gateway's front ends once.
func (b *bed) loadPhases(ctx context.Context) ([]Phase, error) {
	s := b.s
	var phases []Phase
	msg := Message{From: s.From, Domain: s.Domain, Size: s.Size}
	if s.Baseline && b.sdkURL != "" {
		sdk, err := NewSDK(SDKOptions{Endpoint: b.sdkURL, Region: b.sdkReg, Credentials: b.sdkCreds, Message: msg, Conns: s.Concurrency})
		if err != nil {
			return nil, err
		}
		p, err := b.measure(ctx, "baseline-sdk", "200", false, sdk.NewSender)
		if err != nil {
			return nil, err
		}
		phases = append(phases, p)
	}
	if s.Proto == "http" || s.Proto == "both" {
		h, err := NewHTTP(HTTPOptions{URL: b.httpURL, Token: b.token, Message: msg, Conns: s.Concurrency, TLSConfig: stack.TLSClientConfig(b.pool, s.Insecure)})
		if err != nil {
			return nil, err
		}
		p, err := b.measure(ctx, "http", "200", true, h.NewSender)
		h.Close()
		if err != nil {
			return nil, err
		}
		phases = append(phases, p)
	}
	if s.Proto == "smtp" || s.Proto == "both" {
		sm, err := NewSMTP(SMTPOptions{
			Addr: b.smtpAddr, User: b.user, Token: b.token, StartTLS: s.StartTLS,
			TLSConfig: stack.TLSClientConfig(b.pool, s.Insecure), PerConn: s.PerConn, Pipelining: s.Pipelining, Message: msg,
		})
		if err != nil {
			return nil, err
		}
		p, err := b.measure(ctx, "smtp", "250", true, sm.NewSender)
		if err != nil {
			return nil, err
		}
		phases = append(phases, p)
	}
	return phases, nil
}

// Refuse is `sesgate-bench refuse`: HTTP sends of a tenant over its limit
// (self-started: a policy with one tenant at one message per second), so
// nearly every answer is a refusal; the report as for Bench.
func Refuse(ctx context.Context, s *Settings, stdout, stderr io.Writer) error {
	b, err := setUp(ctx, s, stderr, func(bin, dir string) (string, string, error) {
		return stack.WriteLimitedPolicy(ctx, bin, dir)
	})
	if err != nil {
		return err
	}
	defer b.close()
	rep := newReport("refuse", s, b)
	h, err := NewHTTP(HTTPOptions{URL: b.httpURL, Token: b.token,
		Message: Message{From: s.From, Domain: s.Domain, Size: s.Size}, Conns: s.Concurrency, TLSConfig: stack.TLSClientConfig(b.pool, s.Insecure)})
	if err != nil {
		return err
	}
	defer h.Close()
	for run := range s.Runs {
		if s.Runs > 1 {
			fmt.Fprintf(stderr, "run %d of %d\n", run+1, s.Runs)
		}
		p, err := b.measure(ctx, "refuse-http", "429", true, h.NewSender)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, Measurement{Phases: []Phase{p}})
		b.profiled = true
	}
	rep.median()
	return rep.write(stdout, s.JSONPath)
}

// measure runs the warm-up, then the measured phase with the CPU, Redis and
// SES counters read around it.
func (b *bed) measure(ctx context.Context, name, okCode string, gateway bool, newSender func(int) (Sender, error)) (Phase, error) {
	s := b.s
	opts := Options{Workers: s.Concurrency, NewSender: newSender, SendTimeout: 30 * time.Second}
	if s.Warmup > 0 {
		w := opts
		w.Count, w.Duration = s.Warmup, min(s.Duration, 10*time.Second)
		if w.Duration == 0 {
			w.Duration = 10 * time.Second
		}
		if _, err := Run(ctx, w); err != nil {
			return Phase{}, fmt.Errorf("%s warm-up: %w", name, err)
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
	var gwBefore, selfBefore time.Duration
	var err error
	if gateway && b.pid != 0 {
		gwBefore, err = bench.ProcCPU(b.pid)
		errs = append(errs, err)
	}
	selfBefore, err = bench.SelfCPU()
	errs = append(errs, err)
	var redisBefore bench.RedisSnapshot
	if gateway && b.redisURL != "" {
		redisBefore, err = bench.RedisStats(ctx, b.redisURL)
		errs = append(errs, err)
	}
	var sesBefore int64
	if b.ses != nil {
		sesBefore = b.ses.Server.Accepted()
	}
	if err := errors.Join(errs...); err != nil {
		return Phase{}, fmt.Errorf("%s: reading counters: %w", name, err)
	}

	var profiled chan error
	if gateway && b.pprofAddr != "" && !b.profiled {
		profiled = make(chan error, 1)
		go func() { profiled <- b.profile(ctx, name) }()
	}
	bar := startProgress(b.stderr, name, s.Count, s.Duration, &done)
	res, err := Run(ctx, opts)
	bar.stop()
	if profiled != nil {
		if perr := <-profiled; perr != nil {
			fmt.Fprintf(b.stderr, "%s: CPU profile: %v\n", name, perr)
		}
	}
	if err != nil {
		return Phase{}, fmt.Errorf("%s: %w", name, err)
	}

	p := newPhase(name, okCode, res)
	if gateway && b.pid != 0 {
		after, err := bench.ProcCPU(b.pid)
		if err != nil {
			return Phase{}, fmt.Errorf("%s: gateway CPU: %w", name, err)
		}
		p.GatewayCPUPerMsgUs = perMsg(float64(after-gwBefore)/1e3, res.Sent)
	}
	if selfAfter, err := bench.SelfCPU(); err == nil {
		p.BenchCPUPerMsgUs = perMsg(float64(selfAfter-selfBefore)/1e3, res.Sent)
	}
	if gateway && b.redisURL != "" {
		after, err := bench.RedisStats(ctx, b.redisURL)
		if err != nil {
			return Phase{}, fmt.Errorf("%s: Redis INFO: %w", name, err)
		}
		p.Redis = redisFigures(after.Sub(redisBefore), res.Sent)
	}
	if b.ses != nil {
		n := b.ses.Server.Accepted() - sesBefore
		p.SESAccepted = &n
	}
	return p, nil
}

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
func (b *bed) profile(ctx context.Context, phase string) error {
	secs := int(b.s.ProfileDur / time.Second)
	ctx, cancel := context.WithTimeout(ctx, b.s.ProfileDur+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, secs), nil)
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
