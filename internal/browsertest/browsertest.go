// Package browsertest starts headless Chromium for the dashboard's browser
// tests (internal/admin, internal/server, cmd/sesgate).
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// FindChromium returns the browser binary, or skips (outside CI) or fails
// (in CI, where the setup installs Debian's chromium package).
func FindChromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; the CI setup must run: apt-get install -y chromium")
	}
	t.Skip("chromium not found (install it with: apt-get install -y chromium); skipping the browser test")
	return ""
}

// Start starts headless Chromium (bin) with a w×h window for at most d, and
// returns its context and do, which runs steps or fails the test. The
// browser is stopped when the test ends.
func Start(t testing.TB, bin string, w, h int, d time.Duration) (context.Context, func(string, ...chromedp.Action[chromedp.Void])) {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(w, h))
	cctx, cancel := context.WithTimeout(context.Background(), d)
	actx, acancel := chromedp.NewExecAllocator(cctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel(); cancel() })
	return bctx, func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
