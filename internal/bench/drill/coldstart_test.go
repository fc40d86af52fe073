package drill

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/config"
)

func TestRampTime(t *testing.T) {
	tests := []struct {
		name    string
		series  []int64
		seconds int
		want    float64 // 0: never
	}{
		{"at once", []int64{20, 20, 20, 20, 20, 20}, 6, 5},
		// the initial window's burst, then a stall: 20+0+0+10+20 = 50 < 90
		{"burst then stall", []int64{20, 0, 0, 10, 20, 20, 20, 20, 20}, 9, 8},
		{"never", []int64{10, 10, 10, 10, 10, 10, 10}, 7, 0},
		{"after the run's end does not count", []int64{0, 0, 0, 0, 0, 20, 20, 20, 20, 20}, 9, 0},
		{"shorter than a span", []int64{20, 20}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rampTime(tt.series, tt.seconds, 18)
			switch {
			case tt.want == 0 && got != nil:
				t.Fatalf("ramp %v, want never", *got)
			case tt.want != 0 && (got == nil || *got != tt.want):
				t.Fatalf("ramp %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFirstContacts(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	msg := func(tenant string, at time.Duration, rcpts ...string) SESMessage {
		return SESMessage{Tenant: tenant, Recipients: rcpts, At: t0.Add(at)}
	}
	got := firstContacts([]SESMessage{
		msg("w", -time.Second, "a@x", "b@x"), // warm-up: known, not counted
		msg("w", 0, "a@x"),
		msg("w", 1500*time.Millisecond, "b@x", "c@x"),
		msg("c", 200*time.Millisecond, "a@x"), // another tenant's first contact
		msg("c", 300*time.Millisecond, "a@x"),
		msg("c", 3100*time.Millisecond, "d@x"), // past n: the series grows
	}, t0, 3)
	if w := got["w"]; !slices.Equal(w, []int64{0, 1, 0}) {
		t.Errorf("w %v, want [0 1 0]", w)
	}
	if c := got["c"]; !slices.Equal(c, []int64{1, 0, 0, 1}) {
		t.Errorf("c %v, want [1 0 0 1]", c)
	}
}

// coldRecord is a synthetic cold start: tenant c offers 20 new recipients a
// second for 20 s and SES takes 20 in second 0, none in 1 and 2, then 10,
// then 20 a second from second 4; steady tenant s (warmed up) mails 10
// known addresses a second and was held back by its window heldS times.
func coldRecord(rampWithin time.Duration, heldS int64) Record {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w := &config.FirstContactWindow{}
	s := &Scenario{
		Name: "cold", Duration: 20 * time.Second,
		Tenants: []Tenant{
			{ID: "c", Limits: Limits{Rate: 50, Burst: 50, FirstContactWindow: w},
				Traffic: Traffic{Rate: 20, Recipients: 1000}, Expect: &Expect{RampWithin: rampWithin}},
			{ID: "s", Limits: Limits{Rate: 50, Burst: 50, FirstContactWindow: w},
				Traffic: Traffic{Rate: 10, Recipients: 20, Warm: true}, Expect: &Expect{NeverHeld: true}},
		},
	}
	s.fill()
	rec := Record{Scenario: s, Start: t0, Tallies: map[string]*Tally{
		"c": {Sent: 400, Codes: map[string]int64{CodeOK: 330, codeFirstContactLimited: 70}, WindowHeld: 70},
		"s": {Sent: 200, Codes: map[string]int64{CodeOK: 200 - heldS}, WindowHeld: heldS},
	}}
	if heldS > 0 {
		rec.Tallies["s"].Codes[codeFirstContactLimited] = heldS
	}
	for i := range 20 {
		rec.Messages = append(rec.Messages, SESMessage{Tenant: "s", Recipients: []string{fmt.Sprintf("s%d@x", i)}, At: t0.Add(-time.Second)})
	}
	n := 0
	for sec, k := range []int{20, 0, 0, 10, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20} {
		for j := range k {
			at := t0.Add(time.Duration(sec)*time.Second + time.Duration(j)*40*time.Millisecond)
			rec.Messages = append(rec.Messages, SESMessage{Tenant: "c", Recipients: []string{fmt.Sprintf("c%d@x", n)}, At: at})
			n++
		}
		for j := range 10 {
			at := t0.Add(time.Duration(sec)*time.Second + time.Duration(j)*90*time.Millisecond)
			rec.Messages = append(rec.Messages, SESMessage{Tenant: "s", Recipients: []string{fmt.Sprintf("s%d@x", (sec*10+j)%20)}, At: at})
		}
	}
	rec.Events = []Event{{At: t0.Add(time.Second), Type: "Delivery", Tenant: "c", Status: 200}}
	return rec
}

func TestEvaluateColdStart(t *testing.T) {
	t.Run("ramped, never held", func(t *testing.T) {
		r := Evaluate(coldRecord(10*time.Second, 0))
		if !r.Passed {
			t.Fatalf("failed %v: %+v", failed(r), r.Checks)
		}
		names := make([]string, len(r.Checks))
		for i, c := range r.Checks {
			names[i] = c.Name
		}
		want := []string{"bystanders", "ramp:c", "never_held:s", "account_bounce_rate", "account_complaint_rate", "events_delivered", "answers"}
		if !slices.Equal(names, want) {
			t.Fatalf("checks %v, want %v (no attacker checks without an attacker)", names, want)
		}
		if len(r.Rows) != 2 {
			t.Fatalf("rows %+v: no attacker row without an attacker", r.Rows)
		}
		c, s := r.Rows[0], r.Rows[1]
		// spans of 5 s: [3,8) is the first with 90 of 90
		if c.SecondHalfNew != 20 || c.Ramp == nil || *c.Ramp != 8 || c.OfferedNew != 20 || c.RampPercent != 90 || c.WindowHeld != 70 || c.FirstContacts[3] != 10 {
			t.Errorf("cold row %+v ramp %v", c, c.Ramp)
		}
		if s.OfferedNew != 0 || s.Ramp != nil || slices.Max(s.FirstContacts) != 0 || s.SESMessages != 200 {
			t.Errorf("steady row %+v: the warm-up made every address known and is not counted", s)
		}
		var b bytes.Buffer
		r.Text(&b)
		for _, want := range []string{"first contacts of c: held by the window 70; offered 20 new/s, 90% of it (over 5s) reached at 8.00s; second half 20.0 new/s; per second: 20 0 0 10 20",
			"first contacts of s: held by the window 0; second half 0.0 new/s; per second: 0 0", "ok   ramp:c", "ok   never_held:s", "PASS"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("text lacks %q:\n%s", want, b.String())
			}
		}
		if strings.Contains(b.String(), "breaker of") {
			t.Errorf("text has a breaker line without an attacker:\n%s", b.String())
		}
	})
	t.Run("slow ramp", func(t *testing.T) {
		r := Evaluate(coldRecord(7*time.Second, 0))
		if r.Passed || !slices.Equal(failed(r), []string{"ramp:c"}) {
			t.Fatalf("failed %v, want [ramp:c]", failed(r))
		}
	})
	t.Run("sustained, then collapsed", func(t *testing.T) {
		rec := coldRecord(10*time.Second, 0)
		rec.Scenario.Tenants[0].Expect.SustainPercent = 80
		if r := Evaluate(rec); !r.Passed || !slices.Contains(checkNames(r), "sustain:c") {
			t.Fatalf("sustained: failed %v, checks %v", failed(r), checkNames(r))
		}
		// From 10 s on, c gets 2 new recipients a second out of 20: 2 < 16.
		t10 := rec.Start.Add(10 * time.Second)
		kept := rec.Messages[:0]
		seen := map[int64]int{}
		for _, m := range rec.Messages {
			if m.Tenant == "c" && !m.At.Before(t10) {
				sec := m.At.Unix()
				if seen[sec]++; seen[sec] > 2 {
					continue
				}
			}
			kept = append(kept, m)
		}
		rec.Messages = kept
		r := Evaluate(rec)
		if r.Passed || !slices.Equal(failed(r), []string{"sustain:c"}) {
			t.Fatalf("collapsed: failed %v, want [sustain:c]", failed(r))
		}
	})
	t.Run("steady held", func(t *testing.T) {
		r := Evaluate(coldRecord(10*time.Second, 1))
		if r.Passed || !slices.Equal(failed(r), []string{"never_held:s"}) {
			t.Fatalf("failed %v, want [never_held:s]", failed(r))
		}
	})
}

func TestParseColdStart(t *testing.T) {
	base := `
duration: 60s
tenants:
  - id: c
    limits: {rate: 50, burst: 50, first_contact_window: {}}
    traffic: {rate: 20, recipients: 5000}
    expect: {ramp_within: 30s}
  - id: s
    limits: {rate: 50, burst: 50, first_contact_window: {initial: 40}}
    traffic: {rate: 10, recipients: 100, warm: true}
    expect: {never_held: true}
`
	s, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s.HasAttacker() || s.Tenants[0].Expect.RampPercent != 90 || !s.Tenants[1].Traffic.Warm || s.Checks.ExpectTrip != nil || s.Checks.MaxTripDelay != 0 {
		t.Fatalf("scenario %+v", s)
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"ramp too late", "ramp_within: 30s", "ramp_within: 2m", "tenants[0].expect.ramp_within: 2m0s outside [5s, duration 1m0s]"},
		{"ramp too short", "ramp_within: 30s", "ramp_within: 2s", "tenants[0].expect.ramp_within: 2s outside [5s, duration 1m0s]"},
		{"list too short", "recipients: 5000", "recipients: 1199",
			"tenants[0].expect.ramp_within: needs traffic that mails only new recipients: traffic.rate above 0, not warm, traffic.recipients at least rate × duration (1200)"},
		{"percent", "ramp_within: 30s}", "ramp_within: 30s, ramp_percent: 120}", "tenants[0].expect.ramp_percent: 120 outside (0, 100]"},
		{"percent alone", "{never_held: true}", "{never_held: true, ramp_percent: 50}", "tenants[1].expect.ramp_percent: only with ramp_within"},
		{"sustain", "ramp_within: 30s}", "ramp_within: 30s, sustain_percent: 101}", "tenants[0].expect.sustain_percent: 101 outside (0, 100]"},
		{"sustain alone", "{never_held: true}", "{never_held: true, sustain_percent: 50}", "tenants[1].expect.sustain_percent: only with ramp_within"},
		{"empty expect", "{never_held: true}", "{}", "tenants[1].expect: set ramp_within, or never_held: true"},
		{"never held without a window", "first_contact_window: {initial: 40}", "first_contact_per_hour: 100",
			"tenants[1].expect.never_held: the tenant has no first_contact_window to hold it back"},
		{"warm list too long", "recipients: 100, warm", "recipients: 10001, warm", "tenants[1].traffic.warm: needs traffic.rate above 0 and at most 10000 traffic.recipients"},
		{"unknown expect key", "never_held: true", "never_held: true, ramp: 1", "field ramp not found"},
		{"attacker without tenant", "duration: 60s", "duration: 60s\nattacker: {workers: 3}",
			"attacker.tenant: required: the victim whose token leaked (leave attacker out for a drill without one)"},
		{"trip checks without attacker", "duration: 60s", "duration: 60s\nchecks: {expect_trip: false}",
			"checks: max_attacker_messages, max_trip_delay and expect_trip need an attacker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(base, tt.from, tt.to, 1)
			if doc == base {
				t.Fatalf("%q not in the base scenario", tt.from)
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func checkNames(r Report) []string {
	out := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		out[i] = c.Name
	}
	return out
}
