package breaker

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rig struct {
	t       *testing.T
	clk     *clock
	b       *Breaker
	changes []Change
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, clk: &clock{t: t0}}
	b, err := New(Options{Config: cfg, Now: r.clk.Now, OnStateChange: func(c Change) { r.changes = append(r.changes, c) }})
	if err != nil {
		t.Fatal(err)
	}
	r.b = b
	return r
}

func (r *rig) bounce(mail time.Time, n int) {
	r.b.Observe(Observation{MailTime: mail, EventTime: r.clk.Now(), HardBounces: n})
}

func (r *rig) complain(mail time.Time, n int) {
	r.b.Observe(Observation{MailTime: mail, EventTime: r.clk.Now(), Complaints: n})
}

func (r *rig) want(st State) {
	r.t.Helper()
	if got := r.b.State(); got != st {
		r.t.Fatalf("state = %s (%s); want %s", got, r.b.Snapshot().Reason, st)
	}
}

// openFor returns how long the breaker stays open from now.
func (r *rig) openFor() time.Duration {
	return time.UnixMilli(r.b.Snapshot().OpenUntil).Sub(r.clk.Now())
}

// tripThenProbe trips r's breaker, waits out the open time and fails the
// half-open probe once per round, returning the open times seen.
func TestTrips(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		run     func(r *rig)
		want    State
		warning bool
		reason  string // substring of the reason
	}{
		{name: "slow bounce rate trips at 5%", want: Open, reason: "hard bounce rate 5.00%",
			run: func(r *rig) { r.b.RecordSent(t0, 200); r.bounce(t0, 10) }},
		{name: "4.5% warns but does not trip", want: Closed, warning: true,
			run: func(r *rig) { r.b.RecordSent(t0, 200); r.bounce(t0, 9) }},
		{name: "2% neither warns nor trips", want: Closed,
			run: func(r *rig) { r.b.RecordSent(t0, 200); r.bounce(t0, 4) }},
		{name: "under min volume no trip", want: Closed,
			run: func(r *rig) { r.b.RecordSent(t0, 50); r.bounce(t0, 20) }},
		{name: "fast burst trips under min volume", want: Open, reason: "25 hard bounces received",
			run: func(r *rig) { r.b.RecordSent(t0, 99); r.clk.Add(time.Minute); r.bounce(t0, 25) }},
		{name: "fast burst needs 10% of recent sends", want: Closed,
			cfg: func(c *Config) { c.TripBounceRate, c.WarnBounceRate = 0, 0 },
			run: func(r *rig) { r.b.RecordSent(t0, 300); r.bounce(t0, 25) }},
		{name: "fast burst counts event time", want: Open, reason: "received",
			run: func(r *rig) {
				// Mail sent 30 min ago (outside the 5 min of sends) bounces now.
				r.b.RecordSent(t0, 80)
				r.clk.Add(30 * time.Minute)
				r.b.RecordSent(r.clk.Now(), 10)
				r.bounce(t0, 25)
			}},
		{name: "complaint rate trips at 0.1% over a day", want: Open, reason: "complaint rate",
			cfg: func(c *Config) { c.ComplaintBurst = 0 },
			run: func(r *rig) {
				r.b.RecordSent(t0, 1000)
				r.clk.Add(5 * time.Hour)
				r.complain(t0, 1)
			}},
		{name: "complaint rate under min volume", want: Closed,
			run: func(r *rig) { r.b.RecordSent(t0, 999); r.complain(t0, 4) }},
		{name: "complaint burst trips", want: Open, reason: "5 complaints received",
			run: func(r *rig) { r.b.RecordSent(t0, 10); r.complain(t0, 5) }},
		{name: "complaint warning", want: Closed, warning: true,
			cfg: func(c *Config) { c.ComplaintBurst = 0 },
			run: func(r *rig) { r.b.RecordSent(t0, 10000); r.complain(t0, 8) }},
		{name: "late bounce of mail older than the window does not trip", want: Closed,
			run: func(r *rig) {
				r.b.RecordSent(t0, 200)
				r.clk.Add(61 * time.Minute)
				r.b.RecordSent(r.clk.Now(), 200)
				r.clk.Add(10 * time.Minute) // past the fast window too
				r.bounce(t0, 10)
				r.clk.Add(10 * time.Minute)
				r.b.Tick()
			}},
		{name: "late bounces sum onto their send minute", want: Open,
			run: func(r *rig) {
				r.b.RecordSent(t0, 100)
				r.clk.Add(10 * time.Minute)
				r.b.RecordSent(r.clk.Now(), 1000) // later mail is clean
				r.clk.Add(10 * time.Minute)
				// 4 bounces each arriving late: 56 of 1,100 = 5.09%.
				for range 14 {
					r.clk.Add(2 * time.Minute)
					r.bounce(t0, 4)
				}
			}},
		{name: "rules disabled", want: Closed,
			cfg: func(c *Config) {
				c.TripBounceRate, c.WarnBounceRate, c.FastMinBounces = 0, 0, 0
				c.TripComplaintRate, c.WarnComplaintRate, c.ComplaintBurst = 0, 0, 0
			},
			run: func(r *rig) { r.b.RecordSent(t0, 200); r.bounce(t0, 200); r.complain(t0, 50) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := TenantDefaults()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			r := newRig(t, cfg)
			tc.run(r)
			r.want(tc.want)
			if got := r.b.Warning(); got != tc.warning {
				t.Fatalf("warning = %v; want %v", got, tc.warning)
			}
			snap := r.b.Snapshot()
			if !strings.Contains(snap.Reason, tc.reason) {
				t.Fatalf("reason %q lacks %q", snap.Reason, tc.reason)
			}
			if tc.want == Open {
				if d := r.openFor(); d != 15*time.Minute {
					t.Fatalf("open for %v; want 15m", d)
				}
				if ok, retry := r.b.Allow(1); ok || retry != 15*time.Minute {
					t.Fatalf("Allow while open = %v, %v", ok, retry)
				}
				if len(r.changes) == 0 || r.changes[len(r.changes)-1].To != Open {
					t.Fatalf("hook saw %+v; want a change to open", r.changes)
				}
			} else if ok, _ := r.b.Allow(50); !ok {
				t.Fatal("closed breaker refused")
			}
		})
	}
}

func TestLateBounceIsAttributedToSendMinute(t *testing.T) {
	r := newRig(t, TenantDefaults())
	r.b.RecordSent(t0, 7)
	r.clk.Add(42 * time.Minute)
	r.b.RecordSent(r.clk.Now(), 3)
	r.bounce(t0.Add(30*time.Second), 2)
	snap := r.b.Snapshot()
	var sendMin, nowMin Bucket
	for _, k := range snap.Minutes {
		switch k.At {
		case t0.Unix() / 60:
			sendMin = k
		case r.clk.Now().Unix() / 60:
			nowMin = k
		}
	}
	if sendMin != (Bucket{At: t0.Unix() / 60, Sent: 7, Bounces: 2}) || nowMin != (Bucket{At: r.clk.Now().Unix() / 60, Sent: 3}) {
		t.Fatalf("send-time buckets %+v %+v", sendMin, nowMin)
	}
	var ev Bucket
	for _, k := range snap.Events {
		if k.At == r.clk.Now().Unix()/60 {
			ev = k
		}
	}
	if ev.Bounces != 2 {
		t.Fatalf("event-time bucket %+v; want 2 bounces now", ev)
	}
	if st := r.b.Stats(); st.Sent != 10 || st.HardBounces != 2 || st.FastSent != 3 || st.FastBounces != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// failProbe waits for half-open, sends the probe and bounces it.
func failProbe(r *rig) {
	r.clk.Add(r.openFor())
	r.want(HalfOpen)
	if ok, _ := r.b.Allow(20); !ok {
		r.t.Fatal("half-open refused the probe")
	}
	r.b.RecordSent(r.clk.Now(), 20)
	r.clk.Add(time.Minute)
	r.bounce(r.clk.Now().Add(-time.Minute), 2)
}

func trip(r *rig) {
	r.b.RecordSent(r.clk.Now(), 100)
	r.bounce(r.clk.Now(), 10)
}

func TestOpenTimeDoublesAndCaps(t *testing.T) {
	cfg := TenantDefaults()
	cfg.ForceAfter = 0
	cfg.ForceWindow = 48 * time.Hour
	r := newRig(t, cfg)
	trip(r)
	var got []time.Duration
	got = append(got, r.openFor())
	for range 6 {
		failProbe(r)
		r.want(Open)
		got = append(got, r.openFor())
	}
	want := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("open times %v; want %v", got, want)
		}
	}
}

func TestForcedOpenAfterThreeTripsUntilReset(t *testing.T) {
	r := newRig(t, TenantDefaults())
	trip(r)
	r.want(Open)
	failProbe(r)
	r.want(Open)
	failProbe(r)
	r.want(ForcedOpen)
	if s := r.b.Snapshot(); s.OpenUntil != 0 || len(s.Trips) != 3 {
		t.Fatalf("forced snapshot %+v", s)
	}
	r.clk.Add(30 * 24 * time.Hour)
	r.want(ForcedOpen)
	if ok, _ := r.b.Allow(1); ok {
		t.Fatal("forced_open admitted")
	}
	r.b.Reset("operator")
	r.want(Closed)
	if ok, _ := r.b.Allow(1); !ok {
		t.Fatal("reset breaker refused")
	}
	if s := r.b.Snapshot(); len(s.Trips) != 0 {
		t.Fatalf("trips after reset %v", s.Trips)
	}
	last := r.changes[len(r.changes)-1]
	if last.From != ForcedOpen || last.To != Closed || last.Reason != "operator" {
		t.Fatalf("last change %+v", last)
	}
}

func TestTripsOutsideForceWindowDoNotForce(t *testing.T) {
	r := newRig(t, TenantDefaults())
	for range 3 {
		trip(r)
		r.want(Open)
		r.clk.Add(r.openFor())
		r.want(HalfOpen)
		r.b.Allow(1)
		r.b.RecordSent(r.clk.Now(), 1)
		r.clk.Add(10 * time.Minute)
		r.want(Closed)
		r.clk.Add(24 * time.Hour)
	}
	if d := len(r.b.Snapshot().Trips); d != 1 {
		t.Fatalf("trips kept %d; want 1", d)
	}
}

func TestHalfOpen(t *testing.T) {
	tests := []struct {
		name    string
		bounces int
		compl   int
		wait    time.Duration
		want    State
	}{
		{"no bounces closes after the hold", 0, 0, 10 * time.Minute, Closed},
		{"one bounce is tolerated", 1, 0, 10 * time.Minute, Closed},
		{"before the hold it stays half-open", 0, 0, 9 * time.Minute, HalfOpen},
		{"two bounces reopen", 2, 0, time.Minute, Open},
		{"a complaint reopens", 0, 1, time.Minute, Open},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, TenantDefaults())
			trip(r)
			r.clk.Add(15*time.Minute - time.Millisecond)
			r.want(Open)
			r.clk.Add(time.Millisecond)
			r.want(HalfOpen)
			if s := r.b.Snapshot(); s.ProbeBudget != 20 {
				t.Fatalf("probe budget %d", s.ProbeBudget)
			}
			if ok, _ := r.b.Allow(15); !ok {
				t.Fatal("probe 15 refused")
			}
			if ok, _ := r.b.Allow(6); ok {
				t.Fatal("probe over budget admitted")
			}
			if ok, _ := r.b.Allow(5); !ok {
				t.Fatal("last 5 probes refused")
			}
			if ok, retry := r.b.Allow(1); ok || retry != 10*time.Minute {
				t.Fatalf("spent budget: Allow = %v %v", ok, retry)
			}
			sent := r.clk.Now()
			r.b.RecordSent(sent, 20)
			if tc.bounces > 0 {
				r.bounce(sent, tc.bounces)
			}
			if tc.compl > 0 {
				r.complain(sent, tc.compl)
			}
			r.clk.Add(tc.wait)
			r.want(tc.want)
			if tc.want == Open && r.openFor() != 30*time.Minute-tc.wait {
				t.Fatalf("reopened for %v", r.openFor())
			}
		})
	}
}

func TestLateBounceOfTrippedMailIgnored(t *testing.T) {
	r := newRig(t, TenantDefaults())
	trip(r)
	tripped := r.clk.Now()
	r.clk.Add(15 * time.Minute)
	r.want(HalfOpen)
	// Bounces of mail sent before the trip keep arriving: not probes.
	r.bounce(tripped.Add(-time.Second), 30)
	r.want(HalfOpen)
	r.b.Allow(1)
	r.b.RecordSent(r.clk.Now(), 1)
	r.clk.Add(10 * time.Minute)
	r.want(Closed)
	// After closing, the pre-trip mail does not count either.
	r.bounce(tripped.Add(-time.Minute), 50)
	r.want(Closed)
}

func TestWarningHook(t *testing.T) {
	r := newRig(t, TenantDefaults())
	r.b.RecordSent(t0, 200)
	r.bounce(t0, 6) // 3%
	r.b.RecordSent(t0, 200)
	r.b.RecordSent(t0, 200) // 1%: cleared
	if len(r.changes) != 2 || !r.changes[0].Warning || r.changes[1].Warning || r.changes[0].To != Closed {
		t.Fatalf("changes %+v; want warning on then off", r.changes)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	r := newRig(t, TenantDefaults())
	trip(r)
	r.clk.Add(time.Minute)
	data, err := json.Marshal(r.b.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"state":"open"`) || !strings.Contains(string(data), `"open_until":`) || !strings.Contains(string(data), `"probe_budget":20`) {
		t.Fatalf("snapshot JSON lacks the contract fields: %s", data)
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	b2, err := New(Options{Config: TenantDefaults(), Now: r.clk.Now, State: &s})
	if err != nil {
		t.Fatal(err)
	}
	if b2.State() != Open {
		t.Fatalf("restored state %s", b2.State())
	}
	r.clk.Add(14 * time.Minute)
	if b2.State() != HalfOpen || b2.Snapshot().ProbeBudget != 20 {
		t.Fatalf("restored breaker did not turn half-open: %+v", b2.Snapshot())
	}
	if _, err := New(Options{Config: TenantDefaults(), State: &Snapshot{State: "ajar"}}); err == nil {
		t.Fatal("unknown state accepted")
	}
}

func TestForceOpen(t *testing.T) {
	r := newRig(t, TenantDefaults())
	r.b.ForceOpen("kill switch")
	r.want(ForcedOpen)
	if ok, _ := r.b.Allow(1); ok {
		t.Fatal("forced open admitted")
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

func TestAccountGuard(t *testing.T) {
	r := newRig(t, AccountDefaults())
	r.b.RecordSent(t0, 2000)
	r.bounce(t0, 50) // 2.5%: warning only
	r.want(Closed)
	if !r.b.Warning() {
		t.Fatal("account guard did not warn at 2.5%")
	}
	r.bounce(t0, 10) // 3%
	r.want(Open)
	failProbeN(r, 200, 20)
	r.want(ForcedOpen)
}

func failProbeN(r *rig, n, bounces int) {
	r.clk.Add(r.openFor())
	r.want(HalfOpen)
	r.b.Allow(n)
	r.b.RecordSent(r.clk.Now(), n)
	r.bounce(r.clk.Now(), bounces)
}

func TestRankByBounces(t *testing.T) {
	cfg := TenantDefaults()
	cfg.TripBounceRate, cfg.FastMinBounces = 0, 0
	snaps := map[string]*Snapshot{}
	for _, tc := range []struct {
		id            string
		sent, bounces int
	}{{"a", 1000, 10}, {"b", 100, 10}, {"c", 5000, 40}, {"d", 100, 0}} {
		r := newRig(t, cfg)
		r.b.RecordSent(t0, tc.sent)
		r.bounce(t0, tc.bounces)
		s := r.b.Snapshot()
		snaps[tc.id] = &s
	}
	got := RankByBounces(cfg, t0.Add(time.Minute), snaps)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.Tenant)
	}
	if strings.Join(ids, ",") != "c,b,a" {
		t.Fatalf("rank %v; want c,b,a", ids)
	}
	if got[0].Share != 40.0/60 || got[1].BounceRate != 0.1 {
		t.Fatalf("contributions %+v", got)
	}
	if got := RankByBounces(cfg, t0.Add(2*time.Hour), snaps); len(got) != 0 {
		t.Fatalf("old bounces ranked: %+v", got)
	}
}

func TestHookMayCallBreaker(t *testing.T) {
	clk := &clock{t: t0}
	var b *Breaker
	var seen []State
	b, err := New(Options{Config: TenantDefaults(), Now: clk.Now, OnStateChange: func(c Change) {
		seen = append(seen, b.State(), c.To)
	}})
	if err != nil {
		t.Fatal(err)
	}
	b.RecordSent(t0, 100)
	b.Observe(Observation{MailTime: t0, EventTime: t0, HardBounces: 10})
	if strings.Join([]string{string(seen[0]), string(seen[1])}, ",") != "open,open" {
		t.Fatalf("hook saw %v", seen)
	}
}
