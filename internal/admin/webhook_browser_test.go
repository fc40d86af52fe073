package admin_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sesgate/sesgate/internal/browsertest"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

// TestDashboardWebhooksInChromium: the dashboard's webhooks section shows
// the figures of the API (alpha ok with one delivery; beta failing, backlog
// 1, the receiver's answer as last error; the dead letter with its error);
// a click on Replay asks for confirmation: dismissed, nothing happens;
// accepted, the event leaves the dead-letter list and is queued again.
func TestDashboardWebhooksInChromium(t *testing.T) {
	bin := browsertest.FindChromium(t)
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newHookEnv(t, st)
	e.settle(t)
	e.stopHook()

	// One dead letter of beta's webhook, through the queue's own calls.
	ctx := context.Background()
	now := time.Now()
	it := store.WebhookItem{ID: "evt_deadone", Tenant: "beta", Endpoint: e.bad, Chain: e.bad + "|m1", Type: "bounce",
		Enqueued: now, Body: []byte(`{"type":"bounce"}`)}
	if ok, err := st.EnqueueWebhook(ctx, it, now, 100); err != nil || !ok {
		t.Fatalf("enqueue: %v %v", ok, err)
	}
	cs, err := st.ClaimWebhooks(ctx, now, time.Minute, 10)
	if err != nil || len(cs) != 1 || cs[0].Item.ID != it.ID {
		t.Fatalf("claim: %+v %v", cs, err)
	}
	it.Attempts, it.LastError, it.LastAttempt = 7, "dial: connection refused", now
	if ok, err := st.DeadWebhook(ctx, cs[0], it, now, 100); err != nil || !ok {
		t.Fatalf("dead: %v %v", ok, err)
	}

	bctx, do := browsertest.Start(t, bin, 1280, 900, 40*time.Second)
	text := func(sel string) string {
		t.Helper()
		// One evaluation (not a node id that a refresh may replace).
		q, _ := json.Marshal(sel)
		return run(t, bctx, chromedp.Evaluate[string](`(() => { const n = document.querySelector(`+string(q)+`); return n ? n.textContent : '(none)'; })()`))
	}

	do("sign in",
		chromedp.Navigate(e.srv.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), e.token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`#dead tr[data-id="evt_deadone"]`)))

	a, b := `#hooks tr.tenant[data-tenant="alpha"] `, `#hooks tr.tenant[data-tenant="beta"] `
	bh := `#hooks tr.hook[data-tenant="beta"] `
	for sel, want := range map[string]string{
		a + ".health":                            "ok",
		a + ".backlog":                           "0",
		a + ".oldest":                            "–",
		a + ".delivered":                         "1",
		b + ".health":                            "failing",
		b + ".backlog":                           "1",
		b + ".failed":                            "1",
		b + ".dead":                              "1",
		b + ".dead-letters":                      "1",
		bh + ".failed":                           "1",
		bh + "td:first-child":                    e.bad,
		`#dead tr[data-id="evt_deadone"] td.err`: "dial: connection refused",
		`#webhooks-window`:                       "(counts: last 24 h)",
	} {
		if got := text(sel); got != want {
			t.Errorf("%s: %q, want %q", sel, got, want)
		}
	}
	if got := text(b + ".oldest"); got == "–" || got == "" {
		t.Errorf("beta's oldest undelivered: %q", got)
	}
	// beta's last error is the dead letter's (its last outcome).
	if got := text(bh + ".err"); len(got) < len("dial: connection refused") || got[:len("dial: connection refused")] != "dial: connection refused" {
		t.Errorf("beta's webhook last error %q", got)
	}
	gamma := run(t, bctx, chromedp.Evaluate[int](`document.querySelectorAll('#hooks tr[data-tenant="gamma"]').length`))
	if gamma != 0 {
		t.Errorf("gamma (no webhooks) has %d rows", gamma)
	}

	// The confirmation: answered by a goroutine (the dialog blocks the
	// click), first Cancel, then OK.
	answers := make(chan bool, 2)
	asked := make(chan string, 2)
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
	// Clicks through one evaluation: the page re-renders its rows after
	// each action, so a node id found earlier may be gone.
	click := func(name string) {
		t.Helper()
		ok := run(t, bctx, chromedp.Poll[bool](`(() => {
			const b = document.querySelector('#dead tr[data-id="evt_deadone"] button.replay');
			if (!b || b.disabled) return null;
			b.click();
			return true;
		})()`, chromedp.WithPollingTimeout(10*time.Second)))
		if !ok {
			t.Fatalf("%s: no replay button", name)
		}
	}
	answers <- false
	click("replay, cancelled")
	if msg := <-asked; msg != "Replay event evt_deadone (bounce) to "+e.bad+" for tenant beta?" {
		t.Errorf("confirmation %q", msg)
	}
	// The handler has finished (its button is enabled again, after the
	// refresh that follows it) before the store is looked at.
	run(t, bctx, chromedp.Poll[bool](`(() => {
		const b = document.querySelector('#dead tr[data-id="evt_deadone"] button.replay');
		return b && !b.disabled ? true : null;
	})()`, chromedp.WithPollingTimeout(10*time.Second)))
	time.Sleep(200 * time.Millisecond) // a stray call would be in flight: let it land
	if dead, _ := st.ListDeadWebhooks(ctx, "beta", 10); len(dead) != 1 {
		t.Fatalf("after Cancel: %d dead letters, want 1", len(dead))
	}
	answers <- true
	click("replay, confirmed")
	<-asked
	do("dead list empty", chromedp.WaitNotPresent(chromedp.CSS(`#dead tr[data-id="evt_deadone"]`)))
	if dead, _ := st.ListDeadWebhooks(ctx, "", 10); len(dead) != 0 {
		t.Fatalf("after OK: %d dead letters, want 0", len(dead))
	}
	// The page refreshes after the replay: poll until beta's row shows it.
	after := run(t, bctx, chromedp.Poll[string](`(() => {
		const r = document.querySelector('#hooks tr.tenant[data-tenant="beta"]');
		const v = r && r.querySelector('.backlog').textContent + ' ' + r.querySelector('.dead-letters').textContent;
		return v === '2 0' ? v : null;
	})()`, chromedp.WithPollingTimeout(10*time.Second)))
	if after != "2 0" {
		t.Errorf("beta's backlog and dead letters after the replay: %q", after)
	}
}
