package server

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/gateway/smtpd"
	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/internal/config"
)

// Settings are the process settings of `sesgate serve`: flags, each with
// an environment variable (the flag wins).
type Settings struct {
	DataDir         string
	SMTPAddr        string
	SMTPSAddr       string
	HTTPAddr        string
	ConfigPath      string
	Sink            string // "outbox" or "ses"
	TLSCert         string
	TLSKey          string
	InsecureAuth    bool
	LogLevel        string
	ShutdownTimeout time.Duration
	ShutdownDelay   time.Duration
	Domain          string
	ReplicaName     string        // names this replica in the dashboard's shared feed
	AdminAddr       string        // empty: no admin listener
	ReloadPoll      time.Duration // 0: no polling of the policy file

	// SMTP bounds against a flood from one source (smtpd.Options).
	SMTPMaxConnsPerSource int
	SMTPAuthTimeout       time.Duration
	SMTPPreAuthTimeout    time.Duration
	// RefusalLogRate bounds refusal log lines per second per (tenant or
	// client address, reason), after a burst of 3 (and 50/s in all,
	// logthrottle.DefaultTotalRate); the rest are counted in the next line
	// ("suppressed").
	RefusalLogRate float64
	// MemBudget bounds the message bytes SMTP and HTTP hold in memory
	// together (one gateway.MemBudget for both).
	MemBudget int64
	// HTTPMaxConns, HTTPMaxConnsPerSource and HTTPMaxRequestsPerTenant
	// bound the HTTP listener's connections (all, and from one client
	// address) and one tenant's requests in flight.
	HTTPMaxConns             int
	HTTPMaxConnsPerSource    int
	HTTPMaxRequestsPerTenant int
	// SNSBodyTimeout, SNSMemBudget and SNSMaxBodiesPerSource bound what
	// the SNS endpoint reads: one body's time, the bodies held at once,
	// and those from one source (an IPv4 address or IPv6 /64).
	SNSBodyTimeout        time.Duration
	SNSMemBudget          int64
	SNSMaxBodiesPerSource int
	// Webhook tunes the apps' webhooks (webhooks.go).
	Webhook WebhookSettings
	// ViewSettings tune the Redis store's view (view_settings.go).
	ViewSettings

	SESAPISettings
	StoreSettings
}

// Defaults of the admin side.
const (
	DefaultAdminAddr  = "127.0.0.1:8026"
	DefaultReloadPoll = 2 * time.Second
)

// DefaultRefusalLogRate is --refusal-log-rate's default.
const DefaultRefusalLogRate = 1.0

// ParseSettings parses the flags of `sesgate serve` (args after "serve"),
// with the environment's defaults; mistakes are cli.UsageErrors.
func ParseSettings(args []string, stderr io.Writer) (*Settings, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &Settings{}
	env := cli.Env
	fs.StringVar(&s.DataDir, "data-dir", env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory: dev token, outbox, embedded store (env SESGATE_DATA_DIR)")
	fs.StringVar(&s.SMTPAddr, "smtp-addr", env("SESGATE_SMTP_ADDR", "127.0.0.1:2525"), "SMTP listener, STARTTLS when a certificate is set; empty disables (env SESGATE_SMTP_ADDR)")
	fs.StringVar(&s.SMTPSAddr, "smtps-addr", env("SESGATE_SMTPS_ADDR", ""), "implicit-TLS SMTP listener, needs a certificate (env SESGATE_SMTPS_ADDR)")
	fs.StringVar(&s.HTTPAddr, "http-addr", env("SESGATE_HTTP_ADDR", "127.0.0.1:8025"), "HTTP listener; empty disables (env SESGATE_HTTP_ADDR)")
	fs.StringVar(&s.ConfigPath, "config", env("SESGATE_CONFIG", ""), "policy file; none: a dev tenant (env SESGATE_CONFIG)")
	fs.StringVar(&s.Sink, "sink", env("SESGATE_SINK", ""), "outbox or ses; default ses with a policy file, outbox without (env SESGATE_SINK)")
	fs.StringVar(&s.TLSCert, "tls-cert", env("SESGATE_TLS_CERT", ""), "TLS certificate file, PEM (env SESGATE_TLS_CERT)")
	fs.StringVar(&s.TLSKey, "tls-key", env("SESGATE_TLS_KEY", ""), "TLS key file, PEM (env SESGATE_TLS_KEY)")
	insecure, _ := strconv.ParseBool(env("SESGATE_INSECURE_AUTH", "false"))
	fs.BoolVar(&s.InsecureAuth, "insecure-auth", insecure, "allow SMTP AUTH without TLS on non-loopback listeners (env SESGATE_INSECURE_AUTH)")
	fs.StringVar(&s.LogLevel, "log-level", env("SESGATE_LOG_LEVEL", "info"), "debug, info, warn or error (env SESGATE_LOG_LEVEL)")
	st, err := time.ParseDuration(env("SESGATE_SHUTDOWN_TIMEOUT", "20s"))
	if err != nil {
		return nil, cli.UsageError{Msg: "SESGATE_SHUTDOWN_TIMEOUT: " + err.Error()}
	}
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", st, "bound on draining sessions at SIGTERM; keep below the pod's grace period (env SESGATE_SHUTDOWN_TIMEOUT)")
	sd, err := time.ParseDuration(env("SESGATE_SHUTDOWN_DELAY", "0s"))
	if err != nil {
		return nil, cli.UsageError{Msg: "SESGATE_SHUTDOWN_DELAY: " + err.Error()}
	}
	fs.DurationVar(&s.ShutdownDelay, "shutdown-delay", sd, "time between readiness going false and listeners closing (env SESGATE_SHUTDOWN_DELAY)")
	host, _ := os.Hostname()
	fs.StringVar(&s.Domain, "domain", env("SESGATE_DOMAIN", host), "host name in the SMTP greeting (env SESGATE_DOMAIN)")
	fs.StringVar(&s.ReplicaName, "replica-name", env("SESGATE_REPLICA_NAME", host), "names this replica on the events it adds to the dashboard's shared feed (env SESGATE_REPLICA_NAME)")
	adminAddr := DefaultAdminAddr
	if v, ok := os.LookupEnv("SESGATE_ADMIN_ADDR"); ok { // empty disables
		adminAddr = v
	}
	fs.StringVar(&s.AdminAddr, "admin-addr", adminAddr, "admin API, dashboard and /metrics listener; empty disables (env SESGATE_ADMIN_ADDR)")
	poll, err := time.ParseDuration(env("SESGATE_RELOAD_POLL", DefaultReloadPoll.String()))
	if err != nil {
		poll = DefaultReloadPoll
	}
	fs.DurationVar(&s.ReloadPoll, "reload-poll", poll, "how often the policy file is checked for a change; 0 disables (env SESGATE_RELOAD_POLL)")
	perSource, err := strconv.Atoi(env("SESGATE_SMTP_MAX_CONNS_PER_SOURCE", strconv.Itoa(smtpd.DefaultMaxConnectionsPerSource)))
	if err != nil {
		return nil, cli.UsageError{Msg: "SESGATE_SMTP_MAX_CONNS_PER_SOURCE: " + err.Error()}
	}
	fs.IntVar(&s.SMTPMaxConnsPerSource, "smtp-max-conns-per-source", perSource, fmt.Sprintf("concurrent SMTP connections from one IPv4 address or IPv6 /64, at most %d (env SESGATE_SMTP_MAX_CONNS_PER_SOURCE)", smtpd.DefaultMaxConnections))
	authTO, err := time.ParseDuration(env("SESGATE_SMTP_AUTH_TIMEOUT", smtpd.DefaultAuthTimeout.String()))
	if err != nil {
		return nil, cli.UsageError{Msg: "SESGATE_SMTP_AUTH_TIMEOUT: " + err.Error()}
	}
	fs.DurationVar(&s.SMTPAuthTimeout, "smtp-auth-timeout", authTO, "time from connect within which an SMTP client must complete AUTH (env SESGATE_SMTP_AUTH_TIMEOUT)")
	preAuthTO, err := time.ParseDuration(env("SESGATE_SMTP_PREAUTH_TIMEOUT", smtpd.DefaultPreAuthReadTimeout.String()))
	if err != nil {
		return nil, cli.UsageError{Msg: "SESGATE_SMTP_PREAUTH_TIMEOUT: " + err.Error()}
	}
	fs.DurationVar(&s.SMTPPreAuthTimeout, "smtp-preauth-timeout", preAuthTO, "before AUTH, time to send one whole SMTP command line (env SESGATE_SMTP_PREAUTH_TIMEOUT)")
	rlr, err := strconv.ParseFloat(env("SESGATE_REFUSAL_LOG_RATE", strconv.FormatFloat(DefaultRefusalLogRate, 'g', -1, 64)), 64)
	if err != nil {
		return nil, cli.UsageError{Msg: "SESGATE_REFUSAL_LOG_RATE: " + err.Error()}
	}
	fs.Float64Var(&s.RefusalLogRate, "refusal-log-rate", rlr, "refusal log lines per second per tenant (or client address) and reason, after a burst of 3, at most 50/s in all; the others are counted in the next line (env SESGATE_REFUSAL_LOG_RATE)")
	if err := frontEndFlags(fs, s); err != nil {
		return nil, err
	}
	if err := webhookFlags(fs, &s.Webhook); err != nil {
		return nil, err
	}
	sesAPIFlags(fs, s)
	if err := viewFlags(fs, &s.ViewSettings); err != nil {
		return nil, err
	}
	if err := storeFlags(fs, &s.StoreSettings); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, cli.UsageError{Msg: "serve takes no arguments"}
	}
	if s.Sink == "" {
		s.Sink = "outbox"
		if s.ConfigPath != "" {
			s.Sink = "ses"
		}
	}
	if s.Sink != "outbox" && s.Sink != "ses" {
		return nil, cli.UsageError{Msg: fmt.Sprintf("--sink %q: want outbox or ses", s.Sink)}
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return nil, cli.UsageError{Msg: "--tls-cert and --tls-key go together"}
	}
	if s.SMTPSAddr != "" && s.TLSCert == "" {
		return nil, cli.UsageError{Msg: "--smtps-addr needs --tls-cert and --tls-key"}
	}
	if s.ShutdownTimeout <= 0 {
		return nil, cli.UsageError{Msg: "--shutdown-timeout must be positive"}
	}
	if s.SMTPMaxConnsPerSource < 1 || s.SMTPMaxConnsPerSource > smtpd.DefaultMaxConnections {
		return nil, cli.UsageError{Msg: fmt.Sprintf("--smtp-max-conns-per-source must be 1 to %d", smtpd.DefaultMaxConnections)}
	}
	if s.SMTPAuthTimeout <= 0 || s.SMTPPreAuthTimeout <= 0 {
		return nil, cli.UsageError{Msg: "--smtp-auth-timeout and --smtp-preauth-timeout must be positive"}
	}
	if !(s.RefusalLogRate > 0 && s.RefusalLogRate <= 1000) {
		return nil, cli.UsageError{Msg: "--refusal-log-rate must be above 0 and at most 1000"}
	}
	if s.MemBudget < gateway.DefaultMaxMessageBytes {
		return nil, cli.UsageError{Msg: "--mem-budget must be at least 40MiB (one message of the largest size)"}
	}
	if s.HTTPMaxConns < 1 || s.HTTPMaxConnsPerSource < 1 || s.HTTPMaxRequestsPerTenant < 1 || s.SNSMaxBodiesPerSource < 1 {
		return nil, cli.UsageError{Msg: "--http-max-conns, --http-max-conns-per-source, --http-max-requests-per-tenant and --sns-max-bodies-per-source must be positive"}
	}
	if s.SNSMemBudget < feedback.MaxSNSBodyBytes || s.SNSBodyTimeout <= 0 {
		return nil, cli.UsageError{Msg: "--sns-mem-budget must be at least 256KiB and --sns-body-timeout positive"}
	}
	if err := s.Webhook.check(); err != nil {
		return nil, err
	}
	if len(s.ReplicaName) > 64 {
		return nil, cli.UsageError{Msg: "--replica-name: at most 64 bytes"}
	}
	if err := s.ViewSettings.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// frontEndFlags adds the memory and connection bounds of the front ends
// and the SNS endpoint.
func frontEndFlags(fs *flag.FlagSet, s *Settings) error {
	env := cli.Env
	budget, err := config.ParseByteSize(env("SESGATE_MEM_BUDGET", "512MiB"))
	if err != nil {
		return cli.UsageError{Msg: "SESGATE_MEM_BUDGET: " + err.Error()}
	}
	s.MemBudget = int64(budget)
	fs.Func("mem-budget", "message bytes SMTP and HTTP hold in memory together, e.g. 512MiB; more is refused (451 4.3.0 / 503) (env SESGATE_MEM_BUDGET)",
		func(v string) error {
			b, err := config.ParseByteSize(v)
			s.MemBudget = int64(b)
			return err
		})
	snsBudget, err := config.ParseByteSize(env("SESGATE_SNS_MEM_BUDGET", "32MiB"))
	if err != nil {
		return cli.UsageError{Msg: "SESGATE_SNS_MEM_BUDGET: " + err.Error()}
	}
	s.SNSMemBudget = int64(snsBudget)
	fs.Func("sns-mem-budget", "SNS request bodies held at once, e.g. 32MiB; more are answered 503 before their body is read (env SESGATE_SNS_MEM_BUDGET)",
		func(v string) error {
			b, err := config.ParseByteSize(v)
			s.SNSMemBudget = int64(b)
			return err
		})
	bodyTO, err := time.ParseDuration(env("SESGATE_SNS_BODY_TIMEOUT", feedback.DefaultBodyTimeout.String()))
	if err != nil {
		return cli.UsageError{Msg: "SESGATE_SNS_BODY_TIMEOUT: " + err.Error()}
	}
	fs.DurationVar(&s.SNSBodyTimeout, "sns-body-timeout", bodyTO, "bound on reading one SNS request body; a slower one is cut (env SESGATE_SNS_BODY_TIMEOUT)")
	return intFlags(fs, []intFlag{
		{&s.HTTPMaxConns, "http-max-conns", "HTTP connections open at once; more wait in the kernel's backlog", httpapi.DefaultMaxConns},
		{&s.HTTPMaxConnsPerSource, "http-max-conns-per-source", "HTTP connections open at once from one source (an IPv4 address or IPv6 /64); more are answered 503", httpapi.DefaultMaxConnsPerSource},
		{&s.HTTPMaxRequestsPerTenant, "http-max-requests-per-tenant", "HTTP requests of one tenant in flight; more are answered 429", httpapi.DefaultMaxRequestsPerTenant},
		{&s.SNSMaxBodiesPerSource, "sns-max-bodies-per-source", "SNS request bodies read at once from one source (an IPv4 address or IPv6 /64); more are answered 503", feedback.DefaultMaxBodiesPerSource},
	})
}

// intFlag is an int flag whose default is read from its environment
// variable, SESGATE_ and the flag's name in capitals.
type intFlag struct {
	v          *int
	name, help string
	def        int
}

// intFlags adds flags.
func intFlags(fs *flag.FlagSet, flags []intFlag) error {
	for _, f := range flags {
		name := "SESGATE_" + strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))
		def, err := strconv.Atoi(cli.Env(name, strconv.Itoa(f.def)))
		if err != nil {
			return cli.UsageError{Msg: name + ": not a number"}
		}
		fs.IntVar(f.v, f.name, def, f.help+" (env "+name+")")
	}
	return nil
}
