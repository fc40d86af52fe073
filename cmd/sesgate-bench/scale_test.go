package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/bench/scale"
)

// TestScaleFlags: defaults and every refusal, with its exact message.
func TestScaleFlags(t *testing.T) {
	o, err := parseScale(nil, &bytes.Buffer{})
	if err != nil || o.Tenants != 10_000 || o.Suppressions != 10_000_000 || o.ActiveTenants != 100 || o.Runs != 3 || o.Proto != "smtp" || o.Concurrency != 8 {
		t.Fatalf("defaults %+v %v", o, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tenants", "10", "--active-tenants", "5"}, "--tenants must be 11 to 40000"},
		{[]string{"--suppressions", "0"}, "--suppressions must be 1 to 50000000"},
		{[]string{"--tenants", "20", "--active-tenants", "20"}, "--active-tenants must be 1 to --tenants - 1"},
		{[]string{"--proto", "both", "-c", "0", "-n", "0"}, `--proto "both": want http or smtp; -c must be 1 to 512; -n must be 1 to 10000000`},
		{[]string{"--duration", "0", "--runs", "0", "x"}, "scale takes no arguments; --duration must be 1s to 10m0s; --runs must be 1 to 20"},
	} {
		if _, err := parseScale(tt.args, &bytes.Buffer{}); err == nil || err.Error() != tt.want {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestScaleEndToEnd: a tiny scale run starts the three setups, measures
// each, loads the suppressions, and reports ratios to base and Redis
// memory per suppressed address and per active tenant.
func TestScaleEndToEnd(t *testing.T) {
	bin := buildSesgate(t)
	jsonPath := filepath.Join(t.TempDir(), "scale.json")
	out := runBench(t, 90*time.Second, "scale", "--sesgate", bin, "-n", "30", "-c", "2", "--runs", "1", "--warmup", "5",
		"--tenants", "40", "--suppressions", "3000", "--active-tenants", "3", "--json", jsonPath)
	r := readReport[scale.Report](t, jsonPath)
	if len(r.Setups) != 3 || r.Setups[0].Name != "base" || r.Setups[1].Tenants != 40 || r.Setups[2].Suppressed != 3000 {
		t.Fatalf("setups %+v", r.Setups)
	}
	for _, s := range r.Setups {
		if s.OK < 27 || s.Sent != 30 || s.MsgsPerS <= 0 || s.GatewayCPUUs <= 0 || s.RedisCPUUs <= 0 || s.ThroughputRatio <= 0 || s.RedisCalls <= 0 {
			t.Errorf("%s: %+v", s.Name, s)
		}
	}
	if r.Setups[0].ThroughputRatio != 1 {
		t.Errorf("base's own ratio %v", r.Setups[0].ThroughputRatio)
	}
	// A hash field costs Redis tens of bytes at least; an active tenant its state and counters.
	if r.RedisBytesPerSuppressed < 20 || r.RedisBytesPerActiveTenant <= 0 {
		t.Errorf("memory per suppressed address %.1f, per active tenant %.1f", r.RedisBytesPerSuppressed, r.RedisBytesPerActiveTenant)
	}
	for _, w := range []string{"suppressed", "x base", "bytes per suppressed address", "bytes per active tenant (3 tenants"} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
}
