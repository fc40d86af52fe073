// Package scale is `sesgate-bench scale`: what admission costs against
// the size of the state, measured side by side in one invocation.
//
// Three gateways on the Redis store, each on its own redis-server (so
// each server's CPU is its gateway's), all sending as tenant full (every
// limit set, none reached) with the recipient mix of `load`:
//
//	base        a policy of 10 tenants, no suppressed address
//	tenants     a policy of Options.Tenants tenants (the others idle)
//	suppressed  10 tenants, Options.Suppressions addresses suppressed,
//	            loaded before the gateway starts with pipelined HSETs
//	            straight into the store's hashes, half in the global list
//	            and half in tenant full's
//
// Every run measures the three in turn (interleaved), and the report
// gives the medians of msgs/s, gateway CPU and redis-server CPU per
// message, each with its ratio to base; Redis memory per suppressed
// address (used_memory delta over the load / N) and per active tenant
// (used_memory delta after Options.ActiveTenants idle tenants each sent
// MessagesPerActive messages / K, on the tenants gateway).
//
// Invariants: every phase is bounded by a count and a duration (package
// load); the stack is started on loopback and stopped at the end (package
// stack).
package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/bench"
	"github.com/sesgate/sesgate/internal/bench/load"
	"github.com/sesgate/sesgate/internal/bench/stack"
)

// BaseTenants is the small policy's size.
const BaseTenants = 10

// MessagesPerActive is what each active tenant sends for the memory
// figure, each message to its own new recipient.
const MessagesPerActive = 5

// Options are the flags of `sesgate-bench scale`.
type Options struct {
	Sesgate       string
	LogLevel      string
	Keep          bool
	Proto         string // http or smtp
	Concurrency   int
	Count         int64
	Duration      time.Duration
	Warmup        int64
	Runs          int
	Size          int
	Tenants       int   // the large policy
	Suppressions  int64 // the large suppression list
	ActiveTenants int   // for the memory per active tenant
	JSONPath      string
}

// Report is what scale measured.
type Report struct {
	Date  time.Time `json:"date"`
	Setup Options   `json:"setup"`
	// Setups are base, tenants, suppressed, with medians over the runs.
	Setups []Setup `json:"setups"`
	// SuppressionLoadSeconds is how long loading took.
	SuppressionLoadSeconds float64 `json:"suppression_load_s"`
	// RedisBytesPerSuppressed is used_memory's growth over the load / N.
	RedisBytesPerSuppressed float64 `json:"redis_bytes_per_suppressed_address"`
	// RedisBytesPerActiveTenant is used_memory's growth after K idle
	// tenants sent MessagesPerActive messages each / K.
	RedisBytesPerActiveTenant float64  `json:"redis_bytes_per_active_tenant"`
	Notes                     []string `json:"notes"`
}

// Setup is one gateway's figures.
type Setup struct {
	Name         string    `json:"name"`
	Tenants      int       `json:"tenants"`
	Suppressed   int64     `json:"suppressed"`
	MsgsPerS     float64   `json:"msgs_per_s"`
	GatewayCPUUs float64   `json:"gateway_cpu_per_msg_us"`
	RedisCPUUs   float64   `json:"redis_cpu_per_msg_us"`
	RedisCalls   float64   `json:"redis_calls_per_msg"`
	GatewayRSSMB float64   `json:"gateway_rss_mb"` // at the end
	OK           int64     `json:"ok"`
	Sent         int64     `json:"sent"`
	Errors       []string  `json:"errors,omitempty"`
	Runs         []float64 `json:"msgs_per_s_by_run"`
	// Ratios to base (medians of the per-run ratios).
	ThroughputRatio float64 `json:"throughput_ratio"`
	GatewayCPURatio float64 `json:"gateway_cpu_ratio"`
	RedisCPURatio   float64 `json:"redis_cpu_ratio"`
	cpu, rcpu       []float64
	calls           []float64
}

// node is one started gateway and its redis-server.
type node struct {
	setup    *Setup
	gw       *stack.Gateway
	redis    *stack.Proc
	redisURL string
	client   *redis.Client
	token    string
	idleToks []string // tokens of idle-0.. (tenants gateway)
	phases   int
}

// Run measures and writes the report to stdout (and o.JSONPath).
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "sesgate-bench-scale-")
	if err != nil {
		return err
	}
	var nodes []*node
	var ses *stack.SES
	defer func() {
		for _, n := range nodes {
			if n.gw != nil {
				n.gw.Stop()
			}
			if n.client != nil {
				n.client.Close()
			}
			if n.redis != nil {
				n.redis.Stop()
			}
		}
		if ses != nil {
			ses.Close()
		}
		if o.Keep {
			fmt.Fprintf(stderr, "kept %s\n", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	bin, err := stack.Binary(ctx, o.Sesgate, dir, stderr)
	if err != nil {
		return err
	}
	if ses, err = stack.StartSES(0, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	rep := &Report{Date: time.Now().UTC().Truncate(time.Second), Setup: o}
	for _, su := range []Setup{
		{Name: "base", Tenants: BaseTenants},
		{Name: "tenants", Tenants: o.Tenants},
		{Name: "suppressed", Tenants: BaseTenants, Suppressed: o.Suppressions},
	} {
		n := &node{setup: &su}
		nodes = append(nodes, n)
		if err := start(ctx, n, o, bin, filepath.Join(dir, su.Name), ses.URL, rep, stderr); err != nil {
			return fmt.Errorf("%s: %w", su.Name, err)
		}
	}
	for run := range o.Runs {
		fmt.Fprintf(stderr, "run %d of %d\n", run+1, o.Runs)
		for _, n := range nodes {
			if err := measure(ctx, n, o, stderr); err != nil {
				return fmt.Errorf("%s: %w", n.setup.Name, err)
			}
		}
	}
	// Memory per active tenant, on the tenants gateway.
	tn := nodes[1]
	if k := min(o.ActiveTenants, len(tn.idleToks)); k > 0 {
		if rep.RedisBytesPerActiveTenant, err = activeTenants(ctx, tn, o, k); err != nil {
			return fmt.Errorf("active tenants: %w", err)
		}
	}
	base := nodes[0].setup
	for _, n := range nodes {
		s := n.setup
		s.MsgsPerS = median(s.Runs)
		s.GatewayCPUUs, s.RedisCPUUs, s.RedisCalls = median(s.cpu), median(s.rcpu), median(s.calls)
		var tr, cr, rr []float64
		for i := range s.Runs {
			tr = append(tr, div(s.Runs[i], base.Runs[i]))
			cr = append(cr, div(s.cpu[i], base.cpu[i]))
			rr = append(rr, div(s.rcpu[i], base.rcpu[i]))
		}
		s.ThroughputRatio, s.GatewayCPURatio, s.RedisCPURatio = median(tr), median(cr), median(rr)
		if rss, err := procRSS(n.gw.Pid()); err == nil {
			s.GatewayRSSMB = float64(rss) / (1 << 20)
		}
		rep.Setups = append(rep.Setups, *s)
	}
	rep.Notes = []string{
		"each setup is its own gateway on its own redis-server, measured in turn within every run; figures are medians over the runs, ratios are medians of the per-run ratios to base",
		"gateway CPU from /proc/<pid>/stat (10 ms ticks); redis CPU from INFO cpu; redis memory from INFO memory used_memory",
		fmt.Sprintf("suppressed addresses are loaded with pipelined HSETs (%d fields each) into gw:{g}:sup and gw:{t:full}:sup before the gateway starts; none is a recipient of the load", fieldsPerHSet),
	}
	rep.text(stdout)
	if o.JSONPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.JSONPath, append(b, '\n'), 0o644)
	}
	return nil
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// start starts n's redis-server, loads its suppressions, writes its
// policy, starts its gateway and mails the known recipients.
func start(ctx context.Context, n *node, o Options, bin, dir, sesURL string, rep *Report, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var err error
	if n.redis, n.redisURL, err = stack.StartRedis(ctx, dir); err != nil {
		return err
	}
	ropts, err := redis.ParseURL(n.redisURL)
	if err != nil {
		return err
	}
	n.client = redis.NewClient(ropts)
	if n.setup.Suppressed > 0 {
		before, err := UsedMemory(ctx, n.client)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "loading %d suppressed addresses ...\n", n.setup.Suppressed)
		took, err := LoadSuppressions(ctx, n.client, load.FullTenant, n.setup.Suppressed)
		if err != nil {
			return err
		}
		after, err := UsedMemory(ctx, n.client)
		if err != nil {
			return err
		}
		rep.SuppressionLoadSeconds = took.Seconds()
		rep.RedisBytesPerSuppressed = float64(after-before) / float64(n.setup.Suppressed)
		fmt.Fprintf(stderr, "loaded in %s, %.1f bytes of Redis memory each\n", took.Round(time.Millisecond), rep.RedisBytesPerSuppressed)
	}
	var others []auth.Record
	others, n.idleToks = load.IdleTenants(n.setup.Tenants - 1)
	path, token, err := load.WritePolicy(dir, load.PolicyOptions{Limits: load.FullLimits(), Others: others})
	if err != nil {
		return err
	}
	n.token = token
	if n.gw, err = stack.StartGateway(ctx, stack.GatewayOptions{Bin: bin, Dir: dir, SESURL: sesURL, RedisURL: n.redisURL,
		LogLevel: o.LogLevel, ConfigPath: path}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "started %s: gateway pid %d, %d tenants, %d suppressed, redis %s\n",
		n.setup.Name, n.gw.Pid(), n.setup.Tenants, n.setup.Suppressed, n.redisURL)
	res, err := load.Run(ctx, load.Options{Workers: max(o.Concurrency, 8), Count: load.KnownPool, Duration: time.Minute,
		NewSender: senders(n, o, load.FullTenant, n.token, &load.Mix{Seed: true, Domains: 50})})
	if err != nil {
		return err
	}
	if ok := res.Codes["200"] + res.Codes["250"]; ok < load.MinSeeded {
		return fmt.Errorf("mailing the known recipients: answers %v (e.g. %v)", res.Codes, res.Errors)
	}
	return nil
}

// senders makes the sender factory of n's gateway for a tenant.
func senders(n *node, o Options, user, token string, mix *load.Mix) func(int) (load.Sender, error) {
	msg := load.Message{Size: o.Size, Mix: mix}
	if o.Proto == "http" {
		h, err := load.NewHTTP(load.HTTPOptions{URL: n.gw.HTTPURL + "/v1/messages", Token: token, Message: msg, Conns: max(o.Concurrency, 8)})
		if err != nil {
			return func(int) (load.Sender, error) { return nil, err }
		}
		return h.NewSender
	}
	s, err := load.NewSMTP(load.SMTPOptions{Addr: n.gw.SMTPAddr, User: user, Token: token, Message: msg})
	if err != nil {
		return func(int) (load.Sender, error) { return nil, err }
	}
	return s.NewSender
}

// measure runs one warm-up and one measured phase against n.
func measure(ctx context.Context, n *node, o Options, stderr io.Writer) error {
	n.phases++
	mix := &load.Mix{KnownFraction: 0.5, Domains: 50, Tag: fmt.Sprintf("s%d", n.phases)}
	opts := load.Options{Workers: o.Concurrency, NewSender: senders(n, o, load.FullTenant, n.token, mix)}
	if o.Warmup > 0 {
		w := opts
		w.Count, w.Duration, w.SeqBase = o.Warmup, 10*time.Second, 1<<40
		if _, err := load.Run(ctx, w); err != nil {
			return err
		}
	}
	opts.Count, opts.Duration = o.Count, o.Duration
	cpu0, err1 := bench.ProcCPU(n.gw.Pid())
	r0, err2 := bench.RedisStats(ctx, n.redisURL)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	res, err := load.Run(ctx, opts)
	if err != nil {
		return err
	}
	cpu1, err1 := bench.ProcCPU(n.gw.Pid())
	r1, err2 := bench.RedisStats(ctx, n.redisURL)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	s := n.setup
	ok := res.Codes["200"] + res.Codes["250"]
	s.OK += ok
	s.Sent += res.Sent
	for code, e := range res.Errors {
		s.Errors = append(s.Errors, code+": "+e)
	}
	per := float64(max(res.Sent, 1))
	d := r1.Sub(r0)
	s.Runs = append(s.Runs, res.Throughput())
	s.cpu = append(s.cpu, float64(cpu1-cpu0)/1e3/per)
	s.rcpu = append(s.rcpu, float64(d.CPU)/1e3/per)
	s.calls = append(s.calls, float64(d.Calls)/per)
	fmt.Fprintf(stderr, "  %-10s %.0f msgs/s (%d of %d answered OK)\n", s.Name, res.Throughput(), ok, res.Sent)
	return nil
}

// activeTenants has k idle tenants send MessagesPerActive messages each
// (each to a new recipient) and returns Redis's used_memory growth per
// tenant.
func activeTenants(ctx context.Context, n *node, o Options, k int) (float64, error) {
	before, err := UsedMemory(ctx, n.client)
	if err != nil {
		return 0, err
	}
	for i := range k {
		user := fmt.Sprintf("idle-%d", i)
		mix := &load.Mix{KnownFraction: 0, Domains: 50, Tag: "a" + strconv.Itoa(i)}
		res, err := load.Run(ctx, load.Options{Workers: 1, Count: MessagesPerActive, Duration: 30 * time.Second,
			NewSender: senders(n, o, user, n.idleToks[i], mix)})
		if err != nil {
			return 0, err
		}
		if ok := res.Codes["200"] + res.Codes["250"]; ok != MessagesPerActive {
			return 0, fmt.Errorf("tenant %s: answers %v (e.g. %v)", user, res.Codes, res.Errors)
		}
	}
	after, err := UsedMemory(ctx, n.client)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(k), nil
}

// procRSS reads VmRSS of a process (bytes).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func (r *Report) text(w io.Writer) {
	o := r.Setup
	fmt.Fprintf(w, "sesgate-bench scale  %s  proto %s c=%d n=%d runs %d; tenant %s (every limit set), 50%% known recipients over 50 domains\n\n",
		r.Date.Format(time.RFC3339), o.Proto, o.Concurrency, o.Count, o.Runs, load.FullTenant)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "setup\ttenants\tsuppressed\tmsgs/s\tx base\tgw CPU µs/msg\tx base\tredis CPU µs/msg\tx base\tredis calls/msg\tgw RSS MB\t")
	for _, s := range r.Setups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.1f\t%.2f\t%.1f\t%.2f\t%.2f\t%.1f\t\n", s.Name, s.Tenants, s.Suppressed,
			s.MsgsPerS, s.ThroughputRatio, s.GatewayCPUUs, s.GatewayCPURatio, s.RedisCPUUs, s.RedisCPURatio, s.RedisCalls, s.GatewayRSSMB)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, s := range r.Setups {
		runs := make([]string, len(s.Runs))
		for i, v := range s.Runs {
			runs[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(w, "%-10s %d of %d answered OK; msgs/s by run %s\n", s.Name, s.OK, s.Sent, strings.Join(runs, " "))
		for _, e := range s.Errors {
			fmt.Fprintf(w, "%-10s   e.g. %s\n", "", e)
		}
	}
	fmt.Fprintf(w, "\nRedis memory: %.1f bytes per suppressed address (%d loaded in %.1f s); %.0f bytes per active tenant (%d tenants, %d messages each to new recipients)\n",
		r.RedisBytesPerSuppressed, o.Suppressions, r.SuppressionLoadSeconds, r.RedisBytesPerActiveTenant, o.ActiveTenants, MessagesPerActive)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}
