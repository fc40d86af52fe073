package breaker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// sim drives one breaker through the pure functions as its keeper would:
// a snapshot, a clock, and every change seen.
type sim struct {
	t       *testing.T
	cfg     Config
	now     time.Time
	s       Snapshot
	changes []Change
}

func newSim(t *testing.T, cfg Config) *sim {
	t.Helper()
	return &sim{t: t, cfg: cfg, now: t0}
}

func (m *sim) add(d time.Duration) { m.now = m.now.Add(d) }

// step runs Step at the sim's time.
func (m *sim) step(obs ...Observation) {
	m.t.Helper()
	s, ch, err := Step(m.cfg, m.s, m.now, obs...)
	if err != nil {
		m.t.Fatal(err)
	}
	m.s, m.changes = s, append(m.changes, ch...)
}

func (m *sim) sent(at time.Time, n int) { m.t.Helper(); m.step(Observation{MailTime: at, Sent: n}) }
func (m *sim) bounce(mail time.Time, n int) {
	m.t.Helper()
	m.step(Observation{MailTime: mail, EventTime: m.now, HardBounces: n})
}
func (m *sim) complain(mail time.Time, n int) {
	m.t.Helper()
	m.step(Observation{MailTime: mail, EventTime: m.now, Complaints: n})
}

// state brings the snapshot to now and returns its state.
func (m *sim) state() store.BreakerState { m.t.Helper(); m.step(); return m.s.State }

func (m *sim) want(st store.BreakerState) {
	m.t.Helper()
	if got := m.state(); got != st {
		m.t.Fatalf("state = %s (%s); want %s", got, m.s.Reason, st)
	}
}

// allow asks to admit n recipients now.
func (m *sim) allow(n int) (bool, time.Duration) {
	m.t.Helper()
	m.step()
	s, ok, retry := Allow(m.cfg, m.s, m.now, n)
	m.s = s
	return ok, retry
}

func (m *sim) reset(reason string) {
	s, ch := Reset(m.s, m.now, reason)
	m.s, m.changes = s, append(m.changes, ch...)
}

func (m *sim) forceOpen(reason string) {
	s, ch := ForceOpen(m.s, m.now, reason)
	m.s, m.changes = s, append(m.changes, ch...)
}

// openFor returns how long the breaker stays open from now.
func (m *sim) openFor() time.Duration { return time.UnixMilli(m.s.OpenUntil).Sub(m.now) }

// trip sends 100 recipients now, 10 of which bounce.
func (m *sim) trip() {
	m.t.Helper()
	m.sent(m.now, 100)
	m.bounce(m.now, 10)
}

// failProbe waits for half-open, sends the probe of n recipients and
// bounces `bounces` of it a minute later (the tenant defaults: 20, 2).
func (m *sim) failProbe(n, bounces int) {
	m.t.Helper()
	m.add(m.openFor())
	m.want(store.HalfOpen)
	if ok, _ := m.allow(n); !ok {
		m.t.Fatal("half-open refused the probe")
	}
	m.sent(m.now, n)
	m.add(time.Minute)
	m.bounce(m.now.Add(-time.Minute), bounces)
}

func TestTrips(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		run     func(m *sim)
		want    store.BreakerState
		warning bool
		reason  string // substring of the reason
	}{
		{name: "slow bounce rate trips at 5%", want: store.Open, reason: "hard bounce rate 5.00%",
			run: func(m *sim) { m.sent(t0, 200); m.bounce(t0, 10) }},
		{name: "4.5% warns but does not trip", want: store.Closed, warning: true,
			run: func(m *sim) { m.sent(t0, 200); m.bounce(t0, 9) }},
		{name: "2% neither warns nor trips", want: store.Closed,
			run: func(m *sim) { m.sent(t0, 200); m.bounce(t0, 4) }},
		{name: "under min volume no trip", want: store.Closed,
			run: func(m *sim) { m.sent(t0, 50); m.bounce(t0, 20) }},
		{name: "fast burst trips under min volume", want: store.Open, reason: "25 hard bounces received",
			run: func(m *sim) { m.sent(t0, 99); m.add(time.Minute); m.bounce(t0, 25) }},
		{name: "fast burst needs 10% of recent sends", want: store.Closed,
			cfg: func(c *Config) { c.TripBounceRate, c.WarnBounceRate = 0, 0 },
			run: func(m *sim) { m.sent(t0, 300); m.bounce(t0, 25) }},
		{name: "fast burst counts event time", want: store.Open, reason: "received",
			run: func(m *sim) {
				// Mail sent 30 min ago (outside the 5 min of sends) bounces now.
				m.sent(t0, 80)
				m.add(30 * time.Minute)
				m.sent(m.now, 10)
				m.bounce(t0, 25)
			}},
		{name: "complaint rate trips at 0.1% over a day", want: store.Open, reason: "complaint rate",
			cfg: func(c *Config) { c.ComplaintBurst = 0 },
			run: func(m *sim) {
				m.sent(t0, 1000)
				m.add(5 * time.Hour)
				m.complain(t0, 1)
			}},
		{name: "complaint rate under min volume", want: store.Closed,
			run: func(m *sim) { m.sent(t0, 999); m.complain(t0, 4) }},
		{name: "complaint burst trips", want: store.Open, reason: "5 complaints received",
			run: func(m *sim) { m.sent(t0, 10); m.complain(t0, 5) }},
		{name: "complaint warning", want: store.Closed, warning: true,
			cfg: func(c *Config) { c.ComplaintBurst = 0 },
			run: func(m *sim) { m.sent(t0, 10000); m.complain(t0, 8) }},
		{name: "late bounce of mail older than the window does not trip", want: store.Closed,
			run: func(m *sim) {
				m.sent(t0, 200)
				m.add(61 * time.Minute)
				m.sent(m.now, 200)
				m.add(10 * time.Minute) // past the fast window too
				m.bounce(t0, 10)
				m.add(10 * time.Minute)
				m.step()
			}},
		{name: "late bounces sum onto their send minute", want: store.Open,
			run: func(m *sim) {
				m.sent(t0, 100)
				m.add(10 * time.Minute)
				m.sent(m.now, 1000) // later mail is clean
				m.add(10 * time.Minute)
				// 4 bounces each arriving late: 56 of 1,100 = 5.09%.
				for range 14 {
					m.add(2 * time.Minute)
					m.bounce(t0, 4)
				}
			}},
		{name: "sent and bounces in one observation", want: store.Open, reason: "hard bounce rate 5.00%",
			run: func(m *sim) { m.step(Observation{MailTime: t0, EventTime: t0, Sent: 200, HardBounces: 10}) }},
		{name: "rules disabled", want: store.Closed,
			cfg: func(c *Config) {
				c.TripBounceRate, c.WarnBounceRate, c.FastMinBounces = 0, 0, 0
				c.TripComplaintRate, c.WarnComplaintRate, c.ComplaintBurst = 0, 0, 0
			},
			run: func(m *sim) { m.sent(t0, 200); m.bounce(t0, 200); m.complain(t0, 50) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := TenantDefaults()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			m := newSim(t, cfg)
			tc.run(m)
			m.want(tc.want)
			if m.s.Warning != tc.warning {
				t.Fatalf("warning = %v; want %v", m.s.Warning, tc.warning)
			}
			if !strings.Contains(m.s.Reason, tc.reason) {
				t.Fatalf("reason %q lacks %q", m.s.Reason, tc.reason)
			}
			if tc.want == store.Open {
				if d := m.openFor(); d != 15*time.Minute {
					t.Fatalf("open for %v; want 15m", d)
				}
				if ok, retry := m.allow(1); ok || retry != 15*time.Minute {
					t.Fatalf("Allow while open = %v, %v", ok, retry)
				}
				if len(m.changes) == 0 || m.changes[len(m.changes)-1].To != store.Open {
					t.Fatalf("changes %+v; want a change to open", m.changes)
				}
			} else if ok, _ := m.allow(50); !ok {
				t.Fatal("closed breaker refused")
			}
		})
	}
}

func TestLateBounceIsAttributedToSendMinute(t *testing.T) {
	m := newSim(t, TenantDefaults())
	m.sent(t0, 7)
	m.add(42 * time.Minute)
	m.sent(m.now, 3)
	m.bounce(t0.Add(30*time.Second), 2)
	var sendMin, nowMin Bucket
	for _, k := range m.s.Minutes {
		switch k.At {
		case t0.Unix() / 60:
			sendMin = k
		case m.now.Unix() / 60:
			nowMin = k
		}
	}
	if sendMin != (Bucket{At: t0.Unix() / 60, Sent: 7, Bounces: 2}) || nowMin != (Bucket{At: m.now.Unix() / 60, Sent: 3}) {
		t.Fatalf("send-time buckets %+v %+v", sendMin, nowMin)
	}
	var ev Bucket
	for _, k := range m.s.Events {
		if k.At == m.now.Unix()/60 {
			ev = k
		}
	}
	if ev.Bounces != 2 {
		t.Fatalf("event-time bucket %+v; want 2 bounces now", ev)
	}
	if st := m.s.Stats(m.cfg, m.now); st.Sent != 10 || st.HardBounces != 2 || st.FastSent != 3 || st.FastBounces != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestScenarios follows one breaker through trips, probes, resets and
// forcing.
func TestScenarios(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		run  func(t *testing.T, m *sim)
	}{
		{name: "open time doubles and caps",
			cfg: func(c *Config) { c.ForceAfter, c.ForceWindow = 0, 48*time.Hour },
			run: func(t *testing.T, m *sim) {
				m.trip()
				got := []time.Duration{m.openFor()}
				for range 6 {
					m.failProbe(20, 2)
					m.want(store.Open)
					got = append(got, m.openFor())
				}
				want := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("open times %v; want %v", got, want)
				}
			}},
		{name: "forced open after three trips until reset",
			run: func(t *testing.T, m *sim) {
				m.trip()
				m.want(store.Open)
				m.failProbe(20, 2)
				m.want(store.Open)
				m.failProbe(20, 2)
				m.want(store.ForcedOpen)
				if m.s.OpenUntil != 0 || len(m.s.Trips) != 3 {
					t.Fatalf("forced snapshot %+v", m.s)
				}
				m.add(30 * 24 * time.Hour)
				m.want(store.ForcedOpen)
				if ok, _ := m.allow(1); ok {
					t.Fatal("forced_open admitted")
				}
				m.reset("operator")
				m.want(store.Closed)
				if ok, _ := m.allow(1); !ok {
					t.Fatal("reset breaker refused")
				}
				if len(m.s.Trips) != 0 {
					t.Fatalf("trips after reset %v", m.s.Trips)
				}
				last := m.changes[len(m.changes)-1]
				if last.From != store.ForcedOpen || last.To != store.Closed || last.Reason != "operator" {
					t.Fatalf("last change %+v", last)
				}
			}},
		{name: "trips outside the force window do not force",
			run: func(t *testing.T, m *sim) {
				for range 3 {
					m.trip()
					m.want(store.Open)
					m.add(m.openFor())
					m.want(store.HalfOpen)
					m.allow(1)
					m.sent(m.now, 1)
					m.add(10 * time.Minute)
					m.want(store.Closed)
					m.add(24 * time.Hour)
				}
				if d := len(m.s.Trips); d != 1 {
					t.Fatalf("trips kept %d; want 1", d)
				}
			}},
		{name: "late bounce of tripped mail ignored",
			run: func(t *testing.T, m *sim) {
				m.trip()
				tripped := m.now
				m.add(15 * time.Minute)
				m.want(store.HalfOpen)
				// Bounces of mail sent before the trip keep arriving: not probes.
				m.bounce(tripped.Add(-time.Second), 30)
				m.want(store.HalfOpen)
				m.allow(1)
				m.sent(m.now, 1)
				m.add(10 * time.Minute)
				m.want(store.Closed)
				// After closing, the pre-trip mail does not count either.
				m.bounce(tripped.Add(-time.Minute), 50)
				m.want(store.Closed)
			}},
		{name: "warning on then off",
			run: func(t *testing.T, m *sim) {
				m.sent(t0, 200)
				m.bounce(t0, 6) // 3%
				m.sent(t0, 200)
				m.sent(t0, 200) // 1%: cleared
				if len(m.changes) != 2 || !m.changes[0].Warning || m.changes[1].Warning || m.changes[0].To != store.Closed {
					t.Fatalf("changes %+v; want warning on then off", m.changes)
				}
			}},
		{name: "reset of a warning is a change",
			run: func(t *testing.T, m *sim) {
				m.sent(t0, 200)
				m.bounce(t0, 6)
				m.reset("operator")
				last := m.changes[len(m.changes)-1]
				if m.s.Warning || last.From != store.Closed || last.To != store.Closed || m.s.Since != m.now.UnixMilli() {
					t.Fatalf("after reset %+v, last change %+v", m.s, last)
				}
				n := len(m.changes)
				m.reset("again")
				if len(m.changes) != n {
					t.Fatalf("reset of a clean breaker changed: %+v", m.changes[n:])
				}
			}},
		{name: "force open",
			run: func(t *testing.T, m *sim) {
				m.forceOpen("kill switch")
				m.want(store.ForcedOpen)
				if ok, _ := m.allow(1); ok {
					t.Fatal("forced open admitted")
				}
				if c := m.changes[0]; c.From != store.Closed || c.To != store.ForcedOpen || c.Reason != "kill switch" {
					t.Fatalf("change %+v", c)
				}
			}},
		{name: "account guard",
			cfg: func(c *Config) { *c = AccountDefaults() },
			run: func(t *testing.T, m *sim) {
				m.sent(t0, 2000)
				m.bounce(t0, 50) // 2.5%: warning only
				m.want(store.Closed)
				if !m.s.Warning {
					t.Fatal("account guard did not warn at 2.5%")
				}
				m.bounce(t0, 10) // 3%
				m.want(store.Open)
				m.add(m.openFor())
				m.want(store.HalfOpen)
				m.allow(200)
				m.sent(m.now, 200)
				m.bounce(m.now, 20)
				m.want(store.ForcedOpen)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := TenantDefaults()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			tc.run(t, newSim(t, cfg))
		})
	}
}

func TestHalfOpen(t *testing.T) {
	tests := []struct {
		name    string
		bounces int
		compl   int
		wait    time.Duration
		want    store.BreakerState
	}{
		{"no bounces closes after the hold", 0, 0, 10 * time.Minute, store.Closed},
		{"one bounce is tolerated", 1, 0, 10 * time.Minute, store.Closed},
		{"before the hold it stays half-open", 0, 0, 9 * time.Minute, store.HalfOpen},
		{"two bounces reopen", 2, 0, time.Minute, store.Open},
		{"a complaint reopens", 0, 1, time.Minute, store.Open},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, TenantDefaults())
			m.trip()
			m.add(15*time.Minute - time.Millisecond)
			m.want(store.Open)
			m.add(time.Millisecond)
			m.want(store.HalfOpen)
			if m.s.ProbeBudget != 20 {
				t.Fatalf("probe budget %d", m.s.ProbeBudget)
			}
			for _, a := range []struct {
				n     int
				ok    bool
				retry time.Duration
			}{{15, true, 0}, {6, false, 10 * time.Minute}, {5, true, 0}, {1, false, 10 * time.Minute}} {
				if ok, retry := m.allow(a.n); ok != a.ok || retry != a.retry {
					t.Fatalf("Allow(%d) = %v %v; want %v %v", a.n, ok, retry, a.ok, a.retry)
				}
			}
			sent := m.now
			m.sent(sent, 20)
			if tc.bounces > 0 {
				m.bounce(sent, tc.bounces)
			}
			if tc.compl > 0 {
				m.complain(sent, tc.compl)
			}
			m.add(tc.wait)
			m.want(tc.want)
			if tc.want == store.Open && m.openFor() != 30*time.Minute-tc.wait {
				t.Fatalf("reopened for %v", m.openFor())
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	m := newSim(t, TenantDefaults())
	m.trip()
	m.add(time.Minute)
	m.step()
	data, err := json.Marshal(m.s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"state":"open"`, `"open_until":`, `"probe_budget":20`} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("snapshot JSON lacks %s: %s", want, data)
		}
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	m2 := &sim{t: t, cfg: TenantDefaults(), now: m.now, s: s}
	m2.want(store.Open)
	m2.add(14 * time.Minute)
	m2.want(store.HalfOpen)
	if m2.s.ProbeBudget != 20 {
		t.Fatalf("restored breaker did not turn half-open: %+v", m2.s)
	}
}

// TestStepIsPure: Step leaves its input alone, answers the same twice,
// and refuses an unknown state or an invalid config.
func TestStepIsPure(t *testing.T) {
	m := newSim(t, TenantDefaults())
	m.sent(t0, 200)
	m.bounce(t0, 9)
	in := clone(m.s)
	obs := []Observation{{MailTime: t0, EventTime: t0, HardBounces: 1}}
	a, ca, err := Step(m.cfg, m.s, t0, obs...)
	if err != nil {
		t.Fatal(err)
	}
	b, cb, _ := Step(m.cfg, m.s, t0, obs...)
	if !reflect.DeepEqual(m.s, in) {
		t.Fatal("Step modified its input")
	}
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(ca, cb) || a.State != store.Open {
		t.Fatalf("two Steps differ or did not trip: %+v %+v", ca, cb)
	}
	f, _ := ForceOpen(m.s, t0, "x")
	r, _ := Reset(m.s, t0, "x")
	if !reflect.DeepEqual(m.s, in) || f.State != store.ForcedOpen || r.State != store.Closed {
		t.Fatal("ForceOpen or Reset modified its input")
	}

	bad := []struct {
		name string
		cfg  Config
		s    Snapshot
	}{
		{"unknown state", TenantDefaults(), Snapshot{State: "ajar"}},
		{"invalid config", Config{}, Snapshot{}},
	}
	for _, tc := range bad {
		if _, _, err := Step(tc.cfg, tc.s, t0); err == nil {
			t.Errorf("%s accepted", tc.name)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"account defaults", func(c *Config) { *c = AccountDefaults() }, ""},
		{"window not minutes", func(c *Config) { c.Window = 90 * time.Second }, "Window"},
		{"window too long", func(c *Config) { c.Window = 25 * time.Hour }, "Window"},
		{"fast longer than slow", func(c *Config) { c.FastWindow = 2 * time.Hour }, "FastWindow"},
		{"rate over 1", func(c *Config) { c.TripBounceRate = 5 }, "TripBounceRate"},
		{"open over max", func(c *Config) { c.OpenFor = 5 * time.Hour }, "OpenFor"},
		{"no probes", func(c *Config) { c.ProbeRecipients = 0 }, "ProbeRecipients"},
		{"complaint window", func(c *Config) { c.ComplaintWindow = 30 * time.Minute }, "ComplaintWindow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := TenantDefaults()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestRankByBounces(t *testing.T) {
	cfg := TenantDefaults()
	cfg.TripBounceRate, cfg.FastMinBounces = 0, 0
	snaps := map[string]Snapshot{}
	for _, tc := range []struct {
		id            string
		sent, bounces int
	}{{"a", 1000, 10}, {"b", 100, 10}, {"c", 5000, 40}, {"d", 100, 0}} {
		m := newSim(t, cfg)
		m.sent(t0, tc.sent)
		m.bounce(t0, tc.bounces)
		snaps[tc.id] = m.s
	}
	tests := []struct {
		name string
		at   time.Time
		want []Contribution
	}{
		{"most bounces first, then rate", t0.Add(time.Minute), []Contribution{
			{Tenant: "c", HardBounces: 40, Sent: 5000, BounceRate: 40.0 / 5000, Share: 40.0 / 60},
			{Tenant: "b", HardBounces: 10, Sent: 100, BounceRate: 0.1, Share: 10.0 / 60},
			{Tenant: "a", HardBounces: 10, Sent: 1000, BounceRate: 0.01, Share: 10.0 / 60},
		}},
		{"old bounces are not ranked", t0.Add(2 * time.Hour), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RankByBounces(cfg, tc.at, snaps); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("rank %+v; want %+v", got, tc.want)
			}
		})
	}
}
