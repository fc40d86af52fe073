package drill

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// Codes that must never reach a tenant other than the victim.
const (
	codeBreakerOpen = "breaker_open"
	codeFrozen      = "tenant_frozen"
)

// AttackerRow is the report row of the attacker.
const AttackerRow = "attacker"

// SESMessage is one message as SES accepted it.
type SESMessage struct {
	Tenant     string // the sesgate-tenant tag
	Recipients []string
	At         time.Time
}

// Record is everything a run observed.
type Record struct {
	Scenario *Scenario
	Start    time.Time // time zero
	// Messages is SES's record of the run; the messages before Start (a
	// warm-up) only make their recipients known.
	Messages []SESMessage
	// Events are the SES events the relay passed on.
	Events        []Event
	EventsDropped int64
	// EventsPublished, EventsLost: the SES server's own counts (lost:
	// refused after retries or dropped from its queue).
	EventsPublished, EventsLost int64
	// Tallies are the answers by sender name (tenant id or AttackerRow).
	Tallies map[string]*Tally
	// AttackerDomain tells the attacker's mail from the victim's own.
	AttackerDomain string
	// Breaker is the victim's breaker configuration, for the threshold.
	Breaker breaker.Config
}

// Report is the drill's result; --json writes it as is.
type Report struct {
	Scenario string    `json:"scenario"`
	Date     time.Time `json:"date"`
	Seconds  float64   `json:"duration_s"`
	Rows     []Row     `json:"rows"`
	Account  Account   `json:"account"`
	Trip     Trip      `json:"trip"`
	Checks   []Check   `json:"checks"`
	Passed   bool      `json:"passed"`
	Notes    []string  `json:"notes,omitempty"`
}

// Row is one sender: a tenant's own traffic, or the attacker's.
type Row struct {
	Name          string           `json:"name"`
	Tenant        string           `json:"tenant"`
	Sent          int64            `json:"sent"`     // requests
	Accepted      int64            `json:"accepted"` // answered 200
	SESMessages   int64            `json:"ses_messages"`
	SESRecipients int64            `json:"ses_recipients"`
	Bounces       int64            `json:"bounces"`    // among the SES recipients
	Complaints    int64            `json:"complaints"` // among the SES recipients
	Refusals      map[string]int64 `json:"refusals"`   // answers other than 200, by code
	Rejected      map[string]int64 `json:"rejected_recipients,omitempty"`
	// FirstBreakerOpen: the first breaker_open answer, seconds since start.
	FirstBreakerOpen *float64          `json:"first_breaker_open_s,omitempty"`
	Late             int64             `json:"late_sends"`
	Examples         map[string]string `json:"examples,omitempty"`
	// WindowHeld counts the answers that held a message back because the
	// tenant's first-contact window was full.
	WindowHeld int64 `json:"window_held"`
	// FirstContacts (a tenant's row): the recipients SES accepted from the
	// tenant for the first time, in each second of the run.
	FirstContacts []int64 `json:"first_contacts_per_s,omitempty"`
	// OfferedNew is the tenant's rate of new recipients (Tenant.OfferedNew;
	// 0 when not every send is to a new address), and Ramp the end of the
	// first RampSpan whose rate of first contacts reached RampPercent of it,
	// in seconds since the start (absent: never).
	OfferedNew  float64  `json:"offered_new_per_s,omitempty"`
	RampPercent float64  `json:"ramp_percent,omitempty"`
	Ramp        *float64 `json:"ramp_s,omitempty"`
	// SecondHalfNew is the mean rate of first contacts over the second
	// half of the run: whether the ramp held.
	SecondHalfNew float64 `json:"second_half_new_per_s"`
}

// Account is the SES account as SES would count it: over the recipients it
// accepted during the run, from every tenant.
type Account struct {
	Recipients    int64   `json:"recipients"`
	Bounces       int64   `json:"bounces"`
	Complaints    int64   `json:"complaints"`
	BounceRate    float64 `json:"bounce_rate"`
	ComplaintRate float64 `json:"complaint_rate"`
	// Events the relay passed on, those the gateway did not answer 2xx,
	// and those lost (dropped by the relay or the SES server).
	Events        int64 `json:"events"`
	EventsRefused int64 `json:"events_refused"`
	EventsLost    int64 `json:"events_lost"`
}

// Trip is the victim's breaker, in seconds since the start of the run.
type Trip struct {
	Victim string `json:"victim"`
	// FirstBounce: the first hard bounce event of the victim's mail that
	// the gateway answered.
	FirstBounce *float64 `json:"first_bounce_event_s,omitempty"`
	// Threshold: when package breaker, replayed over the victim's sends and
	// events, first trips; ThresholdReason says which rule.
	Threshold       *float64 `json:"threshold_crossed_s,omitempty"`
	ThresholdReason string   `json:"threshold_reason,omitempty"`
	// Tripped: the first breaker_open answer to the victim's token.
	Tripped *float64 `json:"tripped_s,omitempty"`
	// AfterFirstBounce and AfterThreshold: Tripped minus each.
	AfterFirstBounce *float64 `json:"after_first_bounce_s,omitempty"`
	AfterThreshold   *float64 `json:"after_threshold_s,omitempty"`
	// AttackerAfterTrip: attacker messages SES accepted after Tripped.
	AttackerAfterTrip int64 `json:"attacker_messages_after_trip"`
}

// Check is one invariant and whether it held.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Evaluate turns a run's record into the report and its verdict.
func Evaluate(rec Record) Report {
	s := rec.Scenario
	r := Report{Scenario: s.Name, Date: rec.Start.UTC().Truncate(time.Second)}
	since := func(t time.Time) float64 { return t.Sub(rec.Start).Seconds() }
	victim := s.Attacker.Tenant

	rows := map[string]*Row{}
	row := func(name, tenant string) *Row {
		if rw, ok := rows[name]; ok {
			return rw
		}
		rw := &Row{Name: name, Tenant: tenant, Refusals: map[string]int64{}}
		rows[name] = rw
		return rw
	}
	for _, t := range s.Tenants {
		row(t.ID, t.ID)
	}
	if s.HasAttacker() {
		row(AttackerRow, victim)
	}

	// SES's record: per row, and the account.
	var end time.Time
	for _, m := range rec.Messages {
		if m.At.Before(rec.Start) {
			continue // a warm-up
		}
		name := m.Tenant
		if m.Tenant == victim && len(m.Recipients) > 0 && domainOf(m.Recipients[0]) == rec.AttackerDomain {
			name = AttackerRow
		}
		rw := row(name, m.Tenant)
		rw.SESMessages++
		rw.SESRecipients += int64(len(m.Recipients))
		r.Account.Recipients += int64(len(m.Recipients))
		for _, a := range m.Recipients {
			switch FateOf(a) {
			case Bounced:
				rw.Bounces++
				r.Account.Bounces++
			case Complained:
				rw.Complaints++
				r.Account.Complaints++
			}
		}
		if m.At.After(end) {
			end = m.At
		}
	}
	if r.Account.Recipients > 0 {
		r.Account.BounceRate = float64(r.Account.Bounces) / float64(r.Account.Recipients)
		r.Account.ComplaintRate = float64(r.Account.Complaints) / float64(r.Account.Recipients)
	}
	r.Account.Events = int64(len(rec.Events))
	r.Account.EventsLost = rec.EventsDropped + rec.EventsLost
	for _, e := range rec.Events {
		if e.Status < 200 || e.Status > 299 {
			r.Account.EventsRefused++
		}
	}

	// The senders' answers.
	for name, t := range rec.Tallies {
		tenant := name
		if name == AttackerRow {
			tenant = victim
		}
		rw := row(name, tenant)
		rw.Sent, rw.Accepted, rw.Late, rw.WindowHeld = t.Sent, t.Codes[CodeOK], t.Late, t.WindowHeld
		for k, v := range t.Codes {
			if k != CodeOK {
				rw.Refusals[k] = v
			}
		}
		if len(t.Rejected) > 0 {
			rw.Rejected = t.Rejected
		}
		if len(t.Examples) > 0 {
			rw.Examples = t.Examples
		}
		if f, ok := t.First[codeBreakerOpen]; ok {
			rw.FirstBreakerOpen = &f
		}
		if f, ok := t.Last[CodeOK]; ok && since(end) < f {
			end = rec.Start.Add(time.Duration(f * float64(time.Second)))
		}
	}
	r.Seconds = since(end)
	seconds := int(s.Duration / time.Second)
	fc := firstContacts(rec.Messages, rec.Start, seconds)
	for _, t := range s.Tenants {
		rw := rows[t.ID]
		if t.Traffic.Rate > 0 {
			rw.FirstContacts = fc[t.ID]
			if rw.FirstContacts == nil {
				rw.FirstContacts = make([]int64, seconds)
			}
		}
		if h := rw.FirstContacts[min(seconds/2, len(rw.FirstContacts)):min(seconds, len(rw.FirstContacts))]; len(h) > 0 {
			var sum int64
			for _, n := range h {
				sum += n
			}
			rw.SecondHalfNew = float64(sum) / float64(len(h))
		}
		if rw.OfferedNew = t.OfferedNew(s.Duration); rw.OfferedNew > 0 {
			rw.RampPercent = DefaultRampPercent
			if t.Expect != nil && t.Expect.RampPercent > 0 {
				rw.RampPercent = t.Expect.RampPercent
			}
			rw.Ramp = rampTime(rw.FirstContacts, seconds, rw.OfferedNew*rw.RampPercent/100)
		}
		r.Rows = append(r.Rows, *rw)
	}
	if s.HasAttacker() {
		r.Rows = append(r.Rows, *rows[AttackerRow])
	}
	for name, rw := range rows {
		if name != AttackerRow && !slices.ContainsFunc(s.Tenants, func(t Tenant) bool { return t.ID == name }) {
			r.Rows = append(r.Rows, *rw) // mail of a tenant the scenario does not know
			r.Notes = append(r.Notes, fmt.Sprintf("SES got mail tagged with tenant %q, not in the scenario", name))
		}
	}

	if s.HasAttacker() {
		r.Trip = trip(rec, rows, since)
	}
	r.Checks = checks(rec, &r, rows)
	r.Passed = true
	for _, c := range r.Checks {
		r.Passed = r.Passed && c.OK
	}
	return r
}

// trip finds the victim's first bounce event, the threshold crossing (by
// replaying package breaker) and the first breaker_open answer.
func trip(rec Record, rows map[string]*Row, since func(time.Time) float64) Trip {
	victim := rec.Scenario.Attacker.Tenant
	tr := Trip{Victim: victim}
	for _, name := range []string{victim, AttackerRow} {
		if f := rows[name].FirstBreakerOpen; f != nil && (tr.Tripped == nil || *f < *tr.Tripped) {
			v := *f
			tr.Tripped = &v
		}
	}
	type step struct {
		at  time.Time
		obs breaker.Observation
	}
	var steps []step
	for _, m := range rec.Messages {
		if m.Tenant == victim {
			steps = append(steps, step{at: m.At, obs: breaker.Observation{MailTime: m.At, Sent: len(m.Recipients)}})
		}
	}
	for _, e := range rec.Events {
		if e.Tenant != victim || e.Status < 200 || e.Status > 299 {
			continue
		}
		o := breaker.Observation{MailTime: e.MailTime, EventTime: e.At}
		switch e.Type {
		case eventTypeBounce:
			o.HardBounces = len(e.Recipients)
			if tr.FirstBounce == nil || since(e.At) < *tr.FirstBounce {
				v := since(e.At)
				tr.FirstBounce = &v
			}
		case eventTypeComplain:
			o.Complaints = len(e.Recipients)
		default:
			continue
		}
		steps = append(steps, step{at: e.At, obs: o})
	}
	slices.SortStableFunc(steps, func(a, b step) int { return a.at.Compare(b.at) })
	if err := rec.Breaker.Validate(); err != nil {
		tr.ThresholdReason = "no model: " + err.Error()
		return tr
	}
	var snap breaker.Snapshot
	var crossed *time.Time
	var reason string
	for _, st := range steps {
		next, changes, err := breaker.Step(rec.Breaker, snap, st.at, st.obs)
		if err != nil {
			tr.ThresholdReason = "no model: " + err.Error()
			return tr
		}
		snap = next
		if i := slices.IndexFunc(changes, func(c breaker.Change) bool { return c.To == store.Open || c.To == store.ForcedOpen }); i >= 0 {
			crossed, reason = &changes[i].At, changes[i].Reason
			break
		}
	}
	if crossed != nil {
		v := since(*crossed)
		tr.Threshold, tr.ThresholdReason = &v, reason
	}
	if tr.Tripped != nil {
		if tr.FirstBounce != nil {
			d := *tr.Tripped - *tr.FirstBounce
			tr.AfterFirstBounce = &d
		}
		if tr.Threshold != nil {
			d := *tr.Tripped - *tr.Threshold
			tr.AfterThreshold = &d
		}
		for _, m := range rec.Messages {
			if m.Tenant == victim && len(m.Recipients) > 0 && domainOf(m.Recipients[0]) == rec.AttackerDomain && since(m.At) > *tr.Tripped {
				tr.AttackerAfterTrip++
			}
		}
	}
	return tr
}

func checks(rec Record, r *Report, rows map[string]*Row) []Check {
	s := rec.Scenario
	var out []Check
	add := func(name string, ok bool, format string, a ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	if s.HasAttacker() {
		out = append(out, attackerChecks(rec, r, rows)...)
	}

	var hurt []string
	for _, rw := range r.Rows {
		if s.HasAttacker() && rw.Tenant == s.Attacker.Tenant {
			continue
		}
		if n := rw.Refusals[codeBreakerOpen] + rw.Refusals[codeFrozen]; n > 0 {
			hurt = append(hurt, fmt.Sprintf("%s (%d)", rw.Name, n))
		}
	}
	if s.HasAttacker() {
		add("bystanders", len(hurt) == 0, "tenants other than %s refused for breaker or freeze: %s", s.Attacker.Tenant, orNone(hurt))
	} else {
		add("bystanders", len(hurt) == 0, "tenants refused for breaker or freeze: %s", orNone(hurt))
	}
	out = append(out, expectChecks(s, r)...)
	return append(out, accountChecks(rec, r)...)
}

// expectChecks are the tenants' expect: their ramps and window refusals.
func expectChecks(s *Scenario, r *Report) []Check {
	var out []Check
	for i, t := range s.Tenants {
		e, rw := t.Expect, r.Rows[i]
		if e == nil {
			continue
		}
		if e.RampWithin > 0 {
			detail := fmt.Sprintf("%s reached %g%% of %g new recipients/s (%g/s over %v) at %s; limit %v; held %d",
				t.ID, rw.RampPercent, rw.OfferedNew, rw.OfferedNew*rw.RampPercent/100, RampSpan, secs(rw.Ramp), e.RampWithin, rw.WindowHeld)
			out = append(out, Check{Name: "ramp:" + t.ID, OK: rw.Ramp != nil && *rw.Ramp <= e.RampWithin.Seconds(), Detail: detail})
		}
		if e.SustainPercent > 0 {
			want := rw.OfferedNew * e.SustainPercent / 100
			out = append(out, Check{Name: "sustain:" + t.ID, OK: rw.SecondHalfNew >= want,
				Detail: fmt.Sprintf("%s sent %.1f new recipients/s over the second half; want at least %g%% of %g (%.1f); held %d",
					t.ID, rw.SecondHalfNew, e.SustainPercent, rw.OfferedNew, want, rw.WindowHeld)})
		}
		if e.NeverHeld {
			out = append(out, Check{Name: "never_held:" + t.ID, OK: rw.WindowHeld == 0,
				Detail: fmt.Sprintf("%s held back by its first-contact window %d times (%d sent)", t.ID, rw.WindowHeld, rw.Sent)})
		}
	}
	return out
}

// attackerChecks are the checks of a scenario with an attacker.
func attackerChecks(rec Record, r *Report, rows map[string]*Row) []Check {
	s := rec.Scenario
	c := s.Checks
	var out []Check
	add := func(name string, ok bool, format string, a ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	att := rows[AttackerRow]
	add("attacker_bound", att.SESMessages <= c.MaxAttackerMessages,
		"attacker got %d messages (%d recipients) to SES; bound %d", att.SESMessages, att.SESRecipients, c.MaxAttackerMessages)

	t := r.Trip
	switch {
	case t.Tripped == nil && *c.ExpectTrip:
		add("breaker_trip", false, "the victim's breaker never refused (threshold %s)", secs(t.Threshold))
	case t.Tripped == nil:
		add("breaker_trip", t.Threshold == nil, "no trip; threshold %s", secs(t.Threshold))
	case t.Threshold == nil:
		add("breaker_trip", true, "tripped at %s; the replayed breaker did not cross its threshold (%s)", secs(t.Tripped), t.ThresholdReason)
	default:
		add("breaker_trip", *t.AfterThreshold <= c.MaxTripDelay.Seconds(),
			"tripped at %s, %+.2fs after the threshold (%s; limit %v)", secs(t.Tripped), *t.AfterThreshold, t.ThresholdReason, c.MaxTripDelay)
	}
	return out
}

// accountChecks are the account's rates, the events and the answers.
func accountChecks(rec Record, r *Report) []Check {
	c := rec.Scenario.Checks
	var out []Check
	add := func(name string, ok bool, format string, a ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	a := r.Account
	add("account_bounce_rate", a.BounceRate < c.MaxAccountBounceRate,
		"%.2f%% (%d of %d recipients); limit %.2f%%", 100*a.BounceRate, a.Bounces, a.Recipients, 100*c.MaxAccountBounceRate)
	add("account_complaint_rate", a.ComplaintRate < c.MaxAccountComplaintRate,
		"%.3f%% (%d of %d recipients); limit %.3f%%", 100*a.ComplaintRate, a.Complaints, a.Recipients, 100*c.MaxAccountComplaintRate)
	add("events_delivered", a.EventsRefused == 0 && a.EventsLost == 0 && a.Events > 0,
		"%d events passed to the gateway, %d refused by it, %d lost", a.Events, a.EventsRefused, a.EventsLost)

	var unknown []string
	for _, rw := range r.Rows {
		for code, n := range rw.Refusals {
			if strings.HasPrefix(code, "http_") || code == CodeError {
				unknown = append(unknown, fmt.Sprintf("%s %s=%d", rw.Name, code, n))
			}
		}
	}
	slices.Sort(unknown)
	add("answers", len(unknown) == 0, "answers without a gateway code: %s", orNone(unknown))
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func secs(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.2fs", *v)
}

func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}
