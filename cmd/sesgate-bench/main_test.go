package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/bench/load"
)

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		args    []string
		wantErr string
		check   func(*load.Settings) bool
	}{
		{name: "defaults", cmd: "load", check: func(s *load.Settings) bool {
			return s.Proto == "both" && s.Concurrency == 16 && s.Count == 5000 && s.Duration == 20*time.Second && s.Baseline && !s.Target()
		}},
		{name: "refuse defaults", cmd: "refuse", check: func(s *load.Settings) bool {
			return s.Proto == "http" && s.Count == 0 && s.Duration == 5*time.Second
		}},
		{name: "target http only", cmd: "load", args: []string{"--http", "http://127.0.0.1:8025", "--token", "t"}, check: func(s *load.Settings) bool {
			return s.Target() && s.Proto == "http"
		}},
		{name: "target smtp only", cmd: "load", args: []string{"--smtp", "127.0.0.1:2525", "--token", "t"}, check: func(s *load.Settings) bool {
			return s.Proto == "smtp"
		}},
		{name: "unbounded", cmd: "load", args: []string{"-n", "0", "--duration", "0"}, wantErr: "give -n or --duration: every run must end by itself"},
		{name: "every problem at once", cmd: "load", args: []string{"--proto", "ftp", "-c", "0", "--size", "0"},
			wantErr: `-c must be 1 to 512; --proto "ftp": want http, smtp or both; --size must be 1 to 10485760`},
		{name: "target without token", cmd: "load", args: []string{"--http", "http://127.0.0.1:1"}, wantErr: "a target needs --token"},
		{name: "token without target", cmd: "load", args: []string{"--token", "t"}, wantErr: "--token, --gateway-pid and --ses-endpoint need a target (--http or --smtp)"},
		{name: "bad target URL", cmd: "load", args: []string{"--http", "127.0.0.1:1", "--token", "t"}, wantErr: `--http "127.0.0.1:1": want http://host:port`},
		{name: "target with start-redis", cmd: "load", args: []string{"--smtp", "h:1", "--token", "t", "--start-redis"}, wantErr: "are for a self-started gateway"},
		{name: "redis twice", cmd: "load", args: []string{"--start-redis", "--redis-url", "redis://h:1"}, wantErr: "--start-redis and --redis-url exclude each other"},
		{name: "arguments", cmd: "load", args: []string{"extra"}, wantErr: "load takes no arguments"},
		{name: "runs and profile", cmd: "load", args: []string{"--runs", "3", "--cpu-profile", "/tmp/p", "--cpu-profile-time", "2s"}, check: func(s *load.Settings) bool {
			return s.Runs == 3 && s.ProfileDir == "/tmp/p" && s.ProfileDur == 2*time.Second
		}},
		{name: "runs bounded", cmd: "load", args: []string{"--runs", "0"}, wantErr: "--runs must be 1 to 20"},
		{name: "profile of a target", cmd: "load", args: []string{"--http", "http://h:1", "--token", "t", "--cpu-profile", "/tmp/p"}, wantErr: "--cpu-profile are for a self-started gateway"},
		{name: "refuse has no proto", cmd: "refuse", args: []string{"--proto", "smtp"}, wantErr: "flag provided but not defined: -proto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseSettings(tt.cmd, tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(s) {
				t.Fatalf("settings %+v, err %v", s, err)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"none", nil, "no command"},
		{"unknown", []string{"fly"}, "unknown command fly"},
		{"drill, two files", []string{"drill", "a.yml", "b.yml"}, "drill takes at most one scenario file"},
		{"drill, strict scenario", []string{"drill", "testdata/drill-bad.yml"}, "field attackers not found"},
		{"drill, bad flag", []string{"drill", "--fast"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want usage error %q", err, tt.wantErr)
			}
		})
	}
}

// buildSesgate builds the gateway once for the end-to-end tests.
func buildSesgate(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end to end: builds and starts the gateway")
	}
	bin := filepath.Join(t.TempDir(), "sesgate")
	cmd := exec.Command("go", "build", "-o", bin, "../sesgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBench runs sesgate-bench with args within timeout and returns its
// stdout; a failure shows both outputs.
func runBench(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("%s: %v (after %v)\nstdout:\n%s\nstderr:\n%s", args[0], err, time.Since(start), stdout.String(), stderr.String())
	}
	return stdout.String()
}

// readReport reads the JSON report (load.Report, drill.Report) at path.
func readReport[R any](t *testing.T, path string) R {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r R
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLoadEndToEnd starts the whole stack (the dev scenario, no thin
// relay) and checks that the report adds up: every send answered and
// counted once, SES got exactly the accepted ones, every accepted send
// matched to its SES timing, percentiles in order, CPU per message
// measured.
func TestLoadEndToEnd(t *testing.T) {
	bin := buildSesgate(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := []string{"load", "--sesgate", bin, "-n", "300", "-c", "4", "--warmup", "20", "--duration", "15s",
		"--tenant", "dev", "--thin-relay=false", "--gateway-log-level", "warn", "--json", jsonPath}
	redis := false
	if _, err := exec.LookPath("redis-server"); err == nil {
		args, redis = append(args, "--start-redis"), true
	}
	out := runBench(t, 60*time.Second, args...)
	r := readReport[load.Report](t, jsonPath)
	wantPhases := []string{"baseline-sdk", "http", "smtp"}
	if len(r.Phases) != len(wantPhases) {
		t.Fatalf("%d phases, want %v", len(r.Phases), wantPhases)
	}
	for i, p := range r.Phases {
		t.Run(p.Name, func(t *testing.T) {
			if p.Name != wantPhases[i] {
				t.Fatalf("phase %d is %s, want %s", i, p.Name, wantPhases[i])
			}
			var sum int64
			for _, n := range p.Codes {
				sum += n
			}
			if p.Messages != 300 || sum != 300 || p.Latency.Count != 300 {
				t.Errorf("messages %d, codes %v (sum %d), latency samples %d: want 300 each", p.Messages, p.Codes, sum, p.Latency.Count)
			}
			// The baseline has no limits to hit; the gateway may refuse a few
			// (its account-wide SES rate, say) but must accept most.
			ok := p.Codes[p.OKCode]
			if ok != 300 && (p.Name == "baseline-sdk" || ok < 250) {
				t.Errorf("codes %v: want (nearly) all 300 %s (errors %v)", p.Codes, p.OKCode, p.Errors)
			}
			if p.SESAccepted == nil || *p.SESAccepted != ok {
				t.Errorf("SES accepted %v, want the %d %s answers", p.SESAccepted, ok, p.OKCode)
			}
			if p.Matched != ok || p.Added == nil || p.SESTime == nil || p.Added.Count != uint64(ok) {
				t.Errorf("matched %d, want every %s answer (%d) matched to its SES timing", p.Matched, p.OKCode, ok)
			}
			l := p.Latency
			if !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
				t.Errorf("latency out of order: %+v", l)
			}
			if p.SESTime != nil && p.SESTime.P50 > l.P50 {
				t.Errorf("SES time p50 %.3f ms above end-to-end p50 %.3f ms", p.SESTime.P50, l.P50)
			}
			if p.Throughput <= 0 || p.BenchCPUPerMsgUs == nil || *p.BenchCPUPerMsgUs <= 0 {
				t.Errorf("throughput %v, bench CPU %v: want > 0", p.Throughput, p.BenchCPUPerMsgUs)
			}
			if p.Name == "baseline-sdk" {
				if p.GatewayCPUPerMsgUs != nil || p.Redis != nil {
					t.Errorf("baseline has gateway CPU %v or Redis %v", p.GatewayCPUPerMsgUs, p.Redis)
				}
				return
			}
			if p.GatewayCPUPerMsgUs == nil || *p.GatewayCPUPerMsgUs <= 0 {
				t.Errorf("gateway CPU per message %v, want > 0", p.GatewayCPUPerMsgUs)
			}
			if redis && (p.Redis == nil || p.Redis.CPUUsecPerMsg < 0) {
				t.Errorf("Redis figures %+v with --start-redis", p.Redis)
			}
		})
	}
	if len(r.Ratios) != 2 || r.Ratios[0].Phase != "http" || r.Ratios[0].ThroughputRatio <= 0 {
		t.Errorf("ratios %+v, want http and smtp against the baseline", r.Ratios)
	}
	for _, want := range []string{"baseline-sdk", "added p50", "against baseline-sdk", "smtp[", "answers 250=", "scenario: the dev tenant"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestRefuseEndToEnd hammers a tenant allowed one message per second, in
// two runs with a CPU profile of the gateway: all but a few answers are
// 429, and SES saw exactly the 200s.
func TestRefuseEndToEnd(t *testing.T) {
	bin := buildSesgate(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	profDir := t.TempDir()
	runBench(t, 30*time.Second, "refuse", "--sesgate", bin, "-c", "4", "--duration", "1s", "--warmup", "10", "--runs", "2",
		"--cpu-profile", profDir, "--cpu-profile-time", "1s", "--gateway-log-level", "warn", "--json", jsonPath)
	r := readReport[load.Report](t, jsonPath)
	if len(r.Phases) != 1 {
		t.Fatalf("%d phases, want 1", len(r.Phases))
	}
	p := r.Phases[0]
	if p.Name != "refuse-http" || p.OKCode != "429" {
		t.Fatalf("phase %s ok code %s", p.Name, p.OKCode)
	}
	if p.Codes["429"] < 100 || p.Codes["200"] > 4 || p.Codes["429"]+p.Codes["200"] != p.Messages {
		t.Errorf("codes %v of %d: want only 429 but for at most 2 admitted per run (rate 1/s, burst 1)", p.Codes, p.Messages)
	}
	if p.SESAccepted == nil || *p.SESAccepted != p.Codes["200"] {
		t.Errorf("SES accepted %v, want %d", p.SESAccepted, p.Codes["200"])
	}
	if p.OKPerSec <= 0 || p.GatewayCPUPerMsgUs == nil {
		t.Errorf("refusals/s %v, gateway CPU %v", p.OKPerSec, p.GatewayCPUPerMsgUs)
	}
	// Two runs, summed counts; the first run profiled.
	if len(r.Runs) != 2 || r.Runs[0].Phases[0].Messages+r.Runs[1].Phases[0].Messages != p.Messages {
		t.Errorf("runs %d, messages %d", len(r.Runs), p.Messages)
	}
	if fi, err := os.Stat(filepath.Join(profDir, "refuse-http-embedded-c4.pprof")); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile: %v", err)
	}
}

// TestHelp: `sesgate-bench help` lists every command of the table.
func TestHelp(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for path, c := range program().All() {
		if c.About == "" || !strings.Contains(stdout.String(), "\n  "+path+" ") {
			t.Errorf("help does not describe %q:\n%s", path, stdout.String())
		}
	}
}

// TestMain lets the test binary stand in for sesgate-bench when load
// starts the thin relay as a child (os.Executable is then this binary).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "thin-relay" {
		main()
		return
	}
	os.Exit(m.Run())
}
