package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sesgate/sesgate/internal/browsertest"
)

// TestDashboardAgainstRunningGateway opens the dashboard of a real
// `sesgate serve` (laptop mode: the admin token minted into the data
// directory) in headless Chromium: the page lists the gateway's tenant, and
// a click on Freeze stops that tenant's sending (HTTP 503 tenant_frozen).
func TestDashboardAgainstRunningGateway(t *testing.T) {
	bin := browsertest.FindChromium(t)
	g := startGateway(t, baseEnv(t))
	adminTok, err := os.ReadFile(filepath.Join(g.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(g.dataDir, "admin-token")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token mode %v, want 0600", fi.Mode().Perm())
	}
	tok := g.token(t)
	msg := map[string]any{"from": "me@example.com", "to": []string{"you@example.org"}, "subject": "x", "text": "x"}
	if r := postJSON(t, g.httpAddr, tok, msg); r.status != 200 {
		t.Fatalf("send before the freeze: %d %v", r.status, r.body)
	}

	bctx, do := browsertest.Start(t, bin, 1280, 800, 30*time.Second)
	do("dashboard",
		chromedp.Navigate("http://"+g.adminAddr+"/"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(adminTok))),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="dev"]`)))
	rows, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#tenants tbody tr')).map(r => r.dataset.tenant)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows, []string{"dev"}) {
		t.Fatalf("tenants on the page: %v, want [dev]", rows)
	}
	// The dev tenant has no quota: its usage is counted all the same
	// (issue 16: it read "0 · 0").
	usage, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('#tenants tr[data-tenant="dev"] td.usage').textContent`))
	if err != nil || usage != "1 · 1" {
		t.Fatalf("dev's recipients this hour · today: %q %v; want 1 · 1", usage, err)
	}
	// Freeze asks for confirmation: accept it.
	asked := make(chan string, 1)
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked <- ev.Message
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	do("freeze from the page",
		chromedp.Click(chromedp.CSS(`#tenants tr[data-tenant="dev"] button.freeze`)),
		chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="dev"] button.unfreeze`)))
	select {
	case q := <-asked:
		if q != "Freeze tenant dev? Its mail is refused until unfrozen." {
			t.Errorf("confirmation %q", q)
		}
	case <-time.After(5 * time.Second):
		t.Error("the freeze was not confirmed first (no dialog)")
	}
	within(t, time.Second, "dev refused after the freeze from the page", func() bool {
		r := postJSON(t, g.httpAddr, tok, msg)
		return r.status == 503 && errCode(r) == "tenant_frozen"
	})
}
