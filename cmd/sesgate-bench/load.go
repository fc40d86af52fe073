package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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
	"github.com/sesgate/sesgate/internal/bench/load"
)

// Bounds on the flags.
const (
	maxConcurrency = 512
	maxCount       = 10_000_000
	maxDuration    = 10 * time.Minute
	maxRate        = 1_000_000
	maxWarmup      = 100_000
	maxRuns        = 20
)

// settings are the flags of load and refuse.
type settings struct {
	proto      string
	conc       int
	count      int64
	duration   time.Duration
	rate       float64
	size       int
	perConn    int
	pipelining bool
	startTLS   bool
	insecure   bool
	warmup     int64
	baseline   bool
	sesLatency time.Duration
	sesgate    string
	redisURL   string
	startRedis bool
	logLevel   string
	jsonPath   string
	keep       bool
	profileDir string
	profileDur time.Duration
	runs       int
	from       string
	domain     string
	// target
	httpURL    string
	smtpAddr   string
	token      string
	user       string
	gatewayPID int
	sesURL     string
}

func (s *settings) target() bool { return s.httpURL != "" || s.smtpAddr != "" }

func parseSettings(cmd string, args []string, stderr io.Writer) (*settings, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &settings{}
	refuse := cmd == "refuse"
	if !refuse {
		fs.StringVar(&s.proto, "proto", "both", "http, smtp or both")
		fs.Float64Var(&s.rate, "rate", 0, "open-loop pacing in messages per second over all workers; 0: as fast as answers come")
		fs.IntVar(&s.perConn, "per-conn", 0, "SMTP messages per connection before a new one; 0: one connection per worker for the whole phase")
		fs.BoolVar(&s.pipelining, "smtp-pipelining", false, "SMTP: send MAIL, RCPT and DATA in one write (PIPELINING), as MTAs do")
		fs.BoolVar(&s.startTLS, "starttls", false, "SMTP STARTTLS (self-started: the gateway gets a generated certificate)")
		fs.BoolVar(&s.insecure, "insecure-skip-verify", false, "do not verify the gateway's certificate (a self-signed target)")
		fs.BoolVar(&s.baseline, "baseline", true, "also send straight to the SES server with the AWS SDK (needs the in-process SES server or --ses-endpoint)")
		fs.StringVar(&s.smtpAddr, "smtp", "", "target: the gateway's SMTP host:port")
		fs.StringVar(&s.user, "user", "dev", "target: SMTP AUTH username (the tenant id)")
		fs.StringVar(&s.sesURL, "ses-endpoint", "", "target: SES endpoint for the baseline, credentials from the AWS environment (sends real mail to real SES if so pointed)")
	}
	defCount, defDur := int64(5000), 20*time.Second
	if refuse {
		defCount, defDur = 0, 5*time.Second
	}
	fs.IntVar(&s.conc, "c", 16, "concurrent workers (HTTP requests in flight, SMTP connections, SDK calls)")
	fs.Int64Var(&s.count, "n", defCount, "messages per phase; 0: until --duration")
	fs.DurationVar(&s.duration, "duration", defDur, "time cap per phase; 0: until -n")
	fs.IntVar(&s.size, "size", 1000, "approximate raw message size in bytes")
	fs.Int64Var(&s.warmup, "warmup", 200, "messages sent before each phase, not counted")
	fs.DurationVar(&s.sesLatency, "ses-latency", 0, "latency the in-process SES server adds to every request")
	fs.StringVar(&s.sesgate, "sesgate", "", "sesgate binary to start; default: go build ./cmd/sesgate from the repository, else sesgate on PATH")
	fs.StringVar(&s.redisURL, "redis-url", "", "Redis the gateway uses (SESGATE_REDIS_URL); read with INFO before and after each phase")
	fs.BoolVar(&s.startRedis, "start-redis", false, "start a redis-server on a free loopback port for the gateway")
	fs.StringVar(&s.logLevel, "gateway-log-level", "info", "log level of the started gateway (its log goes to a file)")
	fs.StringVar(&s.jsonPath, "json", "", "write the report as JSON to this file")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (gateway and redis logs, policy file) and print its name")
	fs.IntVar(&s.runs, "runs", 1, "repeat the measurement this many times on the same stack; the summary shows the median of each figure")
	fs.StringVar(&s.profileDir, "cpu-profile", "", "write a CPU profile of the self-started gateway during each gateway phase to DIR/<phase>.pprof (SESGATE_PPROF_ADDR)")
	fs.DurationVar(&s.profileDur, "cpu-profile-time", 5*time.Second, "length of each CPU profile, from the start of the phase")
	fs.StringVar(&s.from, "from", "bench@example.com", "sender address")
	fs.StringVar(&s.domain, "to-domain", "example.net", "recipients are rcpt<N>@ this domain")
	fs.StringVar(&s.httpURL, "http", "", "target: the gateway's HTTP base URL (http://host:port)")
	fs.StringVar(&s.token, "token", "", "target: the tenant token")
	fs.IntVar(&s.gatewayPID, "gateway-pid", 0, "target: pid of the gateway process, for CPU per message (same host)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{Msg: cmd + " takes no arguments"}
	}
	if refuse {
		s.proto = "http"
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	switch s.proto {
	case "http", "smtp", "both":
	default:
		bad("--proto %q: want http, smtp or both", s.proto)
	}
	if s.conc < 1 || s.conc > maxConcurrency {
		bad("-c must be 1 to %d", maxConcurrency)
	}
	if s.count < 0 || s.count > maxCount {
		bad("-n must be 0 to %d", maxCount)
	}
	if s.duration < 0 || s.duration > maxDuration {
		bad("--duration must be 0 to %s", maxDuration)
	}
	if s.count == 0 && s.duration == 0 {
		bad("give -n or --duration: every run must end by itself")
	}
	if s.rate < 0 || s.rate > maxRate {
		bad("--rate must be 0 to %d", maxRate)
	}
	if s.size < 1 || s.size > load.MaxMessageSize {
		bad("--size must be 1 to %d", load.MaxMessageSize)
	}
	if s.perConn < 0 {
		bad("--per-conn must not be negative")
	}
	if s.warmup < 0 || s.warmup > maxWarmup {
		bad("--warmup must be 0 to %d", maxWarmup)
	}
	if s.sesLatency < 0 || s.sesLatency > time.Minute {
		bad("--ses-latency must be 0 to 1m")
	}
	if s.runs < 1 || s.runs > maxRuns {
		bad("--runs must be 1 to %d", maxRuns)
	}
	if s.profileDur < time.Second || s.profileDur > time.Minute {
		bad("--cpu-profile-time must be 1s to 1m")
	}
	if s.startRedis && s.redisURL != "" {
		bad("--start-redis and --redis-url exclude each other")
	}
	if s.target() {
		if s.token == "" {
			bad("a target needs --token")
		}
		if s.startRedis || s.sesgate != "" || s.sesLatency != 0 || s.profileDir != "" {
			bad("--start-redis, --sesgate, --ses-latency and --cpu-profile are for a self-started gateway, not a target")
		}
		if s.httpURL != "" {
			if u, err := url.Parse(s.httpURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("--http %q: want http://host:port", s.httpURL)
			}
		}
		if s.smtpAddr != "" {
			if _, _, err := net.SplitHostPort(s.smtpAddr); err != nil {
				bad("--smtp %q: want host:port", s.smtpAddr)
			}
		}
		if s.proto == "both" { // drive what was given
			switch {
			case s.httpURL == "":
				s.proto = "smtp"
			case s.smtpAddr == "":
				s.proto = "http"
			}
		}
		if (s.proto == "http" && s.httpURL == "") || (s.proto == "smtp" && s.smtpAddr == "") {
			bad("--proto %s needs its target address", s.proto)
		}
	} else if s.token != "" || s.gatewayPID != 0 || s.sesURL != "" {
		bad("--token, --gateway-pid and --ses-endpoint need a target (--http or --smtp)")
	}
	if len(problems) > 0 {
		return nil, usageError{Msg: strings.Join(problems, "; ")}
	}
	return s, nil
}

// bed is what a run drives: a started stack or a target.
type bed struct {
	s        *settings
	stderr   io.Writer
	dir      string
	ses      *sesServer // nil for a target
	gw       *gatewayProc
	redis    *proc
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
		b.gw.stop()
	}
	if b.redis != nil {
		b.redis.stop()
	}
	if b.ses != nil {
		b.ses.close()
	}
	switch {
	case b.dir != "" && b.s.keep:
		fmt.Fprintf(b.stderr, "kept %s (gateway.log, redis.log, policy)\n", b.dir)
	case b.dir != "":
		_ = os.RemoveAll(b.dir)
	}
}

// setUp starts the stack (or checks the target). policy, when set, writes
// the policy file and returns the token to use.
func setUp(ctx context.Context, s *settings, stderr io.Writer, policy func(bin, dir string) (string, string, error)) (_ *bed, err error) {
	b := &bed{s: s, stderr: stderr, redisURL: s.redisURL, user: s.user}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if s.target() {
		b.token, b.pid = s.token, s.gatewayPID
		if s.httpURL != "" {
			b.httpURL = strings.TrimRight(s.httpURL, "/") + "/v1/messages"
		}
		b.smtpAddr = s.smtpAddr
		if s.sesURL != "" {
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return nil, fmt.Errorf("AWS config for the baseline: %w", err)
			}
			b.sdkCreds, b.sdkURL, b.sdkReg = cfg.Credentials, s.sesURL, cfg.Region
		}
		return b, nil
	}

	if b.dir, err = os.MkdirTemp("", "sesgate-bench-"); err != nil {
		return nil, err
	}
	bin, err := sesgateBinary(ctx, s.sesgate, b.dir, stderr)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	if b.ses, err = startSES(s.sesLatency, quiet); err != nil {
		return nil, err
	}
	b.sdkCreds = credentials.NewStaticCredentialsProvider(sesAccessKey, sesSecretKey, "")
	b.sdkURL, b.sdkReg = b.ses.url, sesRegion
	if s.startRedis {
		if b.redis, b.redisURL, err = startRedis(ctx, b.dir); err != nil {
			return nil, err
		}
	}
	o := gatewayOptions{bin: bin, dir: b.dir, sesURL: b.ses.url, redisURL: b.redisURL, logLevel: s.logLevel}
	if s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return nil, err
		}
		if b.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		o.env = append(o.env, "SESGATE_PPROF_ADDR="+b.pprofAddr)
	}
	if s.startTLS {
		if o.tlsCert, o.tlsKey, b.pool, err = writeCert(b.dir); err != nil {
			return nil, err
		}
	}
	var policyToken string
	if policy != nil {
		if o.configPath, policyToken, err = policy(bin, b.dir); err != nil {
			return nil, err
		}
		b.user = "limited"
	}
	if b.gw, err = startGateway(ctx, o); err != nil {
		return nil, err
	}
	b.token = b.gw.token
	if policyToken != "" {
		b.token = policyToken
	}
	b.pid = b.gw.pid()
	b.httpURL = b.gw.httpURL + "/v1/messages"
	b.smtpAddr = b.gw.smtpAddr
	redis := "no redis"
	if b.redisURL != "" {
		redis = "redis " + b.redisURL
	}
	fmt.Fprintf(stderr, "started: SES server %s (latency %s), gateway pid %d (SMTP %s, HTTP %s), %s\n",
		b.ses.url, s.sesLatency, b.pid, b.smtpAddr, b.gw.httpURL, redis)
	return b, nil
}

func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings("load", args, stderr)
	if err != nil {
		return err
	}
	b, err := setUp(ctx, s, stderr, nil)
	if err != nil {
		return err
	}
	defer b.close()

	rep := newReport("load", s, b)
	for run := range s.runs {
		if s.runs > 1 {
			fmt.Fprintf(stderr, "run %d of %d\n", run+1, s.runs)
		}
		one := newReport("load", s, b)
		if one.Phases, err = b.loadPhases(ctx); err != nil {
			return err
		}
		one.ratios()
		rep.Runs = append(rep.Runs, Run{Phases: one.Phases, Ratios: one.Ratios})
		b.profiled = true // profile the first run only
	}
	rep.median()
	return rep.write(stdout, s.jsonPath)
}

// loadPhases measures the baseline and the gateway's front ends once.
func (b *bed) loadPhases(ctx context.Context) ([]Phase, error) {
	s := b.s
	var phases []Phase
	msg := load.Message{From: s.from, Domain: s.domain, Size: s.size}
	if s.baseline && b.sdkURL != "" {
		sdk, err := load.NewSDK(load.SDKOptions{Endpoint: b.sdkURL, Region: b.sdkReg, Credentials: b.sdkCreds, Message: msg, Conns: s.conc})
		if err != nil {
			return nil, err
		}
		p, err := b.measure(ctx, "baseline-sdk", "200", false, sdk.NewSender)
		if err != nil {
			return nil, err
		}
		phases = append(phases, p)
	}
	if s.proto == "http" || s.proto == "both" {
		h, err := load.NewHTTP(load.HTTPOptions{URL: b.httpURL, Token: b.token, Message: msg, Conns: s.conc, TLSConfig: tlsClientConfig(b.pool, s.insecure)})
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
	if s.proto == "smtp" || s.proto == "both" {
		sm, err := load.NewSMTP(load.SMTPOptions{
			Addr: b.smtpAddr, User: b.user, Token: b.token, StartTLS: s.startTLS,
			TLSConfig: tlsClientConfig(b.pool, s.insecure), PerConn: s.perConn, Pipelining: s.pipelining, Message: msg,
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

func refuseCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings("refuse", args, stderr)
	if err != nil {
		return err
	}
	if s.target() && s.httpURL == "" {
		return usageError{Msg: "refuse drives HTTP: give --http"}
	}
	b, err := setUp(ctx, s, stderr, func(bin, dir string) (string, string, error) {
		return writeLimitedPolicy(ctx, bin, dir)
	})
	if err != nil {
		return err
	}
	defer b.close()
	rep := newReport("refuse", s, b)
	h, err := load.NewHTTP(load.HTTPOptions{URL: b.httpURL, Token: b.token,
		Message: load.Message{From: s.from, Domain: s.domain, Size: s.size}, Conns: s.conc, TLSConfig: tlsClientConfig(b.pool, s.insecure)})
	if err != nil {
		return err
	}
	defer h.Close()
	for run := range s.runs {
		if s.runs > 1 {
			fmt.Fprintf(stderr, "run %d of %d\n", run+1, s.runs)
		}
		p, err := b.measure(ctx, "refuse-http", "429", true, h.NewSender)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, Run{Phases: []Phase{p}})
		b.profiled = true
	}
	rep.median()
	return rep.write(stdout, s.jsonPath)
}

// measure runs the warm-up, then the measured phase with the CPU, Redis and
// SES counters read around it.
func (b *bed) measure(ctx context.Context, name, okCode string, gateway bool, newSender func(int) (load.Sender, error)) (Phase, error) {
	s := b.s
	opts := load.Options{Workers: s.conc, NewSender: newSender, SendTimeout: 30 * time.Second}
	if s.warmup > 0 {
		w := opts
		w.Count, w.Duration = s.warmup, min(s.duration, 10*time.Second)
		if w.Duration == 0 {
			w.Duration = 10 * time.Second
		}
		if _, err := load.Run(ctx, w); err != nil {
			return Phase{}, fmt.Errorf("%s warm-up: %w", name, err)
		}
	}
	opts.Count, opts.Duration, opts.Rate = s.count, s.duration, s.rate
	if name == "refuse-http" {
		opts.Rate = 0
	}
	var done atomic.Int64
	opts.Done = &done
	if b.ses != nil {
		b.ses.timer.Reset()
		opts.SESTime = b.ses.timer.Take
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
		sesBefore = b.ses.srv.Accepted()
	}
	if err := errors.Join(errs...); err != nil {
		return Phase{}, fmt.Errorf("%s: reading counters: %w", name, err)
	}

	var profiled chan error
	if gateway && b.pprofAddr != "" && !b.profiled {
		profiled = make(chan error, 1)
		go func() { profiled <- b.profile(ctx, name) }()
	}
	bar := startProgress(b.stderr, name, s.count, s.duration, &done)
	res, err := load.Run(ctx, opts)
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
		n := b.ses.srv.Accepted() - sesBefore
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
	secs := int(b.s.profileDur / time.Second)
	ctx, cancel := context.WithTimeout(ctx, b.s.profileDur+10*time.Second)
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
	path := filepath.Join(b.s.profileDir, phase+".pprof")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(b.stderr, "%s: CPU profile of the gateway in %s (go tool pprof -top %s)\n", phase, path, path)
	return nil
}
