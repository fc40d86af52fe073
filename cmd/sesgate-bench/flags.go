package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesgate/sesgate/internal/bench/drill"
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
	maxLevels      = 8 // concurrencies in one -c list
)

// parseSettings parses the flags of load or refuse (cmd) and checks them
// all, reporting every problem at once.
func parseSettings(cmd string, args []string, stderr io.Writer) (*load.Settings, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &load.Settings{}
	refuse := cmd == "refuse"
	var concList, storeList string
	if refuse {
		fs.IntVar(&s.Concurrency, "c", 16, "concurrent workers (HTTP requests in flight)")
	} else {
		fs.StringVar(&concList, "c", "16", "concurrent workers (HTTP requests in flight, SMTP connections, SDK calls); a list (1,8,32) measures each in every run")
		fs.StringVar(&storeList, "store", "", "self-started gateways, one per store, measured in turn: redis, embedded or redis,embedded (redis starts a redis-server unless --redis-url); default: redis with --start-redis or --redis-url, else embedded")
		fs.StringVar(&s.Tenant, "tenant", "full", "scenario: full (a tenant with every limit set, recipients mixing known addresses and first contacts) or dev (the dev tenant, no limits)")
		fs.Float64Var(&s.KnownFraction, "known-fraction", 0.5, "full: share of recipients from a pool mailed before the runs; the rest are first contacts")
		fs.IntVar(&s.Domains, "domains", 50, "full: recipient domains the sends spread over")
		fs.BoolVar(&s.ThinRelay, "thin-relay", true, "also measure the thin relay (go-smtp -> sesv2, no auth, no policy; a child process) over SMTP; self-started only")
		fs.StringVar(&s.Proto, "proto", "both", "http, smtp or both")
		fs.Float64Var(&s.Rate, "rate", 0, "open-loop pacing in messages per second over all workers; 0: as fast as answers come")
		fs.IntVar(&s.PerConn, "per-conn", 0, "SMTP messages per connection before a new one; 0: one connection per worker for the whole phase")
		fs.BoolVar(&s.Pipelining, "smtp-pipelining", false, "SMTP: send MAIL, RCPT and DATA in one write (PIPELINING), as MTAs do")
		fs.BoolVar(&s.StartTLS, "starttls", false, "SMTP STARTTLS (self-started: the gateway gets a generated certificate)")
		fs.BoolVar(&s.Insecure, "insecure-skip-verify", false, "do not verify the gateway's certificate (a self-signed target)")
		fs.BoolVar(&s.Baseline, "baseline", true, "also send straight to the SES server with the AWS SDK (needs the in-process SES server or --ses-endpoint)")
		fs.StringVar(&s.SMTPAddr, "smtp", "", "target: the gateway's SMTP host:port")
		fs.StringVar(&s.User, "user", "dev", "target: SMTP AUTH username (the tenant id)")
		fs.StringVar(&s.SESURL, "ses-endpoint", "", "target: SES endpoint for the baseline, credentials from the AWS environment (sends real mail to real SES if so pointed)")
	}
	defCount, defDur := int64(5000), 20*time.Second
	if refuse {
		defCount, defDur = 0, 5*time.Second
	}
	fs.Int64Var(&s.Count, "n", defCount, "messages per phase; 0: until --duration")
	fs.DurationVar(&s.Duration, "duration", defDur, "time cap per phase; 0: until -n")
	fs.IntVar(&s.Size, "size", 1000, "approximate raw message size in bytes")
	fs.Int64Var(&s.Warmup, "warmup", 200, "messages sent before each phase, not counted")
	fs.DurationVar(&s.SESLatency, "ses-latency", 0, "latency the in-process SES server adds to every request")
	fs.StringVar(&s.Sesgate, "sesgate", "", "sesgate binary to start; default: go build ./cmd/sesgate from the repository, else sesgate on PATH")
	fs.StringVar(&s.RedisURL, "redis-url", "", "Redis the gateway uses (SESGATE_REDIS_URL); read with INFO before and after each phase")
	fs.BoolVar(&s.StartRedis, "start-redis", false, "start a redis-server on a free loopback port for the gateway")
	fs.StringVar(&s.LogLevel, "gateway-log-level", "info", "log level of the started gateway (its log goes to a file)")
	fs.StringVar(&s.JSONPath, "json", "", "write the report as JSON to this file")
	fs.BoolVar(&s.Keep, "keep", false, "keep the temporary directory (gateway and redis logs, policy file) and print its name")
	fs.IntVar(&s.Runs, "runs", 1, "repeat the measurement this many times on the same stack; the summary shows the median of each figure")
	fs.StringVar(&s.ProfileDir, "cpu-profile", "", "write a CPU profile of the self-started gateway during each gateway phase to DIR/<phase>-<store>-c<C>.pprof (SESGATE_PPROF_ADDR)")
	fs.DurationVar(&s.ProfileDur, "cpu-profile-time", 5*time.Second, "length of each CPU profile, from the start of the phase")
	fs.StringVar(&s.From, "from", "bench@example.com", "sender address")
	fs.StringVar(&s.Domain, "to-domain", "example.net", "recipients are rcpt<N>@ this domain")
	fs.StringVar(&s.HTTPURL, "http", "", "target: the gateway's HTTP base URL (http://host:port)")
	fs.StringVar(&s.Token, "token", "", "target: the tenant token")
	fs.IntVar(&s.GatewayPID, "gateway-pid", 0, "target: pid of the gateway process, for CPU per message (same host)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{Msg: cmd + " takes no arguments"}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var problems []string
	if refuse {
		s.Proto, s.Tenant = "http", "dev"
		if s.Concurrency < 1 || s.Concurrency > maxConcurrency {
			problems = append(problems, fmt.Sprintf("-c must be 1 to %d", maxConcurrency))
		}
	} else {
		var cp []string
		s.Concurrencies, cp = parseConcurrencies(concList)
		problems = append(problems, cp...)
		if len(s.Concurrencies) > 0 {
			s.Concurrency = s.Concurrencies[0]
		}
		var sp []string
		s.Stores, sp = parseStores(storeList)
		problems = append(problems, sp...)
	}
	problems = append(problems, check(s, set)...)
	if len(problems) > 0 {
		return nil, usageError{Msg: strings.Join(problems, "; ")}
	}
	return s, nil
}

// check returns every problem of the settings; with a target and the
// default --proto both, it drives what the target has.
func check(s *load.Settings, set map[string]bool) (problems []string) {
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	switch s.Tenant {
	case "full", "dev":
	default:
		bad("--tenant %q: want full or dev", s.Tenant)
	}
	if s.Tenant == "full" && (s.KnownFraction < 0 || s.KnownFraction > 1) {
		bad("--known-fraction must be 0 to 1")
	}
	if s.Tenant == "full" && (s.Domains < 1 || s.Domains > load.MaxDomains) {
		bad("--domains must be 1 to %d", load.MaxDomains)
	}
	if s.Tenant == "dev" && (set["known-fraction"] || set["domains"]) {
		bad("--known-fraction and --domains are for --tenant full")
	}
	if s.ThinRelay && set["thin-relay"] && s.Proto == "http" {
		bad("--thin-relay is an SMTP phase: not with --proto http")
	}
	if len(s.Stores) > 0 && !slices.Contains(s.Stores, "redis") && (s.StartRedis || s.RedisURL != "") {
		bad("--start-redis and --redis-url are for --store redis")
	}
	switch s.Proto {
	case "http", "smtp", "both":
	default:
		bad("--proto %q: want http, smtp or both", s.Proto)
	}
	if s.Count < 0 || s.Count > maxCount {
		bad("-n must be 0 to %d", maxCount)
	}
	if s.Duration < 0 || s.Duration > maxDuration {
		bad("--duration must be 0 to %s", maxDuration)
	}
	if s.Count == 0 && s.Duration == 0 {
		bad("give -n or --duration: every run must end by itself")
	}
	if s.Rate < 0 || s.Rate > maxRate {
		bad("--rate must be 0 to %d", maxRate)
	}
	if s.Size < 1 || s.Size > load.MaxMessageSize {
		bad("--size must be 1 to %d", load.MaxMessageSize)
	}
	if s.PerConn < 0 {
		bad("--per-conn must not be negative")
	}
	if s.Warmup < 0 || s.Warmup > maxWarmup {
		bad("--warmup must be 0 to %d", maxWarmup)
	}
	if s.SESLatency < 0 || s.SESLatency > time.Minute {
		bad("--ses-latency must be 0 to 1m")
	}
	if s.Runs < 1 || s.Runs > maxRuns {
		bad("--runs must be 1 to %d", maxRuns)
	}
	if s.ProfileDur < time.Second || s.ProfileDur > time.Minute {
		bad("--cpu-profile-time must be 1s to 1m")
	}
	if s.StartRedis && s.RedisURL != "" {
		bad("--start-redis and --redis-url exclude each other")
	}
	if s.Target() {
		if s.Token == "" {
			bad("a target needs --token")
		}
		if s.StartRedis || s.Sesgate != "" || s.SESLatency != 0 || s.ProfileDir != "" {
			bad("--start-redis, --sesgate, --ses-latency and --cpu-profile are for a self-started gateway, not a target")
		}
		if len(s.Stores) > 0 || (set["thin-relay"] && s.ThinRelay) {
			bad("--store and --thin-relay are for a self-started gateway, not a target")
		}
		s.ThinRelay = false // it needs the in-process SES server
		if s.HTTPURL != "" {
			if u, err := url.Parse(s.HTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("--http %q: want http://host:port", s.HTTPURL)
			}
		}
		if s.SMTPAddr != "" {
			if _, _, err := net.SplitHostPort(s.SMTPAddr); err != nil {
				bad("--smtp %q: want host:port", s.SMTPAddr)
			}
		}
		if s.Proto == "both" { // drive what was given
			switch {
			case s.HTTPURL == "":
				s.Proto = "smtp"
			case s.SMTPAddr == "":
				s.Proto = "http"
			}
		}
		if (s.Proto == "http" && s.HTTPURL == "") || (s.Proto == "smtp" && s.SMTPAddr == "") {
			bad("--proto %s needs its target address", s.Proto)
		}
	} else if s.Token != "" || s.GatewayPID != 0 || s.SESURL != "" {
		bad("--token, --gateway-pid and --ses-endpoint need a target (--http or --smtp)")
	}
	return problems
}

// parseConcurrencies reads -c: one worker count or a list of distinct
// ones.
func parseConcurrencies(v string) (cs []int, problems []string) {
	parts := strings.Split(v, ",")
	if len(parts) > maxLevels {
		return nil, []string{fmt.Sprintf("-c lists at most %d concurrencies", maxLevels)}
	}
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		switch {
		case err != nil:
			return nil, []string{fmt.Sprintf("-c %q: want a number or a list like 1,8,32", v)}
		case n < 1 || n > maxConcurrency:
			return nil, []string{fmt.Sprintf("-c must be 1 to %d", maxConcurrency)}
		case slices.Contains(cs, n):
			return nil, []string{fmt.Sprintf("-c lists %d twice", n)}
		}
		cs = append(cs, n)
	}
	return cs, nil
}

// parseStores reads --store: redis, embedded or both, in the order given.
func parseStores(v string) (stores []string, problems []string) {
	if v == "" {
		return nil, nil
	}
	for p := range strings.SplitSeq(v, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p != "redis" && p != "embedded":
			return nil, []string{fmt.Sprintf("--store %q: want redis, embedded or redis,embedded", v)}
		case slices.Contains(stores, p):
			return nil, []string{fmt.Sprintf("--store lists %s twice", p)}
		}
		stores = append(stores, p)
	}
	return stores, nil
}

type drillSettings struct {
	file     string
	jsonPath string
	sesgate  string
	logLevel string
	keep     bool
}

func parseDrill(args []string, stderr io.Writer) (*drillSettings, error) {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesgate-bench drill [flags] [SCENARIO.yml]\n\nWithout a file, the built-in default scenario. Flags:")
		fs.PrintDefaults()
	}
	d := &drillSettings{}
	fs.StringVar(&d.jsonPath, "json", "", "write the report as JSON to this file")
	fs.StringVar(&d.sesgate, "sesgate", "", "sesgate binary to start; default: go build ./cmd/sesgate from the repository, else sesgate on PATH")
	fs.StringVar(&d.logLevel, "gateway-log-level", "warn", "log level of the started gateway (its log goes to a file)")
	fs.BoolVar(&d.keep, "keep", false, "keep the temporary directory (gateway and redis logs, policy file) and print its name")
	// Flags may come before or after the file.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{Msg: err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) > 1 {
		return nil, usageError{Msg: "drill takes at most one scenario file"}
	}
	if len(files) == 1 {
		d.file = files[0]
	}
	return d, nil
}

// loadScenario reads a scenario file (a mistake in it is a usage error),
// or returns the built-in scenario without one.
func loadScenario(path string) (*drill.Scenario, error) {
	if path == "" {
		return drill.Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, drill.MaxScenarioBytes+1))
	if err != nil {
		return nil, err
	}
	sc, err := drill.Parse(data)
	if err != nil {
		return nil, usageError{Msg: fmt.Sprintf("%s: %v", path, err)}
	}
	return sc, nil
}
