package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/browsertest"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestDashboardBounceSpikeE2E runs a whole gateway (Start, the SES sink
// on internal/sestest, signed SNS events back) through a bounce spike:
// 30 % of the recipients bounce (EventOptions.BounceFraction) until the
// tenant's breaker trips and refuses the rest. The admin API and the
// dashboard in headless Chromium then show: the tenant's recipients this
// hour counted though it has no quota (issue 16: it read 0), its breaker
// open with the trip in the feed, its refusals by reason, the account's
// sent count and bounces, and a bounced message's journey by SES
// MessageId and by its recipient; the refusals counted into the store and
// the trip in the shared feed, named by the replica.
func TestDashboardBounceSpikeE2E(t *testing.T) {
	bin := browsertest.FindChromium(t)
	dir := t.TempDir()
	hs := newHookStack(t, dir, "", "      - {url: \"https://hooks.evil.example/x\", events: [delivery], secret_file: SECRET}\n")
	hs.receiver.setDown(false)
	_, s := startHookGateway(t, dir, hs.policy, "--replica-name", "replica-e2e")
	if err := hs.ses.SetEvents(&sestest.EventOptions{URL: "http://" + s.HTTPAddr + DefaultSNSPath, BounceFraction: 0.3, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	adminURL := "http://" + s.AdminAddr
	adminGet := func(path string, v any) {
		t.Helper()
		code, body := getJSON(t, "GET", adminURL+path, hs.admin)
		if code != 200 || json.Unmarshal([]byte(body), v) != nil {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}

	// Send one recipient a message until the breaker refuses (at most 400).
	var accepted, refused int
	var sesIDs []string
	for i := 0; i < 400 && refused < 5; i++ {
		body := fmt.Sprintf(`{"from":"shop@app.example","to":["user%d@example.net"],"subject":"x","text":"x"}`, i)
		req, _ := http.NewRequest("POST", "http://"+s.HTTPAddr+"/v1/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+hs.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			MessageID string `json:"message_id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			accepted++
			sesIDs = append(sesIDs, out.MessageID)
		case 503, 429:
			refused++
		default:
			t.Fatalf("send %d: %s", i, resp.Status)
		}
		if i%20 == 19 {
			time.Sleep(100 * time.Millisecond) // let the events catch up
		}
	}
	var brk admin.BreakerStatus
	waitFor(t, "app's breaker to trip", 30*time.Second, func() bool {
		adminGet("/v1/breakers/app", &brk)
		return brk.State == "open" || brk.State == "forced_open"
	})
	if refused == 0 {
		t.Fatalf("%d accepted, none refused: the breaker never refused", accepted)
	}
	var ten admin.TenantStatus
	adminGet("/v1/tenants/app", &ten)
	if ten.Limits.PerHour != 0 || ten.Usage.Hour != int64(accepted) {
		t.Fatalf("app (per_hour %d) used %d this hour; %d accepted", ten.Limits.PerHour, ten.Usage.Hour, accepted)
	}
	// SES's events of the last messages still arrive after the breaker
	// tripped: wait until the account's bounces settle (the same over a
	// second) before comparing the page with them.
	var acct admin.AccountView
	var sent, bounces int64
	settled := -1
	waitFor(t, "the bounce events to settle", 30*time.Second, func() bool {
		adminGet("/v1/account", &acct)
		sent, bounces = 0, 0
		for _, p := range acct.Points {
			sent += p.Sent
			bounces += p.Bounces
		}
		done := int(bounces) == settled
		settled = int(bounces)
		if !done {
			time.Sleep(time.Second)
		}
		return done
	})
	if sent != int64(accepted) || bounces == 0 || acct.Usage.Hour != int64(accepted) {
		t.Fatalf("account: %d sent, %d bounces, usage %+v; %d accepted", sent, bounces, acct.Usage, accepted)
	}
	// A bounced message, found by its SES MessageId.
	var bouncedSES string
	for _, id := range sesIDs {
		code, body := getJSON(t, "GET", adminURL+"/v1/messages/"+id, hs.admin)
		var j admin.MessageJourney
		if code == 200 && json.Unmarshal([]byte(body), &j) == nil &&
			slices.ContainsFunc(j.Events, func(e store.MessageEvent) bool { return e.Type == "bounce" }) {
			bouncedSES = id
			break
		}
	}
	if bouncedSES == "" {
		t.Fatal("no bounced message found by SES MessageId")
	}
	// The same message found by its recipient (the index written with the
	// accepted status), with its bounce.
	var bj admin.MessageJourney
	adminGet("/v1/messages/"+bouncedSES, &bj)
	bouncedTo := ""
	for _, e := range bj.Events {
		if e.Type == "bounce" && len(e.Recipients) > 0 {
			bouncedTo = e.Recipients[0]
		}
	}
	var found admin.RecipientSearch
	adminGet("/v1/recipients/"+bouncedTo+"/messages", &found)
	if len(found.Messages) != 1 || found.Messages[0].ID != bj.ID || found.Messages[0].Tenant != "app" ||
		!slices.ContainsFunc(found.Messages[0].Events, func(e store.MessageEvent) bool { return e.Type == "bounce" }) {
		t.Fatalf("messages to %s: %+v; want %s", bouncedTo, found, bj.ID)
	}
	// The refusals, counted into the store by the replica (every 5 s).
	var rf admin.Refusals
	waitFor(t, "the refusals in the store", 20*time.Second, func() bool {
		adminGet("/v1/refusals?span=1h", &rf)
		var n int64
		for _, c := range rf.Tenants["app"] {
			n += c
		}
		return n == int64(refused)
	})
	// The trip in the shared feed (written every 2 s), named by replica.
	waitFor(t, "the trip in the shared feed", 20*time.Second, func() bool {
		var feed struct{ Items []admin.FeedItem }
		adminGet("/v1/feed?limit=40", &feed)
		return slices.ContainsFunc(feed.Items, func(it admin.FeedItem) bool {
			return it.Kind == "breaker.trip" && it.Tenant == "app" && it.Replica == "replica-e2e"
		})
	})

	bctx, do := browsertest.Start(t, bin, 1280, 900, 60*time.Second)
	do("dashboard",
		chromedp.Navigate(adminURL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), hs.admin),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="app"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-bounce canvas`)))
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	row := `document.querySelector('#tenants tr[data-tenant="app"] `
	if got, want := eval(row+`td.usage').textContent`), fmt.Sprintf("%d · %d", accepted, accepted); got != want {
		t.Errorf("app's recipients this hour · today %q; want %q", got, want)
	}
	if got := eval(row + `.badge.breaker').textContent`); got != strings.ReplaceAll(string(brk.State), "_", "-") {
		t.Errorf("app's breaker badge %q; state %s", got, brk.State)
	}
	if got := eval(row + `td.refused').textContent`); !strings.Contains(got, fmt.Sprint(refused)+" ") {
		t.Errorf("app's refusals %q; %d refused", got, refused)
	}
	if got := eval(`document.getElementById('acct-usage').textContent`); got != fmt.Sprintf("%d · %d", accepted, accepted) {
		t.Errorf("account usage %q; %d accepted", got, accepted)
	}
	if got, want := eval(`document.getElementById('acct-bounce').textContent`), fmt.Sprintf("%.2f %%", 100*float64(bounces)/float64(sent)); got != want {
		t.Errorf("account bounce rate %q; want %q", got, want)
	}
	if got := eval(`document.getElementById('acct-quota').textContent`); got != "not read" {
		t.Errorf("SES quota %q (the policy sets max_send_rate: GetAccount is not called)", got)
	}
	if got := eval(`Array.from(document.querySelectorAll('#feed li[data-kind="breaker.trip"] a.tenant')).map(a => a.textContent).join(',')`); !strings.Contains(got, "app") {
		t.Errorf("feed trips of %q; want app", got)
	}
	if got := eval(`document.body.dataset.cspViolations`); got != "0" {
		t.Errorf("CSP violations: %s", got)
	}
	do("lookup",
		chromedp.SetValue(chromedp.ID("lookup-id"), bouncedSES),
		chromedp.Click(chromedp.ID("lookup-go")),
		chromedp.WaitVisible(chromedp.ID("journey")))
	if got := eval(`Array.from(document.querySelectorAll('#journey-steps li')).map(l => l.dataset.type).join(',')`); got != "accepted,bounce" {
		t.Errorf("journey of %s: %q", bouncedSES, got)
	}
	do("search by recipient",
		chromedp.SetValue(chromedp.ID("lookup-id"), bouncedTo),
		chromedp.Click(chromedp.ID("lookup-go")),
		chromedp.WaitVisible(chromedp.ID("journeys")))
	if got := eval(`Array.from(document.querySelectorAll('#journeys-list li.journey')).map(l => l.dataset.id + ':' +
		Array.from(l.querySelectorAll('li.step')).map(s => s.dataset.type).join(',')).join(' ')`); got != bj.ID+":accepted,bounce" {
		t.Errorf("messages to %s on the page: %q; want %s:accepted,bounce", bouncedTo, got, bj.ID)
	}
}
