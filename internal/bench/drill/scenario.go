package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/breaker"
)

// Bounds on a scenario.
const (
	MaxScenarioBytes = 1 << 20
	MaxDuration      = 10 * time.Minute
	MaxTenants       = 50
	MaxWorkers       = 256
	MaxRecipients    = 1_000_000 // addresses in one list
	MaxRate          = 10_000    // messages per second of one sender
	MaxEventDelay    = 5 * time.Minute
)

// Scenario is a drill: who sends what, for how long, and what must hold.
type Scenario struct {
	Name string `yaml:"name"`
	// Duration of the traffic; then Drain for the last events.
	Duration time.Duration `yaml:"duration"`
	Drain    time.Duration `yaml:"drain"`
	// EventDelay is how long after a send SES publishes its events.
	EventDelay time.Duration `yaml:"event_delay"`
	// EventLatency, when set, replaces EventDelay with a distribution:
	// fixed, or a log-normal median with a long tail clamped to min..max
	// (sestest.Latency, its keys the fields' names in lower case).
	EventLatency *sestest.Latency `yaml:"event_latency"`
	// Store is "redis" (a redis-server started for the drill) or
	// "embedded".
	Store string `yaml:"store"`
	// SESMaxSendRate is the account's send rate (recipients per second).
	SESMaxSendRate float64  `yaml:"ses_max_send_rate"`
	Tenants        []Tenant `yaml:"tenants"`
	Attacker       Attacker `yaml:"attacker"`
	Checks         Checks   `yaml:"checks"`
}

// Tenant is one sending app and its legitimate traffic.
type Tenant struct {
	ID               string  `yaml:"id"`
	Limits           Limits  `yaml:"limits"`
	ConfigurationSet string  `yaml:"configuration_set"` // default drill-<id>
	Traffic          Traffic `yaml:"traffic"`
	// Breaker overrides the breaker defaults, with the policy file's keys.
	Breaker *config.Breaker `yaml:"breaker"`
	// Expect is what must hold for this tenant (coldstart.go): its ramp
	// of first contacts, never being held back by its window.
	Expect *Expect `yaml:"expect"`
}

// Limits are the tenant's limits, as in the policy file.
type Limits struct {
	Rate                float64 `yaml:"rate"`
	Burst               int     `yaml:"burst"`
	PerHour             int64   `yaml:"per_hour"`
	PerDay              int64   `yaml:"per_day"`
	FirstContactPerHour int64   `yaml:"first_contact_per_hour"`
	FirstContactPerDay  int64   `yaml:"first_contact_per_day"`
	// FirstContactWindow, as in the policy file; the drill declares the
	// tenant's Delivery events published (SES sends them).
	FirstContactWindow *config.FirstContactWindow `yaml:"first_contact_window"`
}

// Traffic is a tenant's legitimate mail: Rate messages per second (open
// loop, one recipient each) over Workers connections, cycling through a
// list of Recipients addresses of which BounceFraction bounce and
// ComplaintFraction complain.
type Traffic struct {
	Rate              float64 `yaml:"rate"` // 0: the tenant sends nothing
	Workers           int     `yaml:"workers"`
	Recipients        int     `yaml:"recipients"`
	BounceFraction    float64 `yaml:"bounce_fraction"`
	ComplaintFraction float64 `yaml:"complaint_fraction"`
	// Warm: before time zero the drill mails the whole list once (each
	// address until admitted) and waits for its events, so every address
	// is a known recipient when the run starts (coldstart.go).
	Warm bool `yaml:"warm"`
}

// Attacker holds a leaked token of Tenant (the victim) and sends as fast as
// Workers connections allow, from Start on, to a list of Recipients new
// addresses of which BounceFraction bounce. A scenario without the
// attacker key has no attacker (a cold start, say): then the attacker's
// checks (attacker_bound, breaker_trip) are not made, and their keys under
// checks are refused.
type Attacker struct {
	Tenant         string        `yaml:"tenant"`
	Start          time.Duration `yaml:"start"`
	Workers        int           `yaml:"workers"`
	Recipients     int           `yaml:"recipients"`
	BounceFraction float64       `yaml:"bounce_fraction"`
}

// Checks are what must hold; zero values take the defaults.
type Checks struct {
	// MaxAttackerMessages the attacker may get to SES; default the
	// victim's burst plus its first-contact budget, or its first-contact
	// window's bound (Scenario.WindowBound) when that is smaller.
	MaxAttackerMessages int64 `yaml:"max_attacker_messages"`
	// MaxTripDelay from the threshold crossing to the first breaker_open
	// refusal of the victim; default 5s.
	MaxTripDelay time.Duration `yaml:"max_trip_delay"`
	// ExpectTrip: the victim's breaker must trip (default true).
	ExpectTrip *bool `yaml:"expect_trip"`
	// The account's rates must stay below these (defaults 2% and 0.1%).
	MaxAccountBounceRate    float64 `yaml:"max_account_bounce_rate"`
	MaxAccountComplaintRate float64 `yaml:"max_account_complaint_rate"`
}

// Default is the built-in scenario: three bystanders sending 60 messages a
// second each to lists they mostly know (1% bounce), the victim sending 5
// a second of its own, and from 5 s on an attacker with the victim's token
// on 16 connections, mailing new addresses of which 30% bounce.
func Default() *Scenario {
	bystander := func(id string) Tenant {
		return Tenant{ID: id,
			Limits:  Limits{Rate: 100, Burst: 100, PerHour: 100_000, PerDay: 1_000_000, FirstContactPerHour: 5000, FirstContactPerDay: 50_000},
			Traffic: Traffic{Rate: 60, Workers: 4, Recipients: 1000, BounceFraction: 0.01}}
	}
	s := &Scenario{
		Name:     "default: leaked token of a tenant, 30% of the attacker's list bounce",
		Duration: 40 * time.Second, Drain: 6 * time.Second, EventDelay: 2 * time.Second,
		Store: "redis", SESMaxSendRate: 1000,
		Tenants: []Tenant{
			bystander("billing"), bystander("shop"), bystander("alerts"),
			{ID: "newsletter",
				Limits:  Limits{Rate: 20, Burst: 20, PerHour: 10_000, PerDay: 100_000, FirstContactPerHour: 150, FirstContactPerDay: 1000},
				Traffic: Traffic{Rate: 5, Workers: 2, Recipients: 40, BounceFraction: 0.01}},
		},
		Attacker: Attacker{Tenant: "newsletter", Start: 5 * time.Second, Workers: 16, Recipients: 100_000, BounceFraction: 0.30},
	}
	s.fill()
	return s
}

// Parse reads a scenario strictly: unknown keys are errors. Missing values
// take the defaults of Default's shape (not its tenants); every problem is
// reported at once.
func Parse(data []byte) (*Scenario, error) {
	if len(data) > MaxScenarioBytes {
		return nil, fmt.Errorf("scenario larger than %d bytes", MaxScenarioBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("scenario is empty")
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("scenario: one YAML document expected")
	}
	s.fill()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// fill sets the defaults of zero values.
func (s *Scenario) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.Duration, 40*time.Second)
	def(&s.Drain, 6*time.Second)
	def(&s.EventDelay, 2*time.Second)
	if s.HasAttacker() {
		def(&s.Checks.MaxTripDelay, 5*time.Second)
	}
	if s.Store == "" {
		s.Store = "redis"
	}
	if s.SESMaxSendRate == 0 {
		s.SESMaxSendRate = 1000
	}
	for i := range s.Tenants {
		t := &s.Tenants[i]
		if t.ConfigurationSet == "" {
			t.ConfigurationSet = "drill-" + t.ID
		}
		if t.Traffic.Workers == 0 {
			t.Traffic.Workers = 2
		}
		if t.Traffic.Recipients == 0 {
			t.Traffic.Recipients = 100
		}
	}
	if !s.HasAttacker() {
		s.fillChecks()
		return
	}
	a := &s.Attacker
	if a.Workers == 0 {
		a.Workers = 16
	}
	if a.Recipients == 0 {
		a.Recipients = 100_000
	}
	if a.BounceFraction == 0 {
		a.BounceFraction = 0.30
	}
	if s.Checks.ExpectTrip == nil {
		t := true
		s.Checks.ExpectTrip = &t
	}
	s.fillChecks()
}

// fillChecks sets the defaults of the account and tenant checks.
func (s *Scenario) fillChecks() {
	for i := range s.Tenants {
		if e := s.Tenants[i].Expect; e != nil && e.RampWithin > 0 && e.RampPercent == 0 {
			e.RampPercent = DefaultRampPercent
		}
	}
	if s.Checks.MaxAccountBounceRate == 0 {
		s.Checks.MaxAccountBounceRate = 0.02
	}
	if s.Checks.MaxAccountComplaintRate == 0 {
		s.Checks.MaxAccountComplaintRate = 0.001
	}
	if s.Checks.MaxAttackerMessages == 0 {
		if v := s.Victim(); v != nil {
			s.Checks.MaxAttackerMessages = v.Bound()
			if wb := s.WindowBound(); wb > 0 && (s.Checks.MaxAttackerMessages == 0 || wb < s.Checks.MaxAttackerMessages) {
				s.Checks.MaxAttackerMessages = wb
			}
		}
	}
}

// problems gathers a scenario's problems, each naming its key.
type problems []string

func (p *problems) bad(key, format string, a ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, a...))
}

func (p *problems) between(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		p.bad(key, "%v outside [%v, %v]", d, lo, hi)
	}
}

func (p *problems) fraction(key string, f float64) {
	if f < 0 || f > 1 {
		p.bad(key, "%v outside [0, 1]", f)
	}
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports every problem at once, each naming its key.
func (s *Scenario) Validate() error {
	var errs problems
	bad, between, fraction := errs.bad, errs.between, errs.fraction
	between("duration", s.Duration, time.Second, MaxDuration)
	between("drain", s.Drain, 0, MaxDuration)
	between("event_delay", s.EventDelay, 0, MaxEventDelay)
	if l := s.EventLatency; l != nil {
		if err := l.Check(); err != nil {
			bad("event_latency", "%s", strings.TrimPrefix(err.Error(), "sestest: "))
		}
		if l.Fixed > MaxEventDelay || l.Max > MaxEventDelay || (l.Fixed == 0 && l.Max == 0) {
			bad("event_latency", "want fixed, or max, at most %v", MaxEventDelay)
		}
	}
	if s.HasAttacker() {
		between("checks.max_trip_delay", s.Checks.MaxTripDelay, time.Millisecond, time.Hour)
	}
	if s.Store != "redis" && s.Store != "embedded" {
		bad("store", "%q: want redis or embedded", s.Store)
	}
	if s.SESMaxSendRate <= 0 || s.SESMaxSendRate > 1e6 {
		bad("ses_max_send_rate", "must be in (0, 1e6]")
	}
	if len(s.Tenants) == 0 || len(s.Tenants) > MaxTenants {
		bad("tenants", "want 1 to %d tenants", MaxTenants)
	}
	var ids []string
	for i, t := range s.Tenants {
		k := fmt.Sprintf("tenants[%d]", i)
		switch {
		case !idRE.MatchString(t.ID):
			bad(k+".id", "%q: want [a-z0-9][a-z0-9_-]*, at most 63 characters", t.ID)
		case slices.Contains(ids, t.ID):
			bad(k+".id", "%q appears twice", t.ID)
		}
		ids = append(ids, t.ID)
		l := t.Limits
		if l.Rate < 0 || l.Burst < 0 || l.PerHour < 0 || l.PerDay < 0 || l.FirstContactPerHour < 0 || l.FirstContactPerDay < 0 {
			bad(k+".limits", "must not be negative")
		}
		if l.Rate > 0 && l.Burst == 0 {
			bad(k+".limits.burst", "needed with a rate")
		}
		errs = append(errs, t.windowProblems(k)...)
		errs = append(errs, t.expectProblems(k, s.Duration)...)
		tr := t.Traffic
		if tr.Rate < 0 || tr.Rate > MaxRate {
			bad(k+".traffic.rate", "outside [0, %d]", MaxRate)
		}
		if tr.Workers < 1 || tr.Workers > MaxWorkers {
			bad(k+".traffic.workers", "outside [1, %d]", MaxWorkers)
		}
		if tr.Recipients < 1 || tr.Recipients > MaxRecipients {
			bad(k+".traffic.recipients", "outside [1, %d]", MaxRecipients)
		}
		fraction(k+".traffic.bounce_fraction", tr.BounceFraction)
		fraction(k+".traffic.complaint_fraction", tr.ComplaintFraction)
		if tr.BounceFraction+tr.ComplaintFraction > 1 {
			bad(k+".traffic", "bounce_fraction + complaint_fraction above 1")
		}
		if err := t.Breaker.Apply(breaker.TenantDefaults()).Validate(); err != nil {
			bad(k+".breaker", "%v", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		if !idRE.MatchString(t.ConfigurationSet) {
			bad(k+".configuration_set", "%q: want [a-z0-9][a-z0-9_-]*", t.ConfigurationSet)
		}
	}
	fraction("checks.max_account_bounce_rate", s.Checks.MaxAccountBounceRate)
	fraction("checks.max_account_complaint_rate", s.Checks.MaxAccountComplaintRate)
	errs = append(errs, s.attackerProblems()...)
	if len(errs) > 0 {
		return errors.New("scenario: " + strings.Join(errs, "\n"))
	}
	return nil
}

// attackerProblems checks the attacker and the checks that are about it.
func (s *Scenario) attackerProblems() []string {
	var errs problems
	bad, between, fraction := errs.bad, errs.between, errs.fraction
	a := s.Attacker
	v := s.Victim()
	if !s.HasAttacker() {
		if a != (Attacker{}) {
			bad("attacker.tenant", "required: the victim whose token leaked (leave attacker out for a drill without one)")
		}
		if c := s.Checks; c.MaxAttackerMessages != 0 || c.MaxTripDelay != 0 || c.ExpectTrip != nil {
			bad("checks", "max_attacker_messages, max_trip_delay and expect_trip need an attacker")
		}
		return errs
	}
	switch {
	case v == nil:
		bad("attacker.tenant", "%q is not a tenant", a.Tenant)
	case s.Checks.MaxAttackerMessages <= 0:
		bad("checks.max_attacker_messages", "required when the victim has no burst and first-contact budget")
	}
	between("attacker.start", a.Start, 0, s.Duration)
	if a.Workers < 1 || a.Workers > MaxWorkers {
		bad("attacker.workers", "outside [1, %d]", MaxWorkers)
	}
	if a.Recipients < 1 || a.Recipients > MaxRecipients {
		bad("attacker.recipients", "outside [1, %d]", MaxRecipients)
	}
	fraction("attacker.bounce_fraction", a.BounceFraction)
	if s.Checks.MaxAttackerMessages < 0 {
		bad("checks.max_attacker_messages", "must not be negative")
	}
	return errs
}

// HasAttacker reports whether the scenario has an attacker.
func (s *Scenario) HasAttacker() bool { return s.Attacker.Tenant != "" }

// Victim returns the attacker's tenant, nil if there is none.
func (s *Scenario) Victim() *Tenant {
	for i := range s.Tenants {
		if s.Tenants[i].ID == s.Attacker.Tenant {
			return &s.Tenants[i]
		}
	}
	return nil
}

// Bound is the most a leaked token of t can put through by t's limits: its
// burst plus its first-contact budget (the smaller of the hourly and daily
// budgets that are set); 0 when there is no first-contact budget.
func (t *Tenant) Bound() int64 {
	l := t.Limits
	budget := l.FirstContactPerHour
	if l.FirstContactPerDay > 0 && (budget == 0 || l.FirstContactPerDay < budget) {
		budget = l.FirstContactPerDay
	}
	if budget == 0 {
		return 0
	}
	return int64(l.Burst) + budget
}
