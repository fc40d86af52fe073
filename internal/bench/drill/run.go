package drill

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway/ses"
	"github.com/sesgate/sesgate/internal/bench/stack"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/breaker"
)

// The drill's addresses: tenants send from app@<tenant>.drill.example to
// their lists at <tenant>.list.drill.example; the attacker mails
// attackerDomain. The relay passes the events to the gateway's snsPath.
const (
	attackerDomain = "leaked.drill.example"
	snsPath        = "/v1/events/sns"
)

// running is what a drill started.
type running struct {
	dir   string
	keep  bool
	ses   *sestest.Server
	sesHS *http.Server
	relay *Relay
	relHS *http.Server
	redis *stack.Proc
	gw    *stack.Gateway
}

func (st *running) close(stderr io.Writer) {
	if st.gw != nil {
		st.gw.Stop()
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
		st.redis.Stop()
	}
	switch {
	case st.dir != "" && st.keep:
		fmt.Fprintf(stderr, "kept %s (gateway.log, redis.log, policy.yml)\n", st.dir)
	case st.dir != "":
		_ = os.RemoveAll(st.dir)
	}
}

// sesCapacity is how many messages SES must record for the accounting: the
// scenario's traffic with room to spare, at most 1,000,000.
func sesCapacity(sc *Scenario) int {
	n := 2*sc.Checks.MaxAttackerMessages + 10_000
	for _, t := range sc.Tenants {
		n += int64(1.5 * t.Traffic.Rate * sc.Duration.Seconds())
		if t.Traffic.Warm {
			n += int64(t.Traffic.Recipients)
		}
	}
	return int(min(n, 1_000_000))
}

// RunOptions are how a drill runs.
type RunOptions struct {
	// Sesgate is the sesgate binary to start; empty: built from the
	// repository, else sesgate on PATH (stack.Binary).
	Sesgate  string
	LogLevel string // the started gateway's
	Keep     bool   // keep the temporary directory (logs, policy) and print its name
	Stderr   io.Writer
}

// Run starts a stack (redis-server when the scenario's store is Redis, the
// SES test server with events relayed to the gateway, the gateway with the
// scenario's policy), plays the scenario against it and evaluates it.
func Run(ctx context.Context, sc *Scenario, o RunOptions) (_ *Report, err error) {
	stderr := o.Stderr
	st := &running{keep: o.Keep}
	defer st.close(stderr)
	if st.dir, err = os.MkdirTemp("", "sesgate-drill-"); err != nil {
		return nil, err
	}
	bin, err := stack.Binary(ctx, o.Sesgate, st.dir, stderr)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)

	// SES, with the tenants' configuration sets, recording every message.
	var sets []string
	for _, t := range sc.Tenants {
		sets = append(sets, t.ConfigurationSet)
	}
	st.ses = sestest.New(sestest.Options{AccessKeyID: stack.AccessKey, SecretAccessKey: stack.SecretKey, Region: stack.Region,
		Logger: quiet, ConfigurationSets: sets, MaxMessages: sesCapacity(sc), MaxStoredBytes: 1}) // bodies are not kept
	var sesURL string
	if st.sesHS, sesURL, err = stack.ServeOn(st.ses); err != nil {
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
		if st.redis, redisURL, err = stack.StartRedis(ctx, st.dir); err != nil {
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
	policy, err := Policy(sc, PolicyOptions{Tokens: records, TopicArn: sestest.DefaultTopicArn, Region: stack.Region})
	if err != nil {
		return nil, err
	}
	policyPath := filepath.Join(st.dir, "policy.yml")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		return nil, err
	}
	st.gw, err = stack.StartGateway(ctx, stack.GatewayOptions{Bin: bin, Dir: st.dir, SESURL: sesURL, RedisURL: redisURL,
		ConfigPath: policyPath, LogLevel: o.LogLevel, Env: []string{"SESGATE_SNS_TRUST_CERT=" + certPath}})
	if err != nil {
		return nil, err
	}

	// Events: SES -> relay (records) -> the gateway's SNS endpoint.
	st.relay = NewRelay(RelayOptions{Target: st.gw.HTTPURL + snsPath, Logger: quiet})
	var relayURL string
	if st.relHS, relayURL, err = stack.ServeOn(st.relay); err != nil {
		return nil, err
	}
	evo := &sestest.EventOptions{URL: relayURL, Delay: sc.EventDelay, BounceFraction: 0, Deliveries: true,
		QueueSize: min(sesCapacity(sc), sestest.MaxEventQueue)}
	if sc.EventLatency != nil {
		l := *sc.EventLatency
		evo.Latency = &l
	}
	if err := st.ses.SetEvents(evo); err != nil {
		return nil, err
	}
	storeName := "embedded store"
	if redisURL != "" {
		storeName = "redis " + redisURL
	}
	attacker := "no attacker"
	if sc.HasAttacker() {
		attacker = fmt.Sprintf("attacker on %s from %v", sc.Attacker.Tenant, sc.Attacker.Start)
	}
	fmt.Fprintf(stderr, "drill: gateway pid %d (HTTP %s), %s, SES %s with events after %v; %d tenants, %s; %v of traffic\n",
		st.gw.Pid(), st.gw.HTTPURL, storeName, sesURL, sc.latencyText(), len(sc.Tenants), attacker, sc.Duration)

	url := st.gw.HTTPURL + "/v1/messages"
	var notes []string
	for _, s := range senders(sc, tokens) {
		if t := tenantOf(sc, s.Name); t == nil || !t.Traffic.Warm {
			continue
		}
		began := time.Now()
		held, err := warmUp(ctx, url, s)
		if err != nil {
			return nil, err
		}
		waitAllEvents(ctx, st, sc.latencyCeil()+sc.Drain)
		n := fmt.Sprintf("warm-up of %s: %d addresses mailed before the start in %.1f s (held back %d times), events waited for",
			s.Name, s.List.N, time.Since(began).Seconds(), held)
		fmt.Fprintln(stderr, "drill:", n)
		notes = append(notes, n)
	}

	start := time.Now()
	tallies := Play(ctx, PlayOptions{URL: url, Senders: senders(sc, tokens), Start: start})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	waitEvents(ctx, st, sc.latencyCeil()+sc.Drain)

	sent := st.ses.Sent()
	if n := st.ses.Accepted(); n != int64(len(sent)) {
		return nil, fmt.Errorf("SES accepted %d messages but recorded %d: the accounting would be wrong", n, len(sent))
	}
	msgs := make([]SESMessage, len(sent))
	for i, m := range sent {
		msgs[i] = SESMessage{Tenant: m.Tags[ses.TagTenant], Recipients: m.Recipients(), At: m.Received}
	}
	events, dropped := st.relay.Events()
	es := st.ses.EventStats()
	var victimBreaker *config.Breaker
	if v := sc.Victim(); v != nil {
		victimBreaker = v.Breaker
	}
	rep := Evaluate(Record{
		Scenario: sc, Start: start, Messages: msgs, Events: events, EventsDropped: dropped,
		EventsPublished: es.Published, EventsLost: es.Dropped + es.Refused, Tallies: tallies,
		AttackerDomain: attackerDomain, Breaker: victimBreaker.Apply(breaker.TenantDefaults()),
	})
	rep.Notes = append(notes, rep.Notes...)
	if gone, why := st.gw.Exited(); gone {
		// Refused connections are the symptom; say the cause.
		rep.Notes = append(rep.Notes, "the gateway died during the drill: "+why)
	}
	return &rep, nil
}

// senders are the tenants' own traffic and the attacker.
func senders(sc *Scenario, tokens map[string]string) []Sender {
	var out []Sender
	for _, t := range sc.Tenants {
		if t.Traffic.Rate <= 0 {
			continue
		}
		out = append(out, Sender{
			Name: t.ID, Tenant: t.ID, Token: tokens[t.ID], From: "app@" + t.ID + ".example",
			List: List{Domain: t.ID + ".list.example", N: t.Traffic.Recipients,
				BounceFraction: t.Traffic.BounceFraction, ComplaintFraction: t.Traffic.ComplaintFraction},
			Rate: t.Traffic.Rate, Workers: t.Traffic.Workers, Stop: sc.Duration,
		})
	}
	if !sc.HasAttacker() {
		return out
	}
	a := sc.Attacker
	out = append(out, Sender{
		Name: AttackerRow, Tenant: a.Tenant, Token: tokens[a.Tenant], From: "app@" + a.Tenant + ".example",
		List:    List{Domain: attackerDomain, N: a.Recipients, BounceFraction: a.BounceFraction},
		Workers: a.Workers, Start: a.Start, Stop: sc.Duration,
	})
	return out
}

// tenantOf returns the scenario's tenant id, nil if there is none.
func tenantOf(sc *Scenario, id string) *Tenant {
	for i := range sc.Tenants {
		if sc.Tenants[i].ID == id {
			return &sc.Tenants[i]
		}
	}
	return nil
}

// waitAllEvents waits until SES published an event (a Delivery included)
// for every recipient it accepted, or limit passed.
func waitAllEvents(ctx context.Context, st *running, limit time.Duration) {
	var want int64
	for _, m := range st.ses.Sent() {
		want += int64(len(m.Recipients()))
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if es := st.ses.EventStats(); es.Published+es.Refused+es.Dropped >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEvents waits until every bounce and complaint SES will publish for
// the mail it accepted went through the relay, or limit passed.
func waitEvents(ctx context.Context, st *running, limit time.Duration) {
	var want int64
	for _, m := range st.ses.Sent() {
		for _, r := range m.Recipients() {
			if FateOf(r) != Delivered {
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
