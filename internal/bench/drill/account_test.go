package drill

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/breaker"
)

// drillRecord is a synthetic run: bystander b sends 3000 messages over 15 s
// (15 of its addresses bounce); from 5 s the attacker gets 100 messages of
// victim v through at 50 a second, 30 of which bounce, each bounce event
// arriving 2 s after its send; the victim's breaker refuses from tripAt.
func drillRecord(tripAt float64) Record {
	t0 := time.Date(2026, 11, 30, 0, 10, 0, 0, time.UTC)
	s := &Scenario{
		Name: "test", Duration: 20 * time.Second,
		Tenants: []Tenant{
			{ID: "b", Limits: Limits{Rate: 200, Burst: 200}, Traffic: Traffic{Rate: 100, Recipients: 1000, BounceFraction: 0.01}},
			{ID: "v", Limits: Limits{Rate: 50, Burst: 20, FirstContactPerHour: 100}},
		},
		Attacker: Attacker{Tenant: "v", Start: 5 * time.Second},
	}
	s.fill()
	rec := Record{Scenario: s, Start: t0, AttackerDomain: "leaked.example", Breaker: breaker.TenantDefaults(),
		Tallies: map[string]*Tally{
			"b":         {Sent: 3000, Codes: map[string]int64{CodeOK: 3000}, First: map[string]float64{CodeOK: 0}, Last: map[string]float64{CodeOK: 15}},
			AttackerRow: {Sent: 5100, Codes: map[string]int64{CodeOK: 100, "first_contact_limited": 2000, codeBreakerOpen: 3000}, First: map[string]float64{codeBreakerOpen: tripAt}, Last: map[string]float64{CodeOK: 7}},
		}}
	bl := List{Domain: "b.example", N: 3000, BounceFraction: 0.005}
	for i := range int64(3000) {
		rec.Messages = append(rec.Messages, SESMessage{Tenant: "b", Recipients: []string{bl.Address(i)}, At: t0.Add(time.Duration(i) * 5 * time.Millisecond)})
	}
	al := List{Domain: "leaked.example", N: 100000, BounceFraction: 0.3}
	for i := range int64(100) {
		at := t0.Add(5*time.Second + time.Duration(i)*20*time.Millisecond)
		a := al.Address(i)
		rec.Messages = append(rec.Messages, SESMessage{Tenant: "v", Recipients: []string{a}, At: at})
		if FateOf(a) == Bounced {
			rec.Events = append(rec.Events, Event{At: at.Add(2 * time.Second), Type: "Bounce", Tenant: "v", Recipients: []string{a}, MailTime: at, Status: 200})
		}
	}
	return rec
}

func failed(r Report) []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestEvaluate(t *testing.T) {
	// All 100 attacker messages are sent before the first event arrives;
	// the slow rule of TenantDefaults (5% of at least 100) trips at the 5th
	// bounce, the address of index 16: sent at 5 + 16*0.02 s, its event 2 s
	// later.
	threshold := 5 + 16*0.02 + 2
	tests := []struct {
		name       string
		tripAt     float64
		edit       func(*Record)
		wantFailed []string
	}{
		{name: "passes", tripAt: threshold + 1.5},
		{name: "late trip", tripAt: threshold + 5.5, wantFailed: []string{"breaker_trip"}},
		{name: "never tripped", tripAt: -1, wantFailed: []string{"breaker_trip"}},
		{name: "never tripped, none expected", tripAt: -1, edit: func(r *Record) {
			f := false
			r.Scenario.Checks.ExpectTrip = &f
		}, wantFailed: []string{"breaker_trip"}}, // the threshold was crossed all the same
		{name: "attacker over the bound", tripAt: threshold, edit: func(r *Record) { r.Scenario.Checks.MaxAttackerMessages = 99 },
			wantFailed: []string{"attacker_bound"}},
		{name: "bystander refused by a breaker", tripAt: threshold, edit: func(r *Record) {
			r.Tallies["b"].Codes[codeBreakerOpen] = 3
			r.Tallies["b"].Codes[codeFrozen] = 1
		}, wantFailed: []string{"bystanders"}},
		{name: "account bounce rate", tripAt: threshold, edit: func(r *Record) { r.Scenario.Checks.MaxAccountBounceRate = 0.0145 },
			wantFailed: []string{"account_bounce_rate"}},
		{name: "an event refused", tripAt: threshold, edit: func(r *Record) { r.Events[0].Status = 403 },
			wantFailed: []string{"events_delivered"}},
		{name: "answers without a code", tripAt: threshold, edit: func(r *Record) { r.Tallies["b"].Codes["http_502"] = 1 },
			wantFailed: []string{"answers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := drillRecord(tt.tripAt)
			if tt.tripAt < 0 {
				delete(rec.Tallies[AttackerRow].First, codeBreakerOpen)
			}
			if tt.edit != nil {
				tt.edit(&rec)
			}
			r := Evaluate(rec)
			if got := failed(r); !slices.Equal(got, tt.wantFailed) {
				t.Fatalf("failed checks %v, want %v\n%+v", got, tt.wantFailed, r.Checks)
			}
			if r.Passed != (len(tt.wantFailed) == 0) {
				t.Fatalf("Passed = %v", r.Passed)
			}
		})
	}
}

func TestEvaluateFigures(t *testing.T) {
	threshold := 5 + 16*0.02 + 2
	r := Evaluate(drillRecord(threshold + 1))
	rows := map[string]Row{}
	for _, rw := range r.Rows {
		rows[rw.Name] = rw
	}
	if names := len(r.Rows); names != 3 || r.Rows[2].Name != AttackerRow {
		t.Fatalf("rows %+v: want b, v, attacker", r.Rows)
	}
	if a := rows[AttackerRow]; a.SESMessages != 100 || a.SESRecipients != 100 || a.Bounces != 30 || a.Tenant != "v" ||
		a.Refusals["first_contact_limited"] != 2000 || a.Refusals[codeBreakerOpen] != 3000 || a.Accepted != 100 {
		t.Errorf("attacker row %+v", a)
	}
	if b := rows["b"]; b.SESMessages != 3000 || b.Bounces != 15 || len(b.Refusals) != 0 {
		t.Errorf("bystander row %+v", b)
	}
	if v := rows["v"]; v.SESMessages != 0 || v.Sent != 0 {
		t.Errorf("victim's own row %+v: it sent nothing", v)
	}
	a := r.Account
	if a.Recipients != 3100 || a.Bounces != 45 || math.Abs(a.BounceRate-45.0/3100) > 1e-12 || a.Events != 30 || a.EventsRefused != 0 {
		t.Errorf("account %+v", a)
	}
	tr := r.Trip
	near := func(p *float64, want float64) bool { return p != nil && math.Abs(*p-want) < 1e-3 }
	// The first attacker bounce is index 3 (0.3 * 4 crosses 1): sent at 5.06 s.
	if !near(tr.FirstBounce, 5+3*0.02+2) || !near(tr.Threshold, threshold) || !near(tr.AfterThreshold, 1) ||
		!strings.Contains(tr.ThresholdReason, "hard bounce rate 5.00% (5 of 100)") {
		t.Errorf("trip %+v (first bounce %s, threshold %s, after %s)", tr, secs(tr.FirstBounce), secs(tr.Threshold), secs(tr.AfterThreshold))
	}
	if tr.AttackerAfterTrip != 0 {
		t.Errorf("attacker after trip %d: its last message went at 6.98 s", tr.AttackerAfterTrip)
	}
	var buf bytes.Buffer
	r.Text(&buf)
	for _, want := range []string{"attacker  v", "first_contact_limited=2000", "account (as SES counts it): 3100 recipients, 45 bounces (1.45%)",
		"ok   account_bounce_rate", "ok   attacker_bound", "\nPASS\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, buf.String())
		}
	}
}
