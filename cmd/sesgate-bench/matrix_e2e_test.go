package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/bench/load"
)

// TestLoadMatrixEndToEnd: one small run of the default (full) scenario
// over both stores at C=1,2 starts the thin relay as a child, measures
// every phase at every concurrency in the interleaved order, and gives
// each gateway phase its ratios to the SDK and to the thin relay.
func TestLoadMatrixEndToEnd(t *testing.T) {
	bin := buildSesgate(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	out := runBench(t, 90*time.Second, "load", "--sesgate", bin, "-n", "40", "-c", "1,2", "--store", "redis,embedded",
		"--warmup", "5", "--duration", "15s", "--domains", "4", "--gateway-log-level", "warn", "--json", jsonPath)
	r := readReport[load.Report](t, jsonPath)

	var order []string
	for _, p := range r.Phases {
		order = append(order, fmt.Sprintf("%s/%s/%d", p.Name, p.Store, p.Concurrency))
		// The baselines have no limits; a gateway may refuse a rare one (a
		// store call over the limiter's timeout on a loaded machine).
		ok := p.Codes[p.OKCode]
		if p.Messages != 40 || (ok != 40 && (p.Store == "" || ok < 36)) || p.SESAccepted == nil || *p.SESAccepted != ok {
			t.Errorf("%s: %d sends, answers %v (errors %v), SES accepted %v: want 40 sends, (nearly) all %s, each reaching SES",
				order[len(order)-1], p.Messages, p.Codes, p.Errors, p.SESAccepted, p.OKCode)
		}
		if p.Name != "baseline-sdk" && (p.GatewayCPUPerMsgUs == nil || *p.GatewayCPUPerMsgUs <= 0) {
			t.Errorf("%s: no process CPU per message", order[len(order)-1])
		}
		if p.Matched != ok {
			t.Errorf("%s: %d sends matched to their SES timing, want every %s (%d)", order[len(order)-1], p.Matched, p.OKCode, ok)
		}
	}
	var want []string
	for _, c := range []int{1, 2} {
		want = append(want, fmt.Sprintf("thin-relay//%d", c), fmt.Sprintf("baseline-sdk//%d", c))
		for _, st := range []string{"redis", "embedded"} {
			want = append(want, fmt.Sprintf("http/%s/%d", st, c), fmt.Sprintf("smtp/%s/%d", st, c))
		}
	}
	if !slices.Equal(order, want) {
		t.Fatalf("phases %v, want %v", order, want)
	}
	thinRatios := 0
	for _, ra := range r.Ratios {
		if ra.Phase == "thin-relay" {
			if ra.Thin != nil || ra.ThroughputRatio <= 0 {
				t.Errorf("thin relay's own ratio %+v", ra)
			}
			continue
		}
		if ra.Thin == nil || ra.Thin.ThroughputRatio <= 0 || ra.Thin.CPURatio <= 0 || ra.ThroughputRatio <= 0 {
			t.Errorf("%s[%s] c=%d: ratios %+v, thin %+v", ra.Phase, ra.Store, ra.Concurrency, ra, ra.Thin)
			continue
		}
		thinRatios++
	}
	if thinRatios != 8 {
		t.Errorf("%d gateway phases with thin-relay ratios, want 8", thinRatios)
	}
	s := r.Setup
	if s.Tenant != "full" || s.Limits == nil || s.Limits.PerDomainBurst == 0 || s.KnownSeeded < load.MinSeeded ||
		!slices.Equal(s.Stores, []string{"redis", "embedded"}) || !slices.Equal(s.Concurrencies, []int{1, 2}) || !s.ThinRelay {
		t.Errorf("setup %+v", s)
	}
	for _, w := range []string{"vs thin relay: throughput", "smtp[embedded] c=2", "limits of tenant full (every one set, none reached): rate", "50% known"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
}
