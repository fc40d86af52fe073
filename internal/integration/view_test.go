package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// TestRCPTFromView: over SMTP, RCPT checks of unsuppressed addresses send
// Redis nothing once the store's view is ready; a global suppression
// added through another replica is refused at RCPT here once published;
// and the message costs one EVALSHA.
func TestRCPTFromView(t *testing.T) {
	srv := redistest.Start(t)
	conn := redisstore.ConnOptions{URL: "redis://" + srv.Addr}
	spec := newTenant("view", gateway.Limits{PerHour: 1 << 30, FirstContactPerHour: 1 << 30})
	sink := &countingSink{}
	rep := startReplica(t, healthy(conn), sink, entries(spec))
	other := startReplica(t, healthy(conn), &countingSink{}, entries(spec))
	for deadline := time.Now().Add(15 * time.Second); !rep.store.ViewStats().Ready || !rep.store.ViewStats().FreezeFresh; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the store's view not ready")
		}
	}
	if err := other.store.AddSuppression(context.Background(), store.Suppression{Address: "gone@rcpt.example", Reason: store.Complaint, Added: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c := dialSMTP(t, rep.smtpAddr, spec.tenant.ID, spec.token)
	c.cmd(250, "MAIL FROM:<app@sender.example>")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		code, msg := c.do("RCPT TO:<gone@rcpt.example>")
		if code == 550 && strings.HasPrefix(msg, "5.7.1") {
			break
		}
		if code != 250 || time.Now().After(deadline) {
			t.Fatalf("RCPT of the suppressed address: %d %s", code, msg)
		}
		c.cmd(250, "RSET")
		c.cmd(250, "MAIL FROM:<app@sender.example>")
	}
	const n = gateway.DefaultMaxRecipients
	var to []string
	before, scripts := rep.calls.Load(), srv.Calls("evalsha")+srv.Calls("eval")
	for i := range n {
		r := fmt.Sprintf("u%d@rcpt.example", i)
		c.cmd(250, "RCPT TO:<"+r+">")
		to = append(to, r)
	}
	if got := rep.calls.Load() - before; got != 0 {
		t.Fatalf("%d RCPT checks sent %d Redis commands; want 0", n, got)
	}
	if code, msg := c.data(to); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	if got := rep.calls.Load() - before; got != 1 {
		t.Errorf("the message sent %d Redis commands; want 1", got)
	}
	if got := srv.Calls("evalsha") + srv.Calls("eval") - scripts; got != 1 {
		t.Errorf("Redis ran %d scripts; want 1", got)
	}
	if sink.sent("u0@rcpt.example") != 1 {
		t.Fatal("the message did not reach the sink")
	}
}
