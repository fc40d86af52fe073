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
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// sesRecipients counts the recipients at domain of every message SES
// accepted so far.
func sesRecipients(srv *sestest.Server, domain string) int64 {
	var n int64
	for _, m := range srv.Sent() {
		for _, r := range m.Recipients() {
			if strings.HasSuffix(r, "@"+domain) {
				n++
			}
		}
	}
	return n
}

func addrs(prefix, domain string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d@%s", prefix, i, domain)
	}
	return out
}

// smtpSend sends one message over an open session, tolerating refusals at
// MAIL and RCPT (the session is reset); it returns the final reply code.
func (s *smtpClient) smtpSend(to []string) (int, string) {
	s.t.Helper()
	if code, msg := s.do("MAIL FROM:<app@sender.example>"); code != 250 {
		return code, msg
	}
	for _, r := range to {
		if code, msg := s.do("RCPT TO:<%s>", r); code != 250 {
			s.cmd(250, "RSET")
			return code, msg
		}
	}
	return s.data(to)
}

// TestDegradedFloodBound is issue 10's repro of a Redis outage under a
// flood from a leaked token: two replicas (Replicas 2), Redis killed with
// SIGKILL, 32 concurrent senders over SMTP and HTTP through the degraded
// window and past it. The recipients that reach SES during the outage stay
// within the documented bound, computed from what each replica last heard
// from the store:
//
//   - fc (the repro's tenant: rate 5/s, burst 5, max 10 recipients, 300/h,
//     40 first contacts/h) has spent its 40 first contacts, so the bound is
//     0: every degraded recipient counts as a first contact.
//   - q (no first-contact budget, 300/h) has 20 of its hourly quota left,
//     so the bound is 2 x floor(20/2) = 20 recipients.
//
// Redis then comes back with its data (AOF): the usage the store reports
// includes the degraded admissions, so it equals what reached SES.
func TestDegradedFloodBound(t *testing.T) {
	srv := redistest.StartPersistent(t)
	sesSrv, sink, _ := startSES(t)
	const (
		replicas = 2
		window   = 3 * time.Second
		flood    = window + 1500*time.Millisecond
	)
	fc := newTenant("fcflood", gateway.Limits{Rate: 5, Burst: 5, MaxRecipients: 10, PerHour: 300, FirstContactPerHour: 40})
	q := newTenant("qflood", gateway.Limits{Rate: 50, Burst: 50, PerHour: 300})
	const fcDom, qDom = "fc.example", "q.example"
	conn := redisstore.ConnOptions{URL: "redis://" + srv.Addr}
	var reps []*replica
	for range replicas {
		// A generous call timeout: the loaded test machine must not start
		// an outage before the kill (SIGKILL makes every call fail at once).
		reps = append(reps, startReplica(t, replicaOptions{conn: conn, window: window, replicas: replicas, timeout: 2 * time.Second}, sink, entries(fc, q)))
	}
	want := func(a httpAnswer, code string) {
		t.Helper()
		if a.code() != code {
			t.Fatalf("answer %d %s; want %s", a.status, a.code(), code)
		}
	}

	// fc spends its 40 first contacts; then each replica is refused one
	// more, so each last heard 0 first contacts left.
	for i := range 4 {
		want(sendHTTP(t, reps[i%replicas].httpURL, fc.token, addrs(fmt.Sprintf("warm%d", i), fcDom, 10)), "ok")
	}
	for i, r := range reps {
		want(sendHTTP(t, r.httpURL, fc.token, addrs(fmt.Sprintf("over%d", i), fcDom, 1)), "first_contact_limited")
	}
	// q spends 280 of 300; then each replica is refused 25 recipients, so
	// each last heard 20 left.
	for i := range 28 {
		want(sendHTTP(t, reps[i%replicas].httpURL, q.token, addrs(fmt.Sprintf("warm%d", i), qDom, 10)), "ok")
	}
	for i, r := range reps {
		want(sendHTTP(t, r.httpURL, q.token, addrs(fmt.Sprintf("over%d", i), qDom, 25)), "quota_exceeded")
	}
	fcBefore, qBefore := sesRecipients(sesSrv, fcDom), sesRecipients(sesSrv, qDom)
	if fcBefore != 40 || qBefore != 280 {
		t.Fatalf("before the outage SES got %d and %d recipients; want 40 and 280", fcBefore, qBefore)
	}

	srv.Kill()
	// 32 senders: per tenant 8 over SMTP (3 recipients a message for q) and
	// 8 over HTTP (10 recipients), spread over the replicas, every
	// recipient new.
	var mu sync.Mutex
	answers := map[string]int{}
	var msgs atomic.Int64
	deadline := time.Now().Add(flood)
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec, dom := fc, fcDom
			if c%2 == 1 {
				spec, dom = q, qDom
			}
			rep := reps[(c/2)%replicas]
			var smtp *smtpClient
			if (c/4)%2 == 0 {
				smtp = dialSMTP(t, rep.smtpAddr, spec.tenant.ID, spec.token)
			}
			for m := 0; time.Now().Before(deadline); m++ {
				msgs.Add(1)
				var key string
				if smtp != nil {
					n := 10
					if spec.tenant.ID == q.tenant.ID {
						n = 3
					}
					code, msg := smtp.smtpSend(addrs(fmt.Sprintf("flood-c%d-m%d", c, m), dom, n))
					key = fmt.Sprintf("%s smtp %d %.5s", spec.tenant.ID, code, msg)
				} else {
					a := sendHTTP(t, rep.httpURL, spec.token, addrs(fmt.Sprintf("flood-c%d-m%d", c, m), dom, 10))
					key = fmt.Sprintf("%s http %d %s", spec.tenant.ID, a.status, a.code())
				}
				mu.Lock()
				answers[key]++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	fcDegraded, qDegraded := sesRecipients(sesSrv, fcDom)-fcBefore, sesRecipients(sesSrv, qDom)-qBefore
	t.Logf("outage: %d messages tried; SES got %d new recipients of fc (bound 0) and %d of q (bound 20); answers %v",
		msgs.Load(), fcDegraded, qDegraded, answers)
	if fcDegraded != 0 {
		t.Errorf("fc: %d recipients reached SES during the outage; want 0 (its first contacts were spent)", fcDegraded)
	}
	if qDegraded > 20 || qDegraded == 0 {
		t.Errorf("q: %d recipients reached SES during the outage; want 1..20 (2 replicas x floor(20 left / 2))", qDegraded)
	}

	// Redis comes back with its data; one message per replica and tenant
	// (refused or not) is a successful store call, after which the store's
	// usage counts the degraded admissions.
	// (go-redis may answer with its last dial error for up to a second
	// after Redis is back: usage read errors are retried too.)
	srv.Restart()
	ctx := context.Background()
	var u [2]store.Usage
	var sesTotal [2]int64
	var err error
	settled := time.Now().Add(10 * time.Second)
	for k := 0; ; k++ {
		for i, r := range reps {
			sendHTTP(t, r.httpURL, fc.token, addrs(fmt.Sprintf("back%d-%d", k, i), fcDom, 1))
			sendHTTP(t, r.httpURL, q.token, addrs(fmt.Sprintf("back%d-%d", k, i), qDom, 1))
		}
		err = nil
		for i, id := range []string{fc.tenant.ID, q.tenant.ID} {
			if u[i], err = reps[0].store.Usage(ctx, id); err != nil {
				break
			}
		}
		sesTotal = [2]int64{sesRecipients(sesSrv, fcDom), sesRecipients(sesSrv, qDom)}
		if (err == nil && u[0].Hour == sesTotal[0] && u[1].Hour == sesTotal[1]) || time.Now().After(settled) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("usage after the restart: %v", err)
	}
	if u[0].Hour != sesTotal[0] || u[0].FirstContactHour != sesTotal[0] {
		t.Errorf("fc usage %+v after the outage; want hour and first contacts %d (every recipient SES got)", u[0], sesTotal[0])
	}
	if u[1].Hour != sesTotal[1] {
		t.Errorf("q usage %+v after the outage; want hour %d (every recipient SES got: 280 + %d degraded)", u[1], sesTotal[1], qDegraded)
	}
	// Until every replica has added its degraded admissions, the store may
	// admit again up to what the others admitted without it: here replica
	// 0's first message after the restart is decided before replica 1 has
	// had a store call (the documented reconcile race).
	if sesTotal[1] > 300+qDegraded {
		t.Errorf("q: SES got %d recipients in the hour; want at most its quota 300 + the %d degraded ones", sesTotal[1], qDegraded)
	}
	t.Logf("after the outage: usage fc %+v, q %+v; SES got %d and %d in all", u[0], u[1], sesTotal[0], sesTotal[1])
}
