package load

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sesgate/sesgate/internal/bench"
)

// Report is everything a run measured; --json writes it as is.
type Report struct {
	Command string    `json:"command"`
	Date    time.Time `json:"date"`
	Host    Host      `json:"host"`
	Setup   Setup     `json:"setup"`
	// Phases and Ratios are the medians over Runs (a run's own figures
	// when there is one run).
	Phases []Phase       `json:"phases"`
	Ratios []Ratio       `json:"ratios,omitempty"`
	Runs   []Measurement `json:"runs"`
	Notes  []string      `json:"notes"`
}

// Measurement is one run of every phase.
type Measurement struct {
	Phases []Phase `json:"phases"`
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Host is the machine the tool ran on.
type Host struct {
	Hostname  string `json:"hostname"`
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
}

// Setup is how the run was made.
type Setup struct {
	Target        string   `json:"target"` // "self-started" or the addresses driven
	Concurrency   int      `json:"concurrency"`
	Concurrencies []int    `json:"concurrencies"`
	Stores        []string `json:"stores"`
	// Tenant is the scenario: full (every limit, the recipient mix) or dev.
	Tenant        string  `json:"tenant"`
	Limits        *Limits `json:"limits,omitempty"` // the full tenant's, when written by the run
	KnownFraction float64 `json:"known_fraction,omitempty"`
	Domains       int     `json:"recipient_domains,omitempty"`
	KnownSeeded   int64   `json:"known_recipients_seeded,omitempty"`
	ThinRelay     bool    `json:"thin_relay"`
	Count         int64   `json:"count_per_phase"`
	DurationCap   float64 `json:"duration_cap_s"`
	Rate          float64 `json:"rate_per_s"` // 0: closed loop
	Size          int     `json:"message_size"`
	PerConn       int     `json:"smtp_per_conn"`
	Pipelining    bool    `json:"smtp_pipelining"`
	StartTLS      bool    `json:"starttls"`
	Warmup        int64   `json:"warmup"`
	SESLatencyMs  float64 `json:"ses_latency_ms"`
	Redis         string  `json:"redis"` // "none", "started", "given"
	GatewayLog    string  `json:"gateway_log_level,omitempty"`
}

// Phase is one measured run against one path.
type Phase struct {
	Name string `json:"name"`
	// Store is the gateway's ("redis", "embedded", "target"); empty for
	// the thin relay and the SDK baseline.
	Store       string            `json:"store,omitempty"`
	Concurrency int               `json:"concurrency"`
	OKCode      string            `json:"ok_code"`
	Messages    int64             `json:"messages"`
	Seconds     float64           `json:"seconds"`
	Throughput  float64           `json:"msgs_per_s"`
	OKPerSec    float64           `json:"ok_per_s"` // answers with OKCode per second
	Codes       map[string]int64  `json:"codes"`
	Errors      map[string]string `json:"errors,omitempty"`
	Latency     bench.Summary     `json:"latency"`
	// SESTime is the SES server's own handling time of the matched sends,
	// Added their end-to-end latency minus it (per send).
	SESTime            *bench.Summary `json:"ses_time,omitempty"`
	Added              *bench.Summary `json:"added,omitempty"`
	Matched            int64          `json:"matched"`
	SESAccepted        *int64         `json:"ses_accepted,omitempty"`
	GatewayCPUPerMsgUs *float64       `json:"gateway_cpu_per_msg_us,omitempty"`
	BenchCPUPerMsgUs   *float64       `json:"bench_cpu_per_msg_us,omitempty"`
	Redis              *Redis         `json:"redis,omitempty"`
	Late               int64          `json:"late_sends"`
	MaxLagMs           float64        `json:"max_lag_ms"`
}

// Redis is the Redis work per message of a phase.
type Redis struct {
	CallsPerMsg   float64 `json:"calls_per_msg"`
	CmdUsecPerMsg float64 `json:"command_usec_per_msg"`
	// ScriptUsecPerMsg is the time in EVALSHA/EVAL per message: the
	// admission script, its own commands included.
	ScriptUsecPerMsg float64            `json:"script_usec_per_msg"`
	CPUUsecPerMsg    float64            `json:"cpu_usec_per_msg"`
	CallsByCommand   map[string]float64 `json:"calls_per_msg_by_command"`
	TotalCalls       int64              `json:"total_calls"`
	TotalCPUSeconds  float64            `json:"total_cpu_s"`
}

// Ratio compares a phase with the SDK baseline and, for the gateway's
// phases, with the thin relay, both at the same concurrency in the same
// run.
type Ratio struct {
	Phase           string  `json:"phase"`
	Store           string  `json:"store,omitempty"`
	Concurrency     int     `json:"concurrency"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	LatencyP50Ratio float64 `json:"latency_p50_ratio"`
	AddedP50Ms      float64 `json:"added_over_baseline_p50_ms"`
	AddedP99Ms      float64 `json:"added_over_baseline_p99_ms"`
	AddedP999Ms     float64 `json:"added_over_baseline_p99_9_ms"`
	// Thin compares with the thin relay; nil for the thin relay itself
	// and without one.
	Thin *ThinRatio `json:"thin_relay,omitempty"`
}

// ThinRatio compares a gateway phase with the thin relay.
type ThinRatio struct {
	ThroughputRatio float64 `json:"throughput_ratio"`
	// CPURatio is the gateway's CPU per message over the relay's; 0 when
	// either was not measured.
	CPURatio float64 `json:"cpu_per_msg_ratio"`
	// AddedP50Ms and AddedP99Ms are the gateway's added latency minus the
	// relay's; AddedP50Ratio is their added-over-SDK p50 in ratio (0 when
	// the relay added nothing measurable).
	AddedP50Ms    float64 `json:"added_over_thin_p50_ms"`
	AddedP99Ms    float64 `json:"added_over_thin_p99_ms"`
	AddedP50Ratio float64 `json:"added_over_sdk_p50_ratio"`
}

func newReport(cmd string, s *Settings, b *bed) *Report {
	r := &Report{
		Command: cmd, Date: time.Now().UTC().Truncate(time.Second), Host: hostInfo(),
		Setup: Setup{
			Target: "self-started", Concurrency: s.Concurrency, Concurrencies: s.concurrencies(), Tenant: s.Tenant,
			ThinRelay: b.thin != nil, Limits: b.limits, KnownSeeded: b.seeded, Count: s.Count, DurationCap: s.Duration.Seconds(),
			Rate: s.Rate, Size: s.Size, PerConn: s.PerConn, Pipelining: s.Pipelining, StartTLS: s.StartTLS, Warmup: s.Warmup,
			SESLatencyMs: float64(s.SESLatency) / 1e6, Redis: "none",
		},
	}
	if s.mixed() {
		r.Setup.KnownFraction, r.Setup.Domains = s.KnownFraction, s.Domains
	}
	for _, n := range b.nodes {
		r.Setup.Stores = append(r.Setup.Stores, n.store)
	}
	switch {
	case s.RedisURL == "" && slices.Contains(r.Setup.Stores, "redis"):
		r.Setup.Redis = "started"
	case s.RedisURL != "":
		r.Setup.Redis = "given"
	}
	if s.Target() {
		r.Setup.Target = strings.TrimSpace(s.HTTPURL + " " + s.SMTPAddr)
	} else {
		r.Setup.GatewayLog = s.LogLevel
		r.Notes = append(r.Notes,
			"SES is the sestest server in the bench process; its time is measured from handler entry to the answer, per MessageId")
	}
	r.Notes = append(r.Notes,
		"added = end-to-end latency minus the SES server's time for the same message; added over baseline = gateway added minus SDK added, by percentile",
		"thin-relay is `sesgate-bench thin-relay`, a child process: go-smtp in (no AUTH), one default sesv2 client out, 250 with the MessageId; its CPU is read like the gateway's",
		"gateway CPU (the thin relay's on its row) comes from /proc/<pid>/stat (10 ms ticks); bench CPU is this process: load generator and, when self-started, the SES server",
		"Redis calls include commands run inside scripts; Redis CPU is INFO cpu used_cpu_user+used_cpu_sys")
	return r
}

func newPhase(name, okCode string, res *Result) Phase {
	p := Phase{
		Name: name, OKCode: okCode, Messages: res.Sent, Seconds: res.Elapsed.Seconds(),
		Throughput: res.Throughput(), Codes: res.Codes, Latency: res.Latency.Summary(),
		Matched: res.Matched, Late: res.Late, MaxLagMs: float64(res.MaxLag) / 1e6,
	}
	if len(res.Errors) > 0 {
		p.Errors = res.Errors
	}
	if p.Seconds > 0 {
		p.OKPerSec = float64(res.Codes[okCode]) / p.Seconds
	}
	if res.Matched > 0 {
		ses, added := res.SES.Summary(), res.Added.Summary()
		p.SESTime, p.Added = &ses, &added
	}
	return p
}

func redisFigures(d bench.RedisDelta, n int64) *Redis {
	if n == 0 {
		return nil
	}
	f := float64(n)
	r := &Redis{
		CallsPerMsg: float64(d.Calls) / f, CmdUsecPerMsg: float64(d.Usec) / f,
		CPUUsecPerMsg: float64(d.CPU) / 1e3 / f, CallsByCommand: map[string]float64{},
		TotalCalls: d.Calls, TotalCPUSeconds: d.CPU.Seconds(),
		ScriptUsecPerMsg: float64(d.UsecByCommand["evalsha"]+d.UsecByCommand["eval"]) / f,
	}
	for k, v := range d.ByCommand {
		r.CallsByCommand[k] = float64(v) / f
	}
	return r
}

// ratios compares each phase with the baseline and the thin relay of the
// same concurrency, if there are.
func (r *Report) ratios() {
	find := func(name string, c int) *Phase {
		i := slices.IndexFunc(r.Phases, func(p Phase) bool { return p.Name == name && p.Concurrency == c })
		if i < 0 {
			return nil
		}
		return &r.Phases[i]
	}
	for _, p := range r.Phases {
		if p.Name == "baseline-sdk" {
			continue
		}
		base, thin := find("baseline-sdk", p.Concurrency), find("thin-relay", p.Concurrency)
		if p.Name == "thin-relay" {
			thin = nil
		}
		ra := Ratio{Phase: p.Name, Store: p.Store, Concurrency: p.Concurrency}
		if base != nil && base.Throughput > 0 {
			ra.ThroughputRatio = p.Throughput / base.Throughput
			if base.Latency.P50 > 0 {
				ra.LatencyP50Ratio = p.Latency.P50 / base.Latency.P50
			}
			if p.Added != nil && base.Added != nil {
				ra.AddedP50Ms = p.Added.P50 - base.Added.P50
				ra.AddedP99Ms = p.Added.P99 - base.Added.P99
				ra.AddedP999Ms = p.Added.P999 - base.Added.P999
			}
		}
		if thin != nil && thin.Throughput > 0 {
			t := &ThinRatio{ThroughputRatio: p.Throughput / thin.Throughput}
			if p.GatewayCPUPerMsgUs != nil && thin.GatewayCPUPerMsgUs != nil && *thin.GatewayCPUPerMsgUs > 0 {
				t.CPURatio = *p.GatewayCPUPerMsgUs / *thin.GatewayCPUPerMsgUs
			}
			if p.Added != nil && thin.Added != nil {
				t.AddedP50Ms = p.Added.P50 - thin.Added.P50
				t.AddedP99Ms = p.Added.P99 - thin.Added.P99
				if base != nil && base.Added != nil {
					if ta := thin.Added.P50 - base.Added.P50; ta > 0 {
						t.AddedP50Ratio = (p.Added.P50 - base.Added.P50) / ta
					}
				}
			}
			ra.Thin = t
		}
		if base == nil && ra.Thin == nil {
			continue
		}
		r.Ratios = append(r.Ratios, ra)
	}
}

func (r *Report) write(stdout io.Writer, jsonPath string) error {
	r.text(stdout)
	if jsonPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(jsonPath, append(b, '\n'), 0o644)
}

func (r *Report) text(w io.Writer) {
	s := r.Setup
	fmt.Fprintf(w, "sesgate-bench %s  %s  %s (%d CPUs, %s)\n", r.Command, r.Date.Format(time.RFC3339), r.Host.Hostname, r.Host.CPUs, r.Host.GoVersion)
	rate := "closed loop"
	if s.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s open loop", s.Rate)
	}
	fmt.Fprintf(w, "target %s; SES latency %.1f ms; stores %s (redis %s); c=%s n=%d cap=%.0fs %s; size %dB; warm-up %d",
		s.Target, s.SESLatencyMs, strings.Join(s.Stores, ","), s.Redis, joinInts(s.Concurrencies), s.Count, s.DurationCap, rate, s.Size, s.Warmup)
	if s.StartTLS {
		fmt.Fprint(w, "; STARTTLS")
	}
	if s.Pipelining {
		fmt.Fprint(w, "; SMTP PIPELINING")
	}
	fmt.Fprintln(w)
	switch {
	case s.Tenant == "dev":
		fmt.Fprintln(w, "scenario: the dev tenant (no limits), recipients rcpt0..99 in turn")
	default:
		fmt.Fprintf(w, "scenario: tenant %s, recipients %.0f%% known (a pool of %d mailed before the runs: %d) and %.0f%% first contacts over %d domains\n",
			FullTenant, 100*s.KnownFraction, KnownPool, s.KnownSeeded, 100*(1-s.KnownFraction), s.Domains)
	}
	if s.Limits != nil {
		fmt.Fprintf(w, "limits of tenant %s (every one set, none reached): %s\n", FullTenant, s.Limits)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tstore\tC\tmsgs\tmsgs/s\tp50 ms\tp99 ms\tp99.9 ms\tSES p50\tadded p50\tadded p99\tadded p99.9\tgw CPU µs/msg\tredis calls/msg\tredis CPU µs/msg\t")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			p.Name, orDash(p.Store), p.Concurrency, p.Messages, p.Throughput, p.Latency.P50, p.Latency.P99, p.Latency.P999,
			optMs(p.SESTime, func(s *bench.Summary) float64 { return s.P50 }),
			optMs(p.Added, func(s *bench.Summary) float64 { return s.P50 }),
			optMs(p.Added, func(s *bench.Summary) float64 { return s.P99 }),
			optMs(p.Added, func(s *bench.Summary) float64 { return s.P999 }),
			optF(p.GatewayCPUPerMsgUs, "%.1f"),
			optRedis(p.Redis, func(r *Redis) float64 { return r.CallsPerMsg }, "%.2f"),
			optRedis(p.Redis, func(r *Redis) float64 { return r.CPUUsecPerMsg }, "%.1f"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, p := range r.Phases {
		var codes []string
		for _, k := range slices.Sorted(maps.Keys(p.Codes)) {
			codes = append(codes, fmt.Sprintf("%s=%d", k, p.Codes[k]))
		}
		fmt.Fprintf(w, "%-24s answers %s", phaseLabel(p), strings.Join(codes, " "))
		if p.SESAccepted != nil {
			fmt.Fprintf(w, "; SES accepted %d", *p.SESAccepted)
		}
		fmt.Fprintf(w, "; %s/s %.0f", p.OKCode, p.OKPerSec)
		if p.BenchCPUPerMsgUs != nil {
			fmt.Fprintf(w, "; bench CPU %.1f µs/msg", *p.BenchCPUPerMsgUs)
		}
		if p.Late > 0 {
			fmt.Fprintf(w, "; %d sends started over 1 ms behind schedule (max %.1f ms)", p.Late, p.MaxLagMs)
		}
		if s.Rate > 0 && p.Throughput < 0.95*s.Rate {
			fmt.Fprintf(w, "; RATE NOT HELD (%.0f of %.0f/s)", p.Throughput, s.Rate)
		}
		fmt.Fprintln(w)
		for _, k := range slices.Sorted(maps.Keys(p.Errors)) {
			fmt.Fprintf(w, "%-24s   e.g. %s: %s\n", "", k, p.Errors[k])
		}
		if p.Redis != nil && len(p.Redis.CallsByCommand) > 0 {
			var cmds []string
			for _, k := range slices.Sorted(maps.Keys(p.Redis.CallsByCommand)) {
				cmds = append(cmds, fmt.Sprintf("%s=%.3g", k, p.Redis.CallsByCommand[k]))
			}
			fmt.Fprintf(w, "%-24s   redis calls/msg %s; script µs/msg %.1f (command µs/msg %.1f, a script's commands counted twice)\n", "", strings.Join(cmds, " "), p.Redis.ScriptUsecPerMsg, p.Redis.CmdUsecPerMsg)
		}
	}
	if len(r.Runs) > 1 {
		fmt.Fprintf(w, "\nmedians of %d runs; each run:\n", len(r.Runs))
		for i, p := range r.Phases {
			var tp, p99 []string
			for _, run := range r.Runs {
				if i < len(run.Phases) {
					tp = append(tp, fmt.Sprintf("%.0f", run.Phases[i].Throughput))
					p99 = append(p99, fmt.Sprintf("%.3f", run.Phases[i].Latency.P99))
				}
			}
			fmt.Fprintf(w, "  %-24s msgs/s %s; p99 ms %s\n", phaseLabel(p), strings.Join(tp, " "), strings.Join(p99, " "))
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nagainst baseline-sdk and the thin relay (same SES server, same concurrency, same run):")
		for _, ra := range r.Ratios {
			fmt.Fprintf(w, "  %-24s vs SDK: throughput %.2fx, p50 latency %.2fx; added over baseline p50 %+.3f ms, p99 %+.3f ms, p99.9 %+.3f ms\n",
				phaseLabel(Phase{Name: ra.Phase, Store: ra.Store, Concurrency: ra.Concurrency}),
				ra.ThroughputRatio, ra.LatencyP50Ratio, ra.AddedP50Ms, ra.AddedP99Ms, ra.AddedP999Ms)
			if t := ra.Thin; t != nil {
				fmt.Fprintf(w, "  %-24s vs thin relay: throughput %.2fx, CPU per message %s; added over the relay p50 %+.3f ms, p99 %+.3f ms (added over SDK p50 %s the relay's)\n",
					"", t.ThroughputRatio, ratioOrNA(t.CPURatio), t.AddedP50Ms, t.AddedP99Ms, ratioOrNA(t.AddedP50Ratio))
			}
		}
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func optMs(s *bench.Summary, f func(*bench.Summary) float64) string {
	if s == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", f(s))
}

func optF(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

func optRedis(r *Redis, f func(*Redis) float64, format string) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, f(r))
}

// phaseLabel names a phase with its store and concurrency.
func phaseLabel(p Phase) string {
	if p.Store != "" {
		return fmt.Sprintf("%s[%s] c=%d", p.Name, p.Store, p.Concurrency)
	}
	return fmt.Sprintf("%s c=%d", p.Name, p.Concurrency)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ratioOrNA(v float64) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", v)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}
