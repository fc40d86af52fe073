package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/internal/bench/drill"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/breaker"
)

// The drill's addresses: tenants send from app@<tenant>.drill.example to
// their lists at <tenant>.list.drill.example; the attacker mails
// attackerDomain.
const (
	attackerDomain = "leaked.drill.example"
	snsPath        = "/v1/events/sns"
)

// errDrillFailed is returned when a check of the drill failed; the report
// says which.
var errDrillFailed = errors.New("drill failed: see the FAIL lines")

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

func drillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d, err := parseDrill(args, stderr)
	if err != nil {
		return err
	}
	sc, err := loadScenario(d.file)
	if err != nil {
		return err
	}
	rep, err := runDrill(ctx, sc, d, stderr)
	if err != nil {
		return err
	}
	rep.Text(stdout)
	if d.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(d.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if !rep.Passed {
		return errDrillFailed
	}
	return nil
}

// drillStack is what a drill starts.
type drillStack struct {
	dir   string
	keep  bool
	ses   *sestest.Server
	sesHS *http.Server
	relay *drill.Relay
	relHS *http.Server
	redis *proc
	gw    *gatewayProc
}

func (st *drillStack) close(stderr io.Writer) {
	if st.gw != nil {
		st.gw.stop()
	}
	if st.ses != nil {
		st.ses.Close()
	}
	for _, hs := range []*http.Server{st.sesHS, st.relHS} {
		if hs != nil {
			_ = hs.Close()
		}
	}
	if st.redis != nil {
		st.redis.stop()
	}
	switch {
	case st.dir != "" && st.keep:
		fmt.Fprintf(stderr, "kept %s (gateway.log, redis.log, policy.yml)\n", st.dir)
	case st.dir != "":
		_ = os.RemoveAll(st.dir)
	}
}

func serveOn(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	go func() { _ = hs.Serve(ln) }()
	return hs, "http://" + ln.Addr().String(), nil
}

// sesCapacity is how many messages SES must record for the accounting: the
// scenario's traffic with room to spare, at most 1,000,000.
func sesCapacity(sc *drill.Scenario) int {
	n := 2*sc.Checks.MaxAttackerMessages + 10_000
	for _, t := range sc.Tenants {
		n += int64(1.5 * t.Traffic.Rate * sc.Duration.Seconds())
	}
	return int(min(n, 1_000_000))
}

// runDrill starts the stack, plays the scenario and evaluates it.
func runDrill(ctx context.Context, sc *drill.Scenario, d *drillSettings, stderr io.Writer) (_ *drill.Report, err error) {
	st := &drillStack{keep: d.keep}
	defer st.close(stderr)
	if st.dir, err = os.MkdirTemp("", "sesgate-drill-"); err != nil {
		return nil, err
	}
	bin, err := sesgateBinary(ctx, d.sesgate, st.dir, stderr)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)

	// SES, with the tenants' configuration sets, recording every message.
	var sets []string
	for _, t := range sc.Tenants {
		sets = append(sets, t.ConfigurationSet)
	}
	st.ses = sestest.New(sestest.Options{AccessKeyID: sesAccessKey, SecretAccessKey: sesSecretKey, Region: sesRegion,
		Logger: quiet, ConfigurationSets: sets, MaxMessages: sesCapacity(sc), MaxStoredBytes: 1}) // bodies are not kept
	var sesURL string
	if st.sesHS, sesURL, err = serveOn(st.ses); err != nil {
		return nil, err
	}
	certPEM, err := st.ses.SNSCertificatePEM()
	if err != nil {
		return nil, err
	}
	certPath := filepath.Join(st.dir, "sns-cert.pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return nil, err
	}

	var redisURL string
	if sc.Store == "redis" {
		if st.redis, redisURL, err = startRedis(ctx, st.dir); err != nil {
			return nil, fmt.Errorf("the scenario's store is redis: %w (or set store: embedded)", err)
		}
	}

	// The policy: one token per tenant; the attacker holds the victim's.
	tokens := map[string]string{}
	records := map[string]auth.Record{}
	for _, t := range sc.Tenants {
		m := auth.NewToken(t.ID)
		tokens[t.ID], records[t.ID] = m.Token, m.Record
	}
	topic := sestest.DefaultTopicArn
	if os.Getenv("DRILLHACK") != "" { // TEMPORARY
		topic = ""
	}
	policy, err := drill.Policy(sc, drill.PolicyOptions{Tokens: records, TopicArn: topic, Region: sesRegion})
	if err != nil {
		return nil, err
	}
	policyPath := filepath.Join(st.dir, "policy.yml")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		return nil, err
	}
	st.gw, err = startGateway(ctx, gatewayOptions{bin: bin, dir: st.dir, sesURL: sesURL, redisURL: redisURL,
		configPath: policyPath, logLevel: d.logLevel, env: []string{"SESGATE_SNS_TRUST_CERT=" + certPath}})
	if err != nil {
		return nil, err
	}

	// Events: SES -> relay (records) -> the gateway's SNS endpoint.
	st.relay = drill.NewRelay(drill.RelayOptions{Target: st.gw.httpURL + snsPath, Logger: quiet})
	var relayURL string
	if st.relHS, relayURL, err = serveOn(st.relay); err != nil {
		return nil, err
	}
	if err := st.ses.SetEvents(&sestest.EventOptions{URL: relayURL, Delay: sc.EventDelay, BounceFraction: 0,
		QueueSize: min(sesCapacity(sc), sestest.MaxEventQueue)}); err != nil {
		return nil, err
	}
	storeName := "embedded store"
	if redisURL != "" {
		storeName = "redis " + redisURL
	}
	fmt.Fprintf(stderr, "drill: gateway pid %d (HTTP %s), %s, SES %s with events after %v; %d tenants, attacker on %s from %v; %v of traffic\n",
		st.gw.pid(), st.gw.httpURL, storeName, sesURL, sc.EventDelay, len(sc.Tenants), sc.Attacker.Tenant, sc.Attacker.Start, sc.Duration)

	senders := drillSenders(sc, tokens)
	start := time.Now()
	tallies := drill.Play(ctx, drill.PlayOptions{URL: st.gw.httpURL + "/v1/messages", Senders: senders, Start: start})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	waitEvents(ctx, st, sc.EventDelay+sc.Drain)

	sent := st.ses.Sent()
	if n := st.ses.Accepted(); n != int64(len(sent)) {
		return nil, fmt.Errorf("SES accepted %d messages but recorded %d: the accounting would be wrong", n, len(sent))
	}
	msgs := make([]drill.SESMessage, len(sent))
	for i, m := range sent {
		msgs[i] = drill.SESMessage{Tenant: m.Tags[ses.TagTenant], Recipients: m.Recipients(), At: m.Received}
	}
	events, dropped := st.relay.Events()
	es := st.ses.EventStats()
	rep := drill.Evaluate(drill.Record{
		Scenario: sc, Start: start, Messages: msgs, Events: events, EventsDropped: dropped,
		EventsPublished: es.Published, EventsLost: es.Dropped + es.Refused, Tallies: tallies,
		AttackerDomain: attackerDomain, Breaker: sc.Victim().Breaker.Apply(breaker.TenantDefaults()),
	})
	return &rep, nil
}

// drillSenders are the tenants' own traffic and the attacker.
func drillSenders(sc *drill.Scenario, tokens map[string]string) []drill.Sender {
	var out []drill.Sender
	for _, t := range sc.Tenants {
		if t.Traffic.Rate <= 0 {
			continue
		}
		out = append(out, drill.Sender{
			Name: t.ID, Tenant: t.ID, Token: tokens[t.ID], From: "app@" + t.ID + ".drill.example",
			List: drill.List{Domain: t.ID + ".list.drill.example", N: t.Traffic.Recipients,
				BounceFraction: t.Traffic.BounceFraction, ComplaintFraction: t.Traffic.ComplaintFraction},
			Rate: t.Traffic.Rate, Workers: t.Traffic.Workers, Stop: sc.Duration,
		})
	}
	a := sc.Attacker
	out = append(out, drill.Sender{
		Name: drill.AttackerRow, Tenant: a.Tenant, Token: tokens[a.Tenant], From: "app@" + a.Tenant + ".drill.example",
		List:    drill.List{Domain: attackerDomain, N: a.Recipients, BounceFraction: a.BounceFraction},
		Workers: a.Workers, Start: a.Start, Stop: sc.Duration,
	})
	return out
}

// waitEvents waits until every bounce and complaint SES will publish for
// the mail it accepted went through the relay, or limit passed.
func waitEvents(ctx context.Context, st *drillStack, limit time.Duration) {
	var want int64
	for _, m := range st.ses.Sent() {
		for _, r := range m.Recipients() {
			if drill.FateOf(r) != drill.Delivered {
				want++
			}
		}
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		es := st.ses.EventStats()
		if es.Published+es.Refused+es.Dropped >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
