package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/browsertest"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestDashboardSharedInChromium drives the fleet-wide views in headless
// Chromium, two replicas on one store: the feed shows both replicas'
// events with their names, linking to the tenant; the tenant table shows
// the refusals counted by both replicas over the last hour with their
// per-minute sparkline; a search by recipient lists the messages to it
// newest first with their journeys; the 3 h span draws 180 minutes with
// mail sent 150 minutes ago; gamma's page shows its breaker's timeline
// (trip, half-open, the probes with their bounces, the probe passed) and
// its refusals per minute by reason. SCREENSHOT_DIR keeps screenshots.
func TestDashboardSharedInChromium(t *testing.T) {
	bin := browsertest.FindChromium(t)
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)}
	ss := stores[0].open(t, c.Now)
	e := newSharedEnv(t, ss, c, nil)
	now := c.Now()

	// gamma: 100 sent 40 minutes ago, 5 hard bounces: it trips; 20
	// minutes ago (open time over) 3 probes are admitted, one bounces;
	// now the probe has passed.
	at := func(d time.Duration, f func()) { c.Set(now.Add(d)); f(); c.Set(now) }
	bounce := func(addr string, mail time.Time) {
		must(t, e.g.ProcessEvent(ctx, &feedback.Event{Type: feedback.TypeBounce, Tenant: "gamma", SESMessageID: "m-" + addr, MailTime: mail, EventTime: c.Now(),
			BounceType: feedback.BouncePermanent, BounceSubType: "General", Recipients: []feedback.Recipient{{Address: addr}}}))
	}
	admit := func(rcpts []string) {
		for _, r := range rcpts {
			d, err := ss.Admit(ctx, store.AdmitRequest{Tenant: "gamma", Recipients: []string{r}})
			if err != nil || !d.Admitted {
				t.Fatalf("admit %s: %+v %v", r, d, err)
			}
		}
	}
	at(-150*time.Minute, func() { admit(addrs("old", 30)) })
	at(-40*time.Minute, func() {
		admit(addrs("g", 100))
		must(t, e.g.Evaluate(ctx, "gamma"))
		for i := range 5 {
			bounce(fmt.Sprintf("g%d@example.net", i), c.Now())
		}
	})
	at(-20*time.Minute, func() {
		admit(addrs("probe", 3))
		must(t, e.g.Evaluate(ctx, "gamma"))
		bounce("probe0@example.net", c.Now())
	})
	must(t, e.g.Evaluate(ctx, "gamma"))
	st, err := e.g.Status(ctx, "gamma")
	must(t, err)
	if st.State != store.Closed {
		t.Fatalf("gamma's probe did not pass: %+v", st.Timeline)
	}

	// Two replicas' feeds and refusal counters.
	for i, name := range []string{"replica-a", "replica-b"} {
		ev := admin.NewEventLog(0)
		fw, err := admin.NewFeedWriter(admin.FeedWriterOptions{Store: ss, Replica: name, Every: time.Hour})
		must(t, err)
		ev.Forward(fw.Add)
		slog.New(ev).Warn("SES throttled the send", "tenant", "beta", "replica_index", i)
		fw.Close()
		rc, err := admin.NewRefusalCounter(admin.RefusalCounterOptions{Store: ss, Every: time.Hour, Now: c.Now})
		must(t, err)
		for range 3 + i {
			rc.Add("gamma", "breaker_open")
		}
		rc.Add("gamma", "rate_limited")
		rc.Close()
	}
	// Messages to ann, recorded as the gateway does after SES accepted them.
	rem, err := guard.NewRemember(guard.RememberOptions{Store: ss, Status: ss, Every: time.Hour})
	must(t, err)
	sink := rem.Sink(&okSink{})
	for i, tn := range []string{"alpha", "beta", "gamma"} {
		_, err := sink.Send(ctx, &gateway.Envelope{ID: fmt.Sprint("gw-ann-", i), Tenant: &gateway.Tenant{ID: tn}, Recipients: []string{"ann@example.com"}})
		must(t, err)
		time.Sleep(2 * time.Millisecond) // distinct acceptance times
	}
	rem.Close()
	must(t, ss.RecordMessageEvents(ctx, []store.MessageEvent{{GatewayID: "gw-ann-0", Tenant: "alpha", Type: "bounce", At: time.Now().UTC().Add(time.Minute),
		Recipients: []string{"ann@example.com"}, Detail: "Permanent/General"}}, time.Hour))

	bctx, do := browsertest.Start(t, bin, 1280, 900, 90*time.Second)
	text := func(sel string) string {
		t.Helper()
		q, _ := json.Marshal(sel)
		return run(t, bctx, chromedp.Evaluate[string](`(() => { const n = document.querySelector(`+string(q)+`); return n ? n.textContent.trim() : '(none)'; })()`))
	}
	attr := func(sel, name string) string {
		t.Helper()
		q, _ := json.Marshal(sel)
		n, _ := json.Marshal(name)
		return run(t, bctx, chromedp.Evaluate[string](`(() => { const n = document.querySelector(`+string(q)+`); return n ? (n.getAttribute(`+string(n)+`) || '') : '(none)'; })()`))
	}
	shot := func(name string) {
		t.Helper()
		if dir := os.Getenv("SCREENSHOT_DIR"); dir != "" {
			must(t, os.WriteFile(filepath.Join(dir, name), run(t, bctx, chromedp.FullScreenshot(100)), 0o644))
		}
	}
	do("sign in",
		chromedp.Navigate(e.srv.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), e.token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="gamma"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-bounce canvas`)))

	// The shared feed: both replicas, newest first, linked to beta.
	feed := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#feed li')).map(l =>
		l.querySelector('.replica').textContent + '|' + l.querySelector('a.tenant').hash + '|' + l.querySelector('.text').textContent)`))
	want := []string{"replica-b|#tenant/beta|SES throttled the send tenant=beta replica_index=1", "replica-a|#tenant/beta|SES throttled the send tenant=beta replica_index=0"}
	if !slices.Equal(feed, want) {
		t.Errorf("feed %q; want %q", feed, want)
	}
	// The refusals of both replicas, last hour, with the sparkline.
	gamma := `#tenants tr[data-tenant="gamma"] `
	if got := text(gamma + "td.refused .value"); got != "7 breaker_open, 2 rate_limited" {
		t.Errorf("gamma's refusals %q; want 7 breaker_open, 2 rate_limited", got)
	}
	if got := text(gamma + "td.refused svg title"); got != "9 refused in the last hour, per minute" {
		t.Errorf("gamma's refusal sparkline: %q", got)
	}

	// A search by recipient.
	do("search ann", chromedp.SetValue(chromedp.ID("lookup-id"), "Ann@example.com"), chromedp.Click(chromedp.ID("lookup-go")),
		chromedp.WaitVisible(chromedp.ID("journeys")))
	ids := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#journeys-list li.journey')).map(l => l.dataset.id + '|' + l.querySelector('a.tenant').textContent)`))
	if !slices.Equal(ids, []string{"gw-ann-2|gamma", "gw-ann-1|beta", "gw-ann-0|alpha"}) {
		t.Errorf("messages to ann: %q", ids)
	}
	steps := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#journeys-list li[data-id="gw-ann-0"] li.step')).map(l => l.dataset.type + ' ' + (l.querySelector('.muted') || {textContent: ''}).textContent.trim())`))
	if !slices.Equal(steps, []string{"accepted ", "bounce Permanent/General · ann@example.com"}) {
		t.Errorf("journey of gw-ann-0: %q", steps)
	}
	if got := text("#journeys-meta"); !strings.HasPrefix(got, "3 messages to Ann@example.com, newest first") {
		t.Errorf("search header %q", got)
	}
	shot("search.png")

	// 3 hours: the account's charts draw 180 minutes.
	do("3 h", chromedp.SetValue(chromedp.ID("span"), "3h"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('span').dispatchEvent(new Event('change'))`))
	run(t, bctx, chromedp.Poll[bool](`document.getElementById('chart-bounce').dataset.points === '180' ? true : null`, chromedp.WithPollingTimeout(15*time.Second)))
	if got := text("#acct-window"); got != "(last 3 h)" {
		t.Errorf("account window %q", got)
	}
	// Bounces: 5 of 100 at -40 min, 1 of 3 probes at -20 min.
	if got := attr("#chart-bounce", "data-max"); !near(got, 1.0/3) {
		t.Errorf("account bounce chart over 3 h peaks at %s; want 1/3", got)
	}

	// gamma's page over 3 h: the sent chart has the mail of 150 minutes
	// ago, the timeline the probes, the refusals their chart.
	do("gamma's page", chromedp.Evaluate[chromedp.Void](`location.hash = '#tenant/gamma'`), chromedp.WaitVisible(chromedp.CSS(`#t-chart-refusals canvas`)))
	run(t, bctx, chromedp.Poll[bool](`document.getElementById('t-chart-sent').dataset.points === '180' ? true : null`, chromedp.WithPollingTimeout(15*time.Second)))
	if got := attr("#t-chart-sent", "data-max"); got != "100" {
		t.Errorf("gamma's sent chart over 3 h peaks at %s; want 100", got)
	}
	timeline := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#t-timeline li')).map(l => l.dataset.kind + '|' + l.querySelector('.text').textContent)`))
	var kinds []string
	for _, x := range timeline {
		kinds = append(kinds, strings.SplitN(x, "|", 2)[0])
	}
	wantKinds := []string{"breaker.probe_passed", "breaker.probe", "breaker.probe", "breaker.half_open", "breaker.trip", "breaker.warning"}
	if !slices.Equal(kinds, wantKinds) {
		t.Errorf("gamma's timeline %q; want kinds %q", timeline, wantKinds)
	} else {
		for i, w := range []string{"half-open → closed: probe passed: 1 hard bounces of 3 recipients", "0 probe recipients sent, 1 hard bounces, 0 complaints",
			"3 probe recipients sent, 0 hard bounces, 0 complaints", "open → half-open: open time over"} {
			if got := strings.SplitN(timeline[i], "|", 2)[1]; got != w {
				t.Errorf("timeline entry %d: %q; want %q", i, got, w)
			}
		}
	}
	if got := attr("#t-chart-refusals", "data-max"); got != "9" {
		t.Errorf("gamma's refusals chart peaks at %s; want 9 in the last minute", got)
	}
	if got := attr("#t-chart-refusals", "data-series"); got != "refused|breaker_open|rate_limited" {
		t.Errorf("refusals chart series %q", got)
	}
	if got := text("#t-refusals-total"); got != "7 breaker_open, 2 rate_limited" {
		t.Errorf("refusals total %q", got)
	}
	if v := attr("body", "data-csp-violations"); v != "0" {
		t.Errorf("CSP violations reported: %s (%s)", v, text("#message"))
	}
	shot("tenant-timeline.png")
}
