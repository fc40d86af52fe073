package drill

import (
	"strings"
	"testing"
	"time"
)

// TestWindowBound: the bound of the victim's first-contact window follows
// the recursion of WindowBound, caps the default check below the static
// budget when smaller, and a latency the window cannot use (floor 0) gives
// no window bound.
func TestWindowBound(t *testing.T) {
	base := `
duration: 40s
tenants:
  - id: a
    limits: {rate: 50, burst: 50, first_contact_per_hour: 20000, first_contact_window: {initial: 20, max: 2000}}
attacker: {tenant: a}
`
	tests := []struct {
		name    string
		latency string
		want    int64 // WindowBound
		check   int64 // Checks.MaxAttackerMessages
	}{
		// one round of 60 s covers the 40 s run: the initial window
		{"fixed 60s", "event_latency: {fixed: 60s}\n", 20, 20},
		// two rounds: 20, then 20 + min(2000, 20 + 20)
		{"fixed 30s", "event_latency: {fixed: 30s}\n", 60, 60},
		// 20 rounds of 2 s: 20, 60, 140, 300, 620, 1260, 2540, then +2000 each
		{"fixed 2s", "event_delay: 2s\n", 2540 + 13*2000, 20050},
		{"log-normal, floor 1s", "event_latency: {median: 5s, sigma: 1, min: 1s, max: 120s}\n", func() int64 {
			var s int64
			for range 40 {
				s += min(2000, 20+s)
			}
			return s
		}(), 20050},
		{"no floor", "event_latency: {median: 5s, sigma: 1, max: 120s}\n", 0, 20050},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(base + tc.latency))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.WindowBound(); got != tc.want {
				t.Errorf("WindowBound = %d, want %d", got, tc.want)
			}
			if s.Checks.MaxAttackerMessages != tc.check {
				t.Errorf("check %d, want %d", s.Checks.MaxAttackerMessages, tc.check)
			}
		})
	}
}

// TestWindowScenarioErrors: bad latencies and windows are refused with
// their key and reason.
func TestWindowScenarioErrors(t *testing.T) {
	doc := `
event_latency: {median: 10s, sigma: 9, min: 20s}
tenants:
  - id: a
    limits: {first_contact_per_hour: 10, first_contact_window: {min: 50, max: 40}}
attacker: {tenant: a}
`
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"event_latency: latency sigma 9 outside [0, 5]",
		"event_latency: want fixed, or max, at most 5m0s",
		"tenants[0].limits.first_contact_window.min: min (50) must not exceed max (40)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if s, err := Parse([]byte(strings.Replace(doc, "sigma: 9, min: 20s", "sigma: 1, min: 1s, max: 90s", 1) + "")); err == nil || s != nil {
		// the window problem remains
		if !strings.Contains(err.Error(), "first_contact_window") {
			t.Errorf("second parse: %v", err)
		}
	}
	_ = time.Second
}
