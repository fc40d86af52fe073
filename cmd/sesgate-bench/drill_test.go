package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/bench/drill"
	"github.com/sesgate/sesgate/internal/redistest"
)

// TestDrillEndToEnd runs the scaled-down drill (testdata/drill-ci.yml)
// against a real gateway, Redis and the SES test server with events, and
// checks the drill's invariants from its JSON report: the attacker held to
// its bound, the victim's breaker refusing within 5 s of its threshold, the
// bystanders never refused by a breaker, the account under 2% bounces.
func TestDrillEndToEnd(t *testing.T) {
	out, r := runDrill(t, "testdata/drill-ci.yml")
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
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
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
	for _, f := range []string{"testdata/drill-ci.yml", "testdata/drill-coldstart.yml", "testdata/drill-coldstart-ci.yml", "testdata/drill-window.yml"} {
		if _, err := loadScenario(f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := loadScenario("testdata/drill-ci.yml"); err != nil {
		t.Fatalf("the CI scenario: %v", err)
	}
	if s, err := loadScenario(""); err != nil || s.Name != drill.Default().Name {
		t.Fatalf("no file: %v %v", s, err)
	}
}

// TestDrillColdStart runs the scaled-down cold start
// (testdata/drill-coldstart-ci.yml): a new tenant offering 20 new
// recipients a second with the default first-contact window must reach
// 90% of that within 15 s, as its window opens on SES Delivery events,
// and keep at least 75% of it over the second half,
// and the steady tenant mailing only known recipients must never be held
// back by its window.
func TestDrillColdStart(t *testing.T) {
	out, r := runDrill(t, "testdata/drill-coldstart-ci.yml")
	if !r.Passed || len(r.Checks) != 8 {
		t.Fatalf("report: passed %v, checks %+v\n%s", r.Passed, r.Checks, out)
	}
	if len(r.Rows) != 2 || r.Rows[0].Name != "signup" || r.Rows[1].Name != "shop" {
		t.Fatalf("rows %+v", r.Rows)
	}
	cold, steady := r.Rows[0], r.Rows[1]
	// The window starts at 20: the cold tenant is held back at first, and
	// then reaches its rate.
	if cold.Ramp == nil || *cold.Ramp > 15 || cold.OfferedNew != 20 || cold.WindowHeld == 0 ||
		len(cold.FirstContacts) < 20 || cold.SESRecipients < 250 {
		t.Errorf("cold tenant: ramp %v, %+v", cold.Ramp, cold)
	}
	if steady.WindowHeld != 0 || steady.Refusals["first_contact_limited"] != 0 || steady.SESMessages < 150 || slices.Max(steady.FirstContacts) != 0 {
		t.Errorf("steady tenant: %+v", steady)
	}
	for _, want := range []string{"ok   ramp:signup", "ok   sustain:signup", "ok   never_held:shop", "warm-up of shop: 40 addresses", "PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

// runDrill runs `sesgate-bench drill` on scenario against a fresh
// sesgate build and Redis, and returns its text and JSON reports (the
// text is logged with the time it took).
func runDrill(t *testing.T, scenario string) (string, drill.Report) {
	t.Helper()
	redistest.Require(t)
	bin := buildSesgate(t)
	jsonPath := filepath.Join(t.TempDir(), "drill.json")
	start := time.Now()
	out := runBench(t, 90*time.Second, "drill", "--sesgate", bin, "--json", jsonPath, scenario)
	t.Logf("drill took %v\n%s", time.Since(start), out)
	return out, readReport[drill.Report](t, jsonPath)
}
