package admin_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestEventLog: the ring keeps warnings and errors only, the newest size
// of them oldest first, with a "tenant" attribute (also one given by
// WithAttrs) as the item's tenant, and clips long texts.
func TestEventLog(t *testing.T) {
	ev := admin.NewEventLog(3)
	log := slog.New(ev)
	log.Info("not kept", "tenant", "alpha")
	log.Warn("store degraded", "tenant", "alpha", "err", "refused")
	log.With("tenant", "beta").Error("SES throttled", "code", "Throttling")
	log.WithGroup("ses").Warn("slow", "ms", 900)
	log.Error(strings.Repeat("x", 1000))
	got := ev.Items()
	if len(got) != 3 {
		t.Fatalf("%d items; want 3 (the newest)", len(got))
	}
	if got[0].Text != "SES throttled tenant=beta code=Throttling" || got[0].Tenant != "beta" || got[0].Level != "error" || got[0].Kind != "log" {
		t.Errorf("first item %+v", got[0])
	}
	if got[1].Text != "slow ses.ms=900" || got[1].Level != "warn" || got[1].Tenant != "" {
		t.Errorf("second item %+v", got[1])
	}
	if len(got[2].Text) > 410 {
		t.Errorf("long text kept at %d bytes", len(got[2].Text))
	}
}

// TestIncidentRoutes: the account view sums the tenants (usage counted
// without quotas), the feed merges audit entries and breaker trips newest
// first and bounds its limit, a message is found by sesgate id or SES
// MessageId, a recipient search is refused with a reason.
func TestIncidentRoutes(t *testing.T) {
	e := newEnv(t, func(o *admin.Options) {})
	ctx := context.Background()
	now := e.clock.Now()
	e.send(t, "beta", now.Add(-2*time.Minute), addrs("b", 30)...) // beta has no quota
	e.send(t, "alpha", now, addrs("a", 5)...)
	e.trip(t, "gamma")
	a := e.call(t, "POST", "/v1/tenants/beta/freeze", `{"reason":"spike"}`)
	if a.status != 200 {
		t.Fatalf("freeze: %d %s", a.status, a.body)
	}

	var acct admin.AccountView
	a = e.call(t, "GET", "/v1/account", "")
	a.json(t, &acct)
	if a.status != 200 || acct.Usage.Hour != 135 || acct.Usage.Day != 135 || acct.Guard != nil || acct.PointsSource != "tenants" {
		t.Fatalf("account: %d %+v", a.status, acct)
	}
	var sent int64
	for _, p := range acct.Points {
		sent += p.Sent
	}
	if sent != 135 || acct.Points[57].Sent != 30 || acct.Lines.SESBouncePause != 0.10 || acct.Lines.SESComplaintReview != 0.001 {
		t.Errorf("account points: %d sent, minute -2: %+v, lines %+v", sent, acct.Points[57], acct.Lines)
	}

	var feed struct{ Items []admin.FeedItem }
	e.call(t, "GET", "/v1/feed", "").json(t, &feed)
	var kinds []string
	for _, it := range feed.Items {
		kinds = append(kinds, it.Kind+":"+it.Tenant)
	}
	if len(kinds) != 2 || kinds[0] != "tenant.freeze:beta" || kinds[1] != "breaker.trip:gamma" {
		t.Errorf("feed %v; want the freeze of beta, then gamma's trip", kinds)
	}
	for _, q := range []string{"0", "501", "x"} {
		if a := e.call(t, "GET", "/v1/feed?limit="+q, ""); a.status != 400 {
			t.Errorf("limit=%s: %d", q, a.status)
		}
	}

	// Messages: no route without a message store.
	if a := e.call(t, "GET", "/v1/messages/gw-1", ""); a.status != 404 {
		t.Errorf("without a message store: %d", a.status)
	}
	m := newEnv(t, func(o *admin.Options) {})
	m2 := newEnv(t, func(o *admin.Options) { o.Messages = m.st })
	must(t, m.st.RememberMessages(ctx, []store.MessageRef{{SESMessageID: "ses-1", Tenant: "alpha", GatewayID: "gw-1", At: now}}, time.Hour))
	must(t, m.st.RecordMessageEvents(ctx, []store.MessageEvent{{GatewayID: "gw-1", Tenant: "alpha", Type: "accepted", At: now, SESMessageID: "ses-1"}}, time.Hour))
	for _, id := range []string{"gw-1", "ses-1"} {
		var j admin.MessageJourney
		a := m2.call(t, "GET", "/v1/messages/"+id, "")
		a.json(t, &j)
		if a.status != 200 || j.ID != "gw-1" || j.Tenant != "alpha" || j.SESMessageID != "ses-1" || len(j.Events) != 1 {
			t.Errorf("message %s: %d %s", id, a.status, a.body)
		}
	}
	for path, want := range map[string]string{
		"/v1/messages/nobody":                      "404 not_found",
		"/v1/messages/someone@example.com":         "400 invalid",
		"/v1/messages/" + strings.Repeat("x", 201): "400 invalid",
	} {
		a := m2.call(t, "GET", path, "")
		if got := fmt.Sprintf("%d %s", a.status, a.errCode(t)); got != want {
			t.Errorf("%s: %s; want %s", path[:min(len(path), 40)], got, want)
		}
	}
}
