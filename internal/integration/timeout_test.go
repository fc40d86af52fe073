package integration

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// TestStoreCallTimeoutHolds: with redis-server stopped (SIGSTOP: the
// connections stay open, nothing answers), an SMTP RCPT (suppression
// check), DATA (admission) and an HTTP send each answer within the call
// timeout (50 ms) plus slack, and the messages are admitted in degraded
// mode.
func TestStoreCallTimeoutHolds(t *testing.T) {
	srv := redistest.Start(t)
	const (
		timeout = 50 * time.Millisecond
		limit   = 300 * time.Millisecond // the call timeout plus slack for a loaded machine
	)
	spec := newTenant("stall", gateway.Limits{Rate: 100, Burst: 100})
	sink := &countingSink{}
	rep := startReplica(t, replicaOptions{conn: redisstore.ConnOptions{URL: "redis://" + srv.Addr}, window: time.Minute, timeout: timeout}, sink, entries(spec))
	// Warm up: pooled connections, and the tenant's last known state.
	for i := range 3 {
		if a := sendHTTP(t, rep.httpURL, spec.token, []string{fmt.Sprintf("warm%d@rcpt.example", i)}); a.status != 200 {
			t.Fatalf("warm-up: %d %s", a.status, a.code())
		}
	}
	c := dialSMTP(t, rep.smtpAddr, spec.tenant.ID, spec.token)

	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	timed := func(what string, f func() bool) {
		t.Helper()
		start := time.Now()
		ok := f()
		took := time.Since(start)
		t.Logf("%s: %v", what, took)
		if !ok {
			t.Errorf("%s: refused", what)
		}
		if took > limit {
			t.Errorf("%s took %v with Redis stopped; want at most %v (call timeout %v)", what, took, limit, timeout)
		}
	}
	for round := range 3 {
		to := fmt.Sprintf("stalled%d@rcpt.example", round)
		c.cmd(250, "MAIL FROM:<app@sender.example>")
		timed(fmt.Sprintf("round %d: SMTP RCPT", round), func() bool {
			code, _ := c.do("RCPT TO:<%s>", to)
			return code == 250
		})
		timed(fmt.Sprintf("round %d: SMTP DATA", round), func() bool {
			code, _ := c.data([]string{to})
			return code == 250
		})
		timed(fmt.Sprintf("round %d: HTTP send", round), func() bool {
			return sendHTTP(t, rep.httpURL, spec.token, []string{"h" + to}).status == 200
		})
	}
	if st := rep.lim.Stats(); st.DegradedAdmitted != 6 {
		t.Errorf("degraded admissions %d; want 6", st.DegradedAdmitted)
	}
}
