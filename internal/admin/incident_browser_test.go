package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/internal/browsertest"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

// newIncidentEnv is newEnv with the account guard running (its defaults),
// the message status store, the feed's event ring (returned, with a
// logger writing into it) and a refusals counter registered as
// internal/server registers it.
func newIncidentEnv(t *testing.T) (*env, *slog.Logger, *prometheus.CounterVec) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)}
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123"), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tenants := []*gateway.Tenant{
		{ID: "alpha", Limits: gateway.Limits{PerHour: 5000, PerDay: 50000}},
		{ID: "beta"}, // no quota: its usage is counted all the same
		{ID: "gamma"},
	}
	ids := []string{"alpha", "beta", "gamma"}
	acct := breaker.AccountDefaults()
	g, err := guard.New(guard.Options{Store: st, Now: c.Now, Tenants: ids, Account: &acct, Config: func(id string) (breaker.Config, bool) {
		return breaker.TenantDefaults(), slices.Contains(ids, id)
	}})
	if err != nil {
		t.Fatal(err)
	}
	be, err := storeadmin.New(storeadmin.Options{Store: st, Breakers: g, Now: c.Now}, &storeadmin.Policy{Tenants: tenants})
	if err != nil {
		t.Fatal(err)
	}
	events := admin.NewEventLog(50)
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: admin.RefusedMetric, Help: "test"}, []string{"tenant", "reason"})
	reg.MustRegister(refused)
	adm := auth.NewToken("ops")
	h, err := admin.New(admin.Options{
		Tokens: be.Tokens(), Tenants: be.Tenants(), Breakers: g, Suppressions: be.Suppressions(), Audit: be.Audit(),
		AdminTokens: []admin.AdminToken{{KeyID: adm.Record.KeyID, Hash: adm.Record.Hash, Name: "ops"}},
		Metrics:     reg, Messages: st, Events: events,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{srv: srv, st: st, be: be, guard: g, tenants: tenants, clock: c, token: adm.Token, kid: adm.Record.KeyID, log: logs}
	return e, slog.New(events), refused
}

// TestDashboardIncidentInChromium drives the dashboard through a bounce
// spike and checks what each panel shows. The traffic, on the test clock
// at 10:30 UTC: alpha 20 recipients a minute for the last hour, 1 hard
// bounce; beta (no quota) 10 a minute, then 50 a minute over the last 10
// minutes with 10 hard bounces each (the spike: beta's breaker trips, the
// account guard trips and sheds beta). Checked in a real headless
// Chromium: the account panel (the guard's rate, sesgate's own counts,
// two uPlot charts of 60 minutes whose bounce line peaks at 10/70, no
// CSP violation), the tenant table (beta's usage counted without a quota,
// its send rate over the last 5 minutes, sorted worst first, refusals by
// reason), the feed (beta's trip, the account guard's, a logged warning,
// each linking to its tenant), a message's journey by sesgate id and by
// SES MessageId, the tenant page (its charts, timeline) and its actions
// behind a confirmation (cancelled: nothing; accepted: done and audited),
// the dark theme, and a phone-sized viewport. SCREENSHOT_DIR keeps the
// screenshots (scripts/screenshots.sh).
func TestDashboardIncidentInChromium(t *testing.T) {
	bin := browsertest.FindChromium(t)
	e, logger, refused := newIncidentEnv(t)
	ctx := context.Background()
	now := e.clock.Now()

	// The traffic and the spike.
	var betaHour, betaDay, alphaHour int64
	for i := 59; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * time.Minute)
		e.send(t, "alpha", at, addrs(fmt.Sprintf("a%d-", i), 20)...)
		n := 10
		if i < 10 {
			n = 50
		}
		e.send(t, "beta", at, addrs(fmt.Sprintf("b%d-", i), n)...)
		if at.Hour() == now.Hour() {
			betaHour += int64(n)
			alphaHour += 20
		}
		betaDay += int64(n)
	}
	// The guard's loop feeds the sent counters to the breakers and the
	// account guard (guard.Start); here once, by hand.
	for _, id := range []string{"alpha", "beta", "gamma"} {
		must(t, e.guard.Evaluate(ctx, id))
	}
	for i := 9; i >= 0; i-- {
		e.feedback(t, "beta", now.Add(-time.Duration(i)*time.Minute), 10, 0)
	}
	e.feedback(t, "alpha", now.Add(-30*time.Minute), 1, 0)
	refused.WithLabelValues("beta", "breaker_open").Add(7)
	refused.WithLabelValues("beta", "rate_limited").Add(2)
	logger.Warn("store unavailable: admission degraded to local limits", "tenant", "alpha", "err", "dial tcp: connection refused")

	// A message's journey, as the gateway and the event processor record it.
	must(t, e.st.RememberMessages(ctx, []store.MessageRef{{SESMessageID: "0100019-ses-abc", Tenant: "beta", GatewayID: "gw-journey-1", At: now.Add(-3 * time.Minute)}}, time.Hour))
	must(t, e.st.RecordMessageEvents(ctx, []store.MessageEvent{
		{GatewayID: "gw-journey-1", Tenant: "beta", Type: "accepted", At: now.Add(-3 * time.Minute), SESMessageID: "0100019-ses-abc", Recipients: []string{"b0-0@example.net"}},
		{GatewayID: "gw-journey-1", Tenant: "beta", Type: "bounce", At: now.Add(-2 * time.Minute), Recipients: []string{"b0-0@example.net"}, Detail: "Permanent/General"},
	}, time.Hour))
	// A token for alpha, to revoke from its page.
	var minted admin.Minted
	a := e.call(t, "POST", "/v1/tokens", `{"tenant":"alpha"}`)
	a.json(t, &minted)

	// What the backend says, to compare the page with.
	bst, err := e.guard.Status(ctx, "beta")
	must(t, err)
	if bst.State != store.Open && bst.State != store.ForcedOpen {
		t.Fatalf("beta's breaker did not trip: %+v", bst)
	}
	ast, _, on, err := e.guard.AccountStatus(ctx)
	must(t, err)
	if !on || len(ast.Trips) == 0 {
		t.Fatalf("the account guard did not trip: %+v", ast)
	}
	var acct admin.AccountView
	e.call(t, "GET", "/v1/account", "").json(t, &acct)
	if acct.PointsSource != "tenants" || len(acct.Points) != 60 || acct.Guard == nil || acct.Guard.State != ast.State {
		t.Fatalf("account view: source %q, %d points, guard %+v", acct.PointsSource, len(acct.Points), acct.Guard)
	}
	// Sent from the store's counters, bounces by send minute as the
	// guard keeps them whatever tripped: all of them, though beta's
	// breaker tripped and the account guard forced it open.
	var acctSent, acctBounces int64
	for _, p := range acct.Points {
		acctSent += p.Sent
		acctBounces += p.Bounces
	}
	if acctSent != 2200 || acctBounces != 101 {
		t.Errorf("account points: %d sent, %d bounces; want 2,200 and 101", acctSent, acctBounces)
	}
	if acct.Usage.Hour != alphaHour+betaHour || acct.Usage.Day != 1200+betaDay {
		t.Errorf("account usage %+v; want hour %d, day %d", acct.Usage, alphaHour+betaHour, 1200+betaDay)
	}

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
	// waitRefresh waits for the page's next completed refresh.
	refreshes := func() int {
		return run(t, bctx, chromedp.Evaluate[int](`Number(document.body.dataset.refreshed || 0)`))
	}
	waitRefresh := func(after int) {
		t.Helper()
		run(t, bctx, chromedp.Poll[bool](fmt.Sprintf(`Number(document.body.dataset.refreshed || 0) > %d ? true : null`, after),
			chromedp.WithPollingTimeout(15*time.Second)))
	}
	shots := os.Getenv("SCREENSHOT_DIR")
	shot := func(name string) {
		t.Helper()
		b := run(t, bctx, chromedp.FullScreenshot(100))
		if len(b) < 10000 {
			t.Fatalf("screenshot %s of %d bytes: blank page?", name, len(b))
		}
		if shots != "" {
			must(t, os.WriteFile(filepath.Join(shots, name), b, 0o644))
		}
	}

	do("sign in",
		chromedp.Navigate(e.srv.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), e.token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="gamma"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-bounce canvas`)))

	// 1. The account, drawn by the vendored uPlot under the strict CSP.
	if v := attr("body", "data-csp-violations"); v != "0" {
		t.Errorf("CSP violations reported: %s (%s)", v, text("#message"))
	}
	if got, want := text("#acct-bounce"), "4.59 %"; got != want {
		t.Errorf("account bounce rate shows %q; want %q (%d of %d)", got, want, acctBounces, acctSent)
	}
	if got, want := text("#acct-guard"), "open 0.00 % over 1h0m0s; last trip 2026-11-29 10:30:00Z: "+ast.Trips[0].Reason; got != want {
		t.Errorf("account guard shows %q; want %q", got, want)
	}
	if got, want := text("#acct-usage"), commas(alphaHour+betaHour)+" · "+commas(1200+betaDay); got != want {
		t.Errorf("account usage shows %q; want %q", got, want)
	}
	if got := text("#acct-quota"); got != "not read" {
		t.Errorf("SES quota shows %q without one", got)
	}
	if got := text("#acct-quota-note"); !strings.Contains(got, "sesgate's own") {
		t.Errorf("quota note %q", got)
	}
	for _, id := range []string{"chart-bounce", "chart-complaint"} {
		if n := attr("#"+id, "data-points"); n != "60" {
			t.Errorf("%s: %s points; want 60", id, n)
		}
	}
	if got := attr("#chart-bounce", "data-max"); !near(got, 10.0/70) {
		t.Errorf("account bounce chart peaks at %s; want 10 of 70 = %v", got, 10.0/70)
	}
	if got := attr("#chart-bounce", "data-series"); got != "bounce rate|SES review|SES pause|guard warn|guard trip" {
		t.Errorf("bounce chart series %q", got)
	}
	if got := attr("#chart-complaint", "data-max"); got != "0" {
		t.Errorf("complaint chart peaks at %s; want 0", got)
	}

	// 2. Every tenant: worst first, beta's usage counted without a quota.
	order := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#tenants tbody tr')).map(r => r.dataset.tenant)`))
	if !slices.Equal(order, []string{"beta", "alpha", "gamma"}) {
		t.Errorf("tenants sorted worst first: %v; want beta, alpha, gamma", order)
	}
	beta := `#tenants tr[data-tenant="beta"] `
	if got, want := text(beta+"td.usage"), fmt.Sprintf("%d · %d", betaHour, betaDay); got != want {
		t.Errorf("beta's recipients this hour · today %q; want %q", got, want)
	}
	if got, want := text(`#tenants tr[data-tenant="alpha"] td.usage`), fmt.Sprintf("%d of 5000 · %d of 50000", alphaHour, 1200); got != want {
		t.Errorf("alpha's usage %q; want %q", got, want)
	}
	if got := text(beta + "td.sent .value"); got != "50.0/min" {
		t.Errorf("beta's sent / min %q; want 50.0/min", got)
	}
	if got := text(beta + ".badge.breaker"); got != strings.ReplaceAll(string(bst.State), "_", "-") {
		t.Errorf("beta's breaker badge %q; state %s", got, bst.State)
	}
	if got := text(beta + "td.bounce .value"); got != "10.00 %" {
		t.Errorf("beta's bounce rate over the hour %q; want 10.00 %% (100 of 1,000, though its breaker restarted its window)", got)
	}
	if got := text(beta + "td.refused"); got != "7 breaker_open, 2 rate_limited" {
		t.Errorf("beta's refusals %q", got)
	}
	shot("overview.png")
	do("sort by name", chromedp.SetValue(chromedp.ID("sort"), "id"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('sort').dispatchEvent(new Event('change'))`))
	order = run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#tenants tbody tr')).map(r => r.dataset.tenant)`))
	if !slices.Equal(order, []string{"alpha", "beta", "gamma"}) {
		t.Errorf("tenants sorted by name: %v", order)
	}

	// 3. What just happened.
	feed := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#feed li')).map(l =>
		l.dataset.kind + '|' + ((l.querySelector('a.tenant') || {}).textContent || '') + '|' + ((l.querySelector('a.tenant') || {}).hash || ''))`))
	for _, want := range []string{"breaker.trip|beta|#tenant/beta", "account.trip||", "log|alpha|#tenant/alpha"} {
		if !slices.Contains(feed, want) {
			t.Errorf("feed %v lacks %q", feed, want)
		}
	}
	if got := text(`#feed li[data-kind="log"] .text`); !strings.HasPrefix(got, "store unavailable: admission degraded") {
		t.Errorf("logged warning in the feed: %q", got)
	}

	// 4. A message's journey, by sesgate id, then by SES MessageId.
	for _, id := range []string{"gw-journey-1", "0100019-ses-abc"} {
		do("look up "+id, chromedp.SetValue(chromedp.ID("lookup-id"), id), chromedp.Click(chromedp.ID("lookup-go")),
			chromedp.WaitVisible(chromedp.ID("journey")))
		steps := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#journey-steps li')).map(l => l.textContent)`))
		want := []string{"accepted 2026-11-29 10:27:00Z b0-0@example.net", "bounce 2026-11-29 10:28:00Z Permanent/General · b0-0@example.net"}
		if !slices.Equal(steps, want) || text("#journey-id") != "gw-journey-1" || text("#journey-meta") != "tenant beta · SES 0100019-ses-abc" {
			t.Errorf("journey of %s: %q %q %q", id, text("#journey-id"), text("#journey-meta"), steps)
		}
	}
	do("look up a recipient", chromedp.SetValue(chromedp.ID("lookup-id"), "someone@example.net"), chromedp.Click(chromedp.ID("lookup-go")))
	if got := run(t, bctx, chromedp.Poll[string](`document.getElementById('lookup-error').textContent || null`, chromedp.WithPollingTimeout(5*time.Second))); !strings.Contains(got, "not possible") {
		t.Errorf("recipient search: %q", got)
	}

	// 5. The tenant page.
	do("beta's page", chromedp.Click(chromedp.CSS(beta+"td.id a")), chromedp.WaitVisible(chromedp.CSS(`#t-chart-rates canvas`)))
	if got := text("#t-id"); got != "beta" {
		t.Fatalf("tenant page of %q", got)
	}
	if got := attr("#t-chart-sent", "data-max"); got != "50" {
		t.Errorf("beta's sent chart peaks at %s; want 50", got)
	}
	if got := attr("#t-chart-rates", "data-max"); !near(got, 0.2) {
		t.Errorf("beta's bounce chart peaks at %s; want 10 of 50", got)
	}
	if got := text("#t-bounce"); got != "10.00 %" {
		t.Errorf("beta's page bounce rate %q; want 10.00 %%", got)
	}
	if got, want := text("#t-day"), commas(betaDay); got != want {
		t.Errorf("beta's recipients today %q; want %s", got, want)
	}
	timeline := run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#t-timeline li')).map(l => l.dataset.kind)`))
	// The breaker's own timeline: each trip (the account guard's forced
	// open of beta included) is an entry.
	trips := 0
	for _, k := range timeline {
		if k == "breaker.trip" || k == "breaker.forced_open" {
			trips++
		}
	}
	if trips != len(bst.Trips) || len(timeline) == 0 || !slices.Contains(timeline, "breaker.trip") {
		t.Errorf("beta's timeline %v; %d trips", timeline, len(bst.Trips))
	}
	shot("tenant.png")

	// 6. Actions, each behind a confirmation, audited.
	answers := make(chan bool, 8)
	asked := make(chan string, 8)
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked <- ev.Message
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: <-answers})
		}
	}()
	click := func(sel string, accept bool) string {
		t.Helper()
		answers <- accept
		q, _ := json.Marshal(sel)
		before := refreshes()
		run(t, bctx, chromedp.Poll[bool](`(() => { const b = document.querySelector(`+string(q)+`); if (!b || b.disabled) return null; b.click(); return true; })()`,
			chromedp.WithPollingTimeout(10*time.Second)))
		msg := <-asked
		if accept {
			waitRefresh(before)
		} else {
			time.Sleep(300 * time.Millisecond) // a stray call would be in flight: let it land
		}
		return msg
	}
	if msg := click("#t-actions button.freeze", false); msg != "Freeze tenant beta? Its mail is refused until unfrozen." {
		t.Errorf("confirmation %q", msg)
	}
	if e.frozen(t, "beta") {
		t.Fatal("beta frozen after Cancel")
	}
	click("#t-actions button.freeze", true)
	if !e.frozen(t, "beta") {
		t.Fatal("beta not frozen after OK")
	}
	do("alpha's page", chromedp.Navigate(e.srv.URL+"/dashboard/#tenant/alpha"), chromedp.WaitVisible(chromedp.CSS(`#t-tokens tr[data-key="`+minted.KeyID+`"]`)))
	click("#t-actions button.force-open", true)
	if st, _ := e.guard.Status(ctx, "alpha"); st.State != store.ForcedOpen {
		t.Errorf("alpha's breaker after force open: %s", st.State)
	}
	click(`#t-tokens tr[data-key="`+minted.KeyID+`"] button.revoke`, true)
	toks, _ := e.be.Tokens().List(ctx)
	for _, tk := range toks {
		if tk.KeyID == minted.KeyID && tk.Revoked.IsZero() {
			t.Error("alpha's token not revoked")
		}
	}
	do("suppress", chromedp.SetValue(chromedp.ID("supp-address"), "Spiky@Example.net"))
	answers <- true
	do("submit", chromedp.Click(chromedp.ID("supp-add")))
	<-asked
	do("listed", chromedp.WaitVisible(chromedp.CSS(`#t-supps li[data-address="spiky@example.net"]`)))
	click(`#t-supps li[data-address="spiky@example.net"] button`, true)
	if l, _, _ := e.be.Suppressions().List(ctx, admin.SuppressionQuery{Tenant: "alpha", Limit: 10}); len(l) != 0 {
		t.Errorf("suppressions of alpha after the removal: %v", l)
	}
	click("#t-actions button.reset", true)
	if st, _ := e.guard.Status(ctx, "alpha"); st.State != store.Closed {
		t.Errorf("alpha's breaker after reset: %s", st.State)
	}
	audit, _ := e.be.Audit().List(ctx, 50)
	var actions []string
	for _, a := range audit {
		if a.Result == admin.ResultOK {
			actions = append(actions, a.Action+" "+a.Target)
		}
	}
	for _, want := range []string{"tenant.freeze beta", "breaker.force_open alpha", "token.revoke " + minted.KeyID,
		"suppression.add alpha/spiky@example.net", "suppression.remove alpha/spiky@example.net", "breaker.reset alpha"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit %v lacks %q", actions, want)
		}
	}
	timeline = run(t, bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#t-timeline li')).map(l => l.dataset.kind)`))
	if !slices.Contains(timeline, "breaker.force_open") || !slices.Contains(timeline, "breaker.reset") {
		t.Errorf("alpha's timeline after the actions: %v", timeline)
	}

	// 7. The dark theme, and a phone.
	if _, err := chromedp.Call(bctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	do("dark", chromedp.Navigate(e.srv.URL+"/dashboard/#tenant/beta"), chromedp.WaitVisible(chromedp.CSS(`#t-chart-rates canvas`)))
	if bg := run(t, bctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`)); bg != "rgb(18, 21, 28)" {
		t.Errorf("dark theme: body background %q", bg)
	}
	shot("tenant-dark.png")
	wide := run(t, bctx, chromedp.Evaluate[int](`(() => { location.hash = ''; return getComputedStyle(document.querySelector('#account .charts')).gridTemplateColumns.split(' ').length; })()`))
	if wide != 2 {
		t.Errorf("at 1280 px the account charts sit in %d columns; want 2", wide)
	}
	if _, err := chromedp.Call(bctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: 390, Height: 844, DeviceScaleFactor: 2, Mobile: true}); err != nil {
		t.Fatal(err)
	}
	do("phone", chromedp.Navigate(e.srv.URL+"/dashboard/"), chromedp.WaitVisible(chromedp.CSS(`#chart-bounce canvas`)))
	phone := run(t, bctx, chromedp.Evaluate[[]float64](`[getComputedStyle(document.querySelector('#account .charts')).gridTemplateColumns.split(' ').length,
		document.documentElement.scrollWidth, window.innerWidth, document.querySelector('#chart-bounce canvas').getBoundingClientRect().right]`))
	if phone[0] != 1 || phone[1] > phone[2] || phone[3] > phone[2] {
		t.Errorf("on a phone: %v chart columns, page %v px wide in a %v px window, chart ends at %v px", phone[0], phone[1], phone[2], phone[3])
	}
	if v := attr("body", "data-csp-violations"); v != "0" {
		t.Errorf("CSP violations reported: %s (%s)", v, text("#message"))
	}
	shot("phone.png")
}

// near reports whether the decimal s is within 1e-9 of want.
func near(s string, want float64) bool {
	var v float64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return false
	}
	return math.Abs(v-want) < 1e-9
}

// commas writes n as the page does (en-US grouping).
func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
