package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// TestExactness: three replicas (each with its own Redis client, limiter
// and caches) share one Redis; many clients send messages of 1 to 3
// recipients over HTTP and SMTP at once. Exactly the hourly quota of
// recipients gets through, not one more, on a standalone Redis and on a
// Cluster.
func TestExactness(t *testing.T) {
	tests := []struct {
		name string
		conn func(t *testing.T) redisstore.ConnOptions
	}{
		{"standalone", func(t *testing.T) redisstore.ConnOptions {
			return redisstore.ConnOptions{URL: "redis://" + redistest.Start(t).Addr}
		}},
		{"cluster", func(t *testing.T) redisstore.ConnOptions {
			return redisstore.ConnOptions{Addrs: redistest.StartCluster(t).Addrs()}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const quota = 150
			conn := tc.conn(t)
			// Several tenants land on different slots of the Cluster.
			var specs []tenantSpec
			for i := range 3 {
				specs = append(specs, newTenant(fmt.Sprintf("exact%d", i), gateway.Limits{PerHour: quota, Rate: 500, Burst: 500}))
			}
			sink := &countingSink{}
			var reps []*replica
			for range 3 {
				reps = append(reps, startReplica(t, healthy(conn), sink, entries(specs...)))
			}
			var admitted [3]atomic.Int64
			var wg sync.WaitGroup
			for c := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					spec := specs[c%3]
					rep := reps[c%len(reps)]
					var smtp *smtpClient
					if c%4 == 0 {
						smtp = dialSMTP(t, rep.smtpAddr, spec.tenant.ID, spec.token)
					}
					for m := range 40 {
						n := 1 + (c+m)%3
						to := make([]string, n)
						for i := range to {
							to[i] = fmt.Sprintf("c%dm%di%d@rcpt.example", c, m, i)
						}
						ok := false
						if smtp != nil {
							// Once the quota is used up, the cached refusal
							// comes at MAIL already.
							code, msg := smtp.do("MAIL FROM:<app@sender.example>")
							if code == 250 {
								for _, r := range to {
									smtp.cmd(250, "RCPT TO:<"+r+">")
								}
								code, msg = smtp.data(to)
							}
							ok = code == 250
							if !ok && !strings.HasPrefix(msg, "4.7.1") {
								t.Errorf("SMTP: %d %s", code, msg)
							}
						} else {
							a := sendHTTP(t, rep.httpURL, spec.token, to)
							ok = a.status == 200
							if !ok && a.code() != "quota_exceeded" {
								t.Errorf("HTTP: %d %s", a.status, a.code())
							}
						}
						if ok {
							admitted[c%3].Add(int64(n))
						}
					}
				}()
			}
			wg.Wait()
			// Fill what is left with one-recipient messages, then one more is refused.
			for i, spec := range specs {
				for k := 0; ; k++ {
					a := sendHTTP(t, reps[k%3].httpURL, spec.token, []string{fmt.Sprintf("fill%d@rcpt.example", k)})
					if a.status != 200 {
						if a.code() != "quota_exceeded" || a.status != 429 || a.retryAfter == "" {
							t.Fatalf("fill: %d %s retry %q", a.status, a.code(), a.retryAfter)
						}
						break
					}
					admitted[i].Add(1)
					if k > quota {
						t.Fatal("fill never refused")
					}
				}
			}
			for i := range specs {
				if got := admitted[i].Load(); got != quota {
					t.Errorf("tenant %d: %d recipients admitted; want exactly %d", i, got, quota)
				}
			}
			if got := sink.rcpts.Load(); got != 3*quota {
				t.Errorf("sink got %d recipients; want %d", got, 3*quota)
			}
		})
	}
}

// TestFirstContactBurst: a burst to new addresses from three replicas stops
// at the first-contact budget while known addresses keep flowing.
func TestFirstContactBurst(t *testing.T) {
	srv := redistest.Start(t)
	conn := redisstore.ConnOptions{URL: "redis://" + srv.Addr}
	spec := newTenant("fc", gateway.Limits{FirstContactPerHour: 20, FirstContactPerDay: 1000})
	sink := &countingSink{}
	var reps []*replica
	for range 3 {
		reps = append(reps, startReplica(t, healthy(conn), sink, entries(spec)))
	}
	known := []string{"k0@rcpt.example", "k1@rcpt.example", "k2@rcpt.example", "k3@rcpt.example", "k4@rcpt.example"}
	if a := sendHTTP(t, reps[0].httpURL, spec.token, known); a.status != 200 {
		t.Fatalf("warm-up: %d %s", a.status, a.code())
	}
	var newOK, knownOK atomic.Int64
	var wg sync.WaitGroup
	for c := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range 20 {
				rep := reps[(c+m)%3]
				a := sendHTTP(t, rep.httpURL, spec.token, []string{fmt.Sprintf("new-c%d-m%d@rcpt.example", c, m)})
				switch {
				case a.status == 200:
					newOK.Add(1)
				case a.code() != "first_contact_limited" || a.status != 429:
					t.Errorf("new address: %d %s", a.status, a.code())
				}
				k := sendHTTP(t, rep.httpURL, spec.token, []string{strings.ToUpper(known[m%5][:2]) + known[m%5][2:]})
				if k.status != 200 {
					t.Errorf("known address refused: %d %s", k.status, k.code())
				} else {
					knownOK.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := newOK.Load(); got != 15 {
		t.Errorf("%d new addresses admitted; want 15 (budget 20, 5 used by the warm-up)", got)
	}
	if got := knownOK.Load(); got != 200 {
		t.Errorf("%d known messages admitted; want all 200", got)
	}
}

// TestSuppression: a suppressed address is refused at RCPT over SMTP and
// dropped per recipient over HTTP.
func TestSuppression(t *testing.T) {
	srv := redistest.Start(t)
	spec := newTenant("sup", gateway.Limits{})
	sink := &countingSink{}
	rep := startReplica(t, healthy(redisstore.ConnOptions{URL: "redis://" + srv.Addr}), sink, entries(spec))
	ctx := context.Background()
	now := time.Now()
	for _, sp := range []store.Suppression{
		{Tenant: "sup", Address: "bounced@rcpt.example", Reason: store.HardBounce, Added: now},
		{Address: "complained@rcpt.example", Reason: store.Complaint, Added: now},
		{Tenant: "sup", Address: "blocked@rcpt.example", Reason: store.Manual, Added: now},
	} {
		if err := rep.store.AddSuppression(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("smtp", func(t *testing.T) {
		c := dialSMTP(t, rep.smtpAddr, spec.tenant.ID, spec.token)
		c.cmd(250, "MAIL FROM:<app@sender.example>")
		tests := []struct {
			name, rcpt string
			code       int
			enh        string
		}{
			{"hard bounce", "Bounced@rcpt.example", 550, "5.1.1"},
			{"global complaint", "complained@RCPT.example", 550, "5.7.1"},
			{"manual", "blocked@rcpt.example", 550, "5.7.1"},
			{"clean", "fine@rcpt.example", 250, "2.0.0"},
		}
		for _, tc := range tests {
			code, msg := c.do("RCPT TO:<%s>", tc.rcpt)
			if code != tc.code || !strings.HasPrefix(msg, tc.enh) {
				t.Errorf("%s: %d %s; want %d %s", tc.name, code, msg, tc.code, tc.enh)
			}
		}
		if code, msg := c.data([]string{"fine@rcpt.example"}); code != 250 {
			t.Fatalf("DATA: %d %s", code, msg)
		}
		if sink.sent("fine@rcpt.example") != 1 || sink.sent("Bounced@rcpt.example") != 0 {
			t.Fatal("sink got the wrong recipients")
		}
	})

	t.Run("http", func(t *testing.T) {
		a := sendHTTP(t, rep.httpURL, spec.token, []string{"ok@rcpt.example", "bounced@rcpt.example", "complained@rcpt.example"})
		if a.status != 200 || len(a.body.Rejected) != 2 {
			t.Fatalf("mixed: %d %+v", a.status, a.body)
		}
		want := map[string]string{"bounced@rcpt.example": "recipient_suppressed_bounce", "complained@rcpt.example": "recipient_suppressed"}
		for _, r := range a.body.Rejected {
			if want[r.Recipient] != r.Code {
				t.Errorf("rejected %s %s", r.Recipient, r.Code)
			}
		}
		if sink.sent("ok@rcpt.example") != 1 || sink.sent("bounced@rcpt.example") != 0 || sink.sent("complained@rcpt.example") != 0 {
			t.Fatal("suppressed recipient reached the sink")
		}
		a = sendHTTP(t, rep.httpURL, spec.token, []string{"bounced@rcpt.example", "blocked@rcpt.example"})
		if a.status != 422 || a.code() != "recipient_suppressed" || len(a.body.Error.Rejected) != 2 {
			t.Fatalf("all suppressed: %d %+v", a.status, a.body)
		}
	})
}

// TestOverLimitCache: once refused with a retry time, further attempts do
// not reach Redis at all until then.
func TestOverLimitCache(t *testing.T) {
	srv := redistest.Start(t)
	spec := newTenant("cache", gateway.Limits{PerHour: 3})
	rep := startReplica(t, healthy(redisstore.ConnOptions{URL: "redis://" + srv.Addr}), &countingSink{}, entries(spec))
	for i := range 4 {
		a := sendHTTP(t, rep.httpURL, spec.token, []string{fmt.Sprintf("r%d@rcpt.example", i)})
		if want := i < 3; (a.status == 200) != want {
			t.Fatalf("message %d: %d %s", i, a.status, a.code())
		}
	}
	// The store's view loaded (its build's scans are not the messages').
	for deadline := time.Now().Add(15 * time.Second); !rep.store.ViewStats().Ready; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the store's view not ready")
		}
	}
	before, evalsha, hmget := rep.calls.Load(), srv.Calls("evalsha")+srv.Calls("eval"), srv.Calls("hmget")
	for i := range 200 {
		a := sendHTTP(t, rep.httpURL, spec.token, []string{fmt.Sprintf("x%d@rcpt.example", i)})
		if a.status != 429 || a.code() != "quota_exceeded" || a.retryAfter == "" {
			t.Fatalf("cached refusal: %d %s %q", a.status, a.code(), a.retryAfter)
		}
	}
	// SMTP: refused at MAIL, before any recipient or body.
	c := dialSMTP(t, rep.smtpAddr, spec.tenant.ID, spec.token)
	for range 10 {
		if code, msg := c.do("MAIL FROM:<app@sender.example>"); code != 452 || !strings.HasPrefix(msg, "4.7.1") {
			t.Fatalf("MAIL: %d %s; want 452 4.7.1", code, msg)
		}
	}
	if got := rep.calls.Load() - before; got != 0 {
		t.Errorf("%d Redis commands sent during 210 cached refusals; want 0", got)
	}
	if got := srv.Calls("evalsha") + srv.Calls("eval") - evalsha; got != 0 {
		t.Errorf("Redis ran %d scripts; want 0", got)
	}
	if got := srv.Calls("hmget") - hmget; got != 0 {
		t.Errorf("Redis ran %d HMGET; want 0", got)
	}
	if st := rep.lim.Stats(); st.CacheRefusals != 210 {
		t.Errorf("cache refusals %d; want 210", st.CacheRefusals)
	}
}

// TestRedisKilledDuringLoad: Redis dies under load from three replicas. No
// crash, no unexpected answer; during the degraded window admission stays
// within the documented bound; then store_unavailable; after Redis is back
// (empty, scripts gone) admission works again with no error burst.
func TestRedisKilledDuringLoad(t *testing.T) {
	srv := redistest.Start(t)
	const (
		rate     = 60.0
		replicas = 3
		window   = 1500 * time.Millisecond
	)
	spec := newTenant("load", gateway.Limits{Rate: rate, Burst: 60})
	frozen := newTenant("frozen", gateway.Limits{Rate: rate})
	sink := &countingSink{}
	var reps []*replica
	for range replicas {
		reps = append(reps, startReplica(t, replicaOptions{conn: redisstore.ConnOptions{URL: "redis://" + srv.Addr},
			window: window, replicas: replicas}, sink, entries(spec, frozen)))
	}
	ctx := context.Background()
	if err := reps[0].store.SetFrozen(ctx, "frozen", true); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps { // every replica learns the tenant is frozen
		if a := sendHTTP(t, r.httpURL, frozen.token, []string{"a@rcpt.example"}); a.code() != "tenant_frozen" {
			t.Fatalf("frozen tenant: %s", a.code())
		}
	}

	var phase atomic.Int32 // 0 up, 1 down, 2 back
	var mu sync.Mutex
	codes := map[string]int{}
	var okAfterRestart atomic.Int64
	stop := background(6, func(c, m int) {
		rep := reps[(c+m)%replicas]
		spec := spec
		if m%5 == 0 {
			spec = frozen
		}
		a := sendHTTP(t, rep.httpURL, spec.token, []string{fmt.Sprintf("c%d-%d@rcpt.example", c, m)})
		mu.Lock()
		codes[spec.tenant.ID+":"+a.code()]++
		mu.Unlock()
		if phase.Load() == 2 && spec.tenant.ID == "load" && a.status == 200 {
			okAfterRestart.Add(1)
		}
		time.Sleep(2 * time.Millisecond)
	})
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	phase.Store(1)
	time.Sleep(window + time.Second) // through the window and past it
	var degradedAdmitted int64
	for _, r := range reps {
		degradedAdmitted += r.lim.Stats().DegradedAdmitted
	}
	srv.Restart()
	phase.Store(2)
	deadline := time.Now().Add(5 * time.Second)
	for okAfterRestart.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()

	// Bound: fleet rate x 0.5 over the window, plus one burst per replica.
	bound := int64(rate*0.5*window.Seconds()) + replicas
	if degradedAdmitted > bound || degradedAdmitted == 0 {
		t.Errorf("degraded mode admitted %d; want 1..%d", degradedAdmitted, bound)
	}
	if okAfterRestart.Load() < 20 {
		t.Errorf("only %d messages admitted after Redis came back", okAfterRestart.Load())
	}
	allowed := map[string]bool{"load:ok": true, "load:rate_limited": true, "load:store_unavailable": true,
		"frozen:tenant_frozen": true, "frozen:store_unavailable": true}
	for k, n := range codes {
		if !allowed[k] {
			t.Errorf("unexpected answer %s (%d times)", k, n)
		}
	}
	if codes["load:store_unavailable"] == 0 {
		t.Error("no store_unavailable after the degraded window")
	}
	if codes["frozen:ok"] != 0 {
		t.Error("frozen tenant admitted")
	}
	t.Logf("answers %v; degraded admitted %d (bound %d)", codes, degradedAdmitted, bound)
}

// TestScriptFlushDuringLoad: SCRIPT FLUSH while replicas send causes no
// client-visible error (Script.Run falls back to EVAL on NOSCRIPT).
func TestScriptFlushDuringLoad(t *testing.T) {
	srv := redistest.Start(t)
	spec := newTenant("flush", gateway.Limits{PerDay: 1_000_000})
	sink := &countingSink{}
	var reps []*replica
	for range 3 {
		reps = append(reps, startReplica(t, healthy(redisstore.ConnOptions{URL: "redis://" + srv.Addr}), sink, entries(spec)))
	}
	var sent, failed atomic.Int64
	stop := background(6, func(c, m int) {
		a := sendHTTP(t, reps[(c+m)%3].httpURL, spec.token, []string{fmt.Sprintf("c%d-%d@rcpt.example", c, m)})
		sent.Add(1)
		if a.status != 200 {
			failed.Add(1)
			t.Errorf("answer %d %s", a.status, a.code())
		}
	})
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		if _, err := srv.Do("SCRIPT", "FLUSH"); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if sent.Load() < 100 || failed.Load() != 0 {
		t.Fatalf("%d sent, %d failed", sent.Load(), failed.Load())
	}
	if srv.Calls("eval") == 0 {
		t.Error("no EVAL fallback seen: the flush did not hit the load")
	}
}

// TestAccountLease: three replicas share the account send rate through
// leases; in one second they get no more than the documented bound.
func TestAccountLease(t *testing.T) {
	srv := redistest.Start(t)
	const (
		rate     = 100.0
		replicas = 3
		window   = time.Second
	)
	var taken atomic.Int64
	var accts []*limiter.Account
	for range replicas {
		c, err := redisstore.NewClient(redisstore.ConnOptions{URL: "redis://" + srv.Addr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, RecipientKey: testKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		a, err := limiter.NewAccount(limiter.AccountOptions{Rate: rate, Leaser: st, Replicas: replicas, MaxWait: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		accts = append(accts, a)
	}
	batch := accts[0].Batch()
	// Below the rate: one lease call per batch, not one per message.
	for _, a := range accts {
		for range 3 * batch {
			if err := a.Take(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if calls := srv.Calls("evalsha") + srv.Calls("eval"); calls != 3*replicas {
		t.Fatalf("%d lease calls for %d tokens; want %d (batch %d)", calls, 3*batch*replicas, 3*replicas, batch)
	}
	// Saturated: within the bound.
	if _, err := srv.Do("DEL", "gw:{g}:ses"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := accts[i%replicas].Take(ctx, 1); err == nil && ctx.Err() == nil {
					taken.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	bound := int64(rate*window.Seconds()) + int64(max(batch*replicas, gateway.DefaultMaxRecipients)) + int64(batch*replicas)
	if got := taken.Load(); got > bound || got < int64(rate*window.Seconds()*0.8) {
		t.Fatalf("%d tokens taken in %v; want between %d and %d", got, window, int64(rate*0.8), bound)
	}
	t.Logf("saturated: %d tokens in %v (bound %d)", taken.Load(), window, bound)
}
