// Command sesgate-bench measures sesgate: throughput, latency, the latency
// the gateway adds over the SES server's own time, CPU per message and
// Redis work per message, side by side with a baseline that sends to the
// same SES server with the AWS SDK and no gateway.
//
//	sesgate-bench load   [flags]   drive the gateway over HTTP and/or SMTP
//	sesgate-bench refuse [flags]   hammer a tenant that is over its limit
//	sesgate-bench drill  [FILE]    the leaked-token drill (default scenario without FILE)
//	sesgate-bench scale  [flags]   admission cost against the policy's and the suppression list's size
//	sesgate-bench thin-relay --smtp-addr ADDR --ses-endpoint URL
//	                               the thin relay baseline (package thinrelay), as a process
//	sesgate-bench memory [flags]   gateway memory: idle SMTP sessions, one large message per path
//
// With no target (--http, --smtp) it starts what it needs on free loopback
// ports and stops it at the end: the local SES v2 server (package sestest)
// in this process, with every request timed; the gateway (`sesgate serve`,
// built from the repository or given with --sesgate) with SESGATE_SINK=ses
// pointed at it; and, with --start-redis, a redis-server. With a target it
// drives that gateway; traffic goes elsewhere than loopback only then.
//
// Examples:
//
//	sesgate-bench load                          # thin relay, SDK baseline, HTTP, SMTP: tenant full, 5000 messages each, 16 workers
//	sesgate-bench load -c 1,8,32 --store redis,embedded --runs 3   # the matrix, interleaved, medians per phase and C
//	sesgate-bench load --tenant dev             # the dev tenant (no limits), as before
//	sesgate-bench scale                         # admission cost: 10 vs 10,000 tenants, 0 vs 10M suppressed addresses
//	sesgate-bench load --proto http --rate 1000 # latency at a stated rate (open loop)
//	sesgate-bench load --start-redis            # with the Redis store: Redis calls and CPU per message
//	sesgate-bench load --proto smtp --starttls --per-conn 100
//	sesgate-bench load --ses-latency 5ms -c 64  # an SES that takes 5 ms per call
//	sesgate-bench refuse                        # refusals per second of a tenant over its limit
//	sesgate-bench drill                         # the leaked-token drill, built-in scenario
//	sesgate-bench drill --json drill.json my-scenario.yml
//	sesgate-bench load --http http://gw:8025 --smtp gw:2525 --user billing --token sg_... \
//	    --gateway-pid 1234 --redis-url redis://redis:6379 --json out.json
//
// The in-process SES server adds no latency unless --ses-latency says so:
// then the gateway, not SES, is what limits throughput, and the figures are
// its own cost.
//
// Every run is bounded by a message count and a duration per phase, and
// every send has a deadline. A progress line is drawn on stderr when it is
// a terminal; the summary goes to stdout, and --json FILE writes it for
// machines.
//
// The drill (`sesgate-bench drill [flags] [SCENARIO.yml]`, package
// internal/bench/drill) starts a redis-server, the SES server with bounce and
// complaint events published after a delay (relayed through this process,
// which records them, to the gateway's /v1/events/sns), and the gateway
// with a policy generated from the scenario (tenants, tokens, limits,
// configuration sets, breakers, SESGATE_SNS_TRUST_CERT for the SES server's
// signing certificate). Tenants send their legitimate traffic while an
// attacker with the victim's token sends as fast as it can to a list where
// 30% of the addresses bounce. It prints per sender what reached SES and
// the refusals by code, the moment the victim's breaker tripped (against
// its first bounce event and the moment its threshold was crossed), the
// account's bounce and complaint rates, and a verdict; it exits 1 when a
// check failed. The built-in scenario takes about 50 s;
// testdata/drill-ci.yml is the one CI runs (about 20 s).
//
// By default load measures the realistic scenario: the self-started
// gateways get a policy with tenant full, every limit set at values no run
// reaches, and recipients mix known addresses (--known-fraction of them,
// from a pool mailed before the runs) and first contacts over --domains
// recipient domains. Next to the SDK baseline it measures the thin relay
// (package thinrelay: go-smtp in, one default sesv2 client out, no auth, no
// policy), started as a child process running `sesgate-bench thin-relay`,
// and gives every gateway figure as a ratio to both.
//
// Gateway-added latency is measured per message: the SES server's handling
// time of each request is recorded under the MessageId it answers with, and
// subtracted from the end-to-end latency of the send that got that id back
// (HTTP answer or SMTP 250 reply). The baseline gets the same treatment, so
// "added over baseline" is what the gateway adds beyond a direct SDK call.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"

	"github.com/sesgate/sesgate/internal/bench/drill"
	"github.com/sesgate/sesgate/internal/bench/load"
	"github.com/sesgate/sesgate/internal/bench/memory"
	"github.com/sesgate/sesgate/internal/cli"
)

func main() { cli.Main("sesgate-bench", run) }

// usageError is a mistake in the command line: exit code 2.
type usageError = cli.UsageError

// program is the command table: it dispatches and it is the help.
func program() cli.Program {
	return cli.Program{Name: "sesgate-bench", Footer: `Run "sesgate-bench <command> -h" for its flags.`, Commands: []cli.Command{
		{Name: "load", About: "drive the gateway over HTTP and SMTP, with a direct-SDK baseline", Run: loadCmd},
		{Name: "refuse", About: "refusals per second of a tenant over its limit (HTTP keep-alive)", Run: refuseCmd},
		{Name: "drill", Args: "[SCENARIO.yml]", About: "the leaked-token drill: a built-in scenario, or a scenario file", Run: drillCmd},
		{Name: "scale", About: "admission cost against size: 10 vs 10,000 tenants, 0 vs 10M suppressed addresses; Redis memory per tenant and address", Run: scaleCmd},
		{Name: "thin-relay", About: "run the thin go-smtp -> SES v2 relay load compares with (loopback, no auth)", Run: thinRelayCmd},
		{Name: "memory", About: "gateway memory: idle SMTP sessions, and the peak of one large message per path", Run: memory.Command},
	}}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return program().Run(ctx, args, stdout, stderr)
}

func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings("load", args, stderr)
	if err != nil {
		return err
	}
	return load.Bench(ctx, s, stdout, stderr)
}

func refuseCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings("refuse", args, stderr)
	if err != nil {
		return err
	}
	if s.Target() && s.HTTPURL == "" {
		return usageError{Msg: "refuse drives HTTP: give --http"}
	}
	return load.Refuse(ctx, s, stdout, stderr)
}

// errDrillFailed is returned when a check of the drill failed; the report
// says which.
var errDrillFailed = errors.New("drill failed: see the FAIL lines")

func drillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d, err := parseDrill(args, stderr)
	if err != nil {
		return err
	}
	sc, err := loadScenario(d.file)
	if err != nil {
		return err
	}
	rep, err := drill.Run(ctx, sc, drill.RunOptions{Sesgate: d.sesgate, LogLevel: d.logLevel, Keep: d.keep, Stderr: stderr})
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
