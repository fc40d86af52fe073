package admin_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sesgate/sesgate/internal/browsertest"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestDashboardInChromium loads the dashboard in a real headless Chromium:
// the page shows nothing until the token is given, then the tenants of the
// backend; a click on Freeze freezes that tenant in the backend, a click on
// Reset breaker closes a tripped breaker. Set DASHBOARD_SCREENSHOT to keep
// the screenshot somewhere to look at.
func TestDashboardInChromium(t *testing.T) {
	bin := browsertest.FindChromium(t)
	e := newEnv(t, nil)
	now := e.clock.Now()
	// Within alpha's limits: 1,000 recipients and 50 first contacts an hour.
	alpha, beta := addrs("a", 50), addrs("b", 12)
	for i := 0; i < 60; i++ {
		at := now.Add(-time.Duration(i) * time.Minute)
		e.send(t, "alpha", at, alpha[:20+i%7*2]...)
		e.send(t, "beta", at, beta[:10+i%3]...)
		e.feedback(t, "alpha", at, i%5/4, 0)  // 12 of 1,500: under the lines
		e.feedback(t, "beta", at, 0, i%30/29) // 2 of 660: under the minimum volume
	}
	e.trip(t, "gamma")

	bctx, do := browsertest.Start(t, bin, 1280, 800, 30*time.Second)
	rows := `Array.from(document.querySelectorAll('#tenants tbody tr')).map(r => r.dataset.tenant)`

	do("load", // "/" redirects to /dashboard/
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login-form")))
	rowsBefore := run(t, bctx, chromedp.Evaluate[[]string](rows))
	mainHidden := run(t, bctx, chromedp.Evaluate[bool](`document.getElementById('main').hidden`))
	if len(rowsBefore) != 0 || !mainHidden {
		t.Fatalf("before the token: rows %v, main hidden %v", rowsBefore, mainHidden)
	}
	headerBG := run(t, bctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('header')).backgroundColor`))
	if headerBG != "rgb(29, 35, 48)" {
		t.Fatalf("style sheet not applied (CSP?): header background %q", headerBG)
	}

	do("wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "sg_wrong"),
		chromedp.Click(chromedp.ID("signin")))
	loginErr := run(t, bctx, chromedp.Poll[string](
		`document.getElementById('login-error').textContent || null`, chromedp.WithPollingTimeout(5*time.Second)))
	if loginErr != "The admin token was refused." {
		t.Fatalf("login error %q", loginErr)
	}

	do("sign in",
		chromedp.SendKeys(chromedp.ID("token"), e.token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="gamma"]`)))
	rowsAfter := run(t, bctx, chromedp.Evaluate[[]string](rows))
	sparks := run(t, bctx, chromedp.Evaluate[int](`document.querySelectorAll('#tenants svg.spark polyline').length`))
	// Worst first: gamma's breaker is open; beta's complaint rate (2 of
	// 660, 0.3 %) is further over its line than alpha's bounce rate.
	if !slices.Equal(rowsAfter, []string{"gamma", "beta", "alpha"}) || sparks != 9 {
		t.Fatalf("after the token: rows %v, %d charts", rowsAfter, sparks)
	}
	shot := run(t, bctx, chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), "dashboard.png")
	if p := os.Getenv("DASHBOARD_SCREENSHOT"); p != "" {
		path = p
	}
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	if len(shot) < 10000 {
		t.Fatalf("screenshot of %d bytes: blank page?", len(shot))
	}

	// Every action asks for confirmation: accept them all.
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	if e.frozen(t, "beta") {
		t.Fatal("beta frozen before the click")
	}
	do("freeze beta",
		chromedp.Click(chromedp.CSS(`#tenants tr[data-tenant="beta"] button.freeze`)),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="beta"] button.unfreeze`)))
	if !e.frozen(t, "beta") || e.frozen(t, "alpha") {
		t.Fatalf("after the click: beta frozen %v, alpha frozen %v", e.frozen(t, "beta"), e.frozen(t, "alpha"))
	}
	frozenList := run(t, bctx, chromedp.Text(chromedp.ID("frozen")))
	if want := "beta: frozen from the dashboard"; len(frozenList) < len(want) || frozenList[:len(want)] != want {
		t.Fatalf("frozen list %q", frozenList)
	}

	do("reset gamma",
		chromedp.Click(chromedp.CSS(`#tenants tr[data-tenant="gamma"] button.reset`)),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="gamma"] .badge.breaker.closed`)))
	st, err := e.guard.Status(context.Background(), "gamma")
	if err != nil || st.State != store.Closed {
		t.Fatalf("gamma breaker after the click: %+v %v", st, err)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
