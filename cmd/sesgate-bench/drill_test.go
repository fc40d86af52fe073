package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/bench/drill"
)

// TestDrillEndToEnd runs the scaled-down drill (testdata/drill-ci.yml)
// against a real gateway, Redis and the SES test server with events, and
// checks the drill's invariants from its JSON report: the attacker held to
// its bound, the victim's breaker refusing within 5 s of its threshold, the
// bystanders never refused by a breaker, the account under 2% bounces.
func TestDrillEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed (CI=true; scripts/test.sh installs it)")
		}
		t.Skip("redis-server not installed (scripts/test.sh installs it)")
	}
	bin := buildSesgate(t)
	jsonPath := filepath.Join(t.TempDir(), "drill.json")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	err := run(ctx, []string{"drill", "--sesgate", bin, "--json", jsonPath, "testdata/drill-ci.yml"}, &stdout, &stderr)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("drill: %v (after %v)\nstdout:\n%s\nstderr:\n%s", err, took, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var r drill.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Passed || len(r.Checks) != 7 {
		t.Fatalf("report: passed %v, checks %+v", r.Passed, r.Checks)
	}
	rows := map[string]drill.Row{}
	for _, rw := range r.Rows {
		rows[rw.Name] = rw
	}
	att := rows[drill.AttackerRow]
	// burst 10 + 100 first contacts; the attacker got some through, and
	// was refused far more often than not.
	if att.SESMessages < 1 || att.SESMessages > 110 || att.Refusals["breaker_open"] < 10*att.SESMessages {
		t.Errorf("attacker row %+v", att)
	}
	tr := r.Trip
	if tr.Victim != "newsletter" || tr.Tripped == nil || tr.Threshold == nil || tr.FirstBounce == nil ||
		*tr.AfterThreshold > 5 || *tr.Tripped < 2 || *tr.FirstBounce < 2 {
		t.Errorf("trip %+v", tr)
	}
	for _, name := range []string{"billing", "shop"} {
		rw := rows[name]
		if rw.SESMessages < 500 || rw.Refusals["breaker_open"] != 0 || rw.Refusals["tenant_frozen"] != 0 {
			t.Errorf("bystander %s: %+v", name, rw)
		}
	}
	a := r.Account
	if a.Recipients < 1000 || a.BounceRate >= 0.02 || a.Events == 0 || a.EventsRefused != 0 || a.Bounces < att.Bounces {
		t.Errorf("account %+v", a)
	}
	for _, want := range []string{"attacker    newsletter", "ok   breaker_trip", "PASS"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
	t.Logf("drill took %v\n%s", took, stdout.String())
}

func TestParseDrill(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantFile string
		wantJSON string
		wantErr  string
	}{
		{name: "built-in", args: nil},
		{name: "file then flags", args: []string{"s.yml", "--json", "o.json"}, wantFile: "s.yml", wantJSON: "o.json"},
		{name: "flags then file", args: []string{"--json", "o.json", "--keep", "s.yml"}, wantFile: "s.yml", wantJSON: "o.json"},
		{name: "two files", args: []string{"a.yml", "--keep", "b.yml"}, wantErr: "at most one scenario file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseDrill(tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || d.file != tt.wantFile || d.jsonPath != tt.wantJSON || d.logLevel != "warn" {
				t.Fatalf("settings %+v, err %v", d, err)
			}
		})
	}
	if _, err := loadScenario("testdata/drill-ci.yml"); err != nil {
		t.Fatalf("the CI scenario: %v", err)
	}
	if s, err := loadScenario(""); err != nil || s.Name != drill.Default().Name {
		t.Fatalf("no file: %v %v", s, err)
	}
}
