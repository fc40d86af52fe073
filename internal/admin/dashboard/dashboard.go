// Package dashboard holds the admin dashboard: one page, its script and its
// style sheet, embedded in the binary. The page fetches nothing from outside
// and holds no data of its own: it asks the operator for an admin token,
// keeps it in sessionStorage, and reads and acts through the authenticated
// admin API (package admin) with an Authorization: Bearer header.
//
// Invariants:
//   - No cookies are used, so the browser never attaches a credential on its
//     own: a cross-site page cannot make the dashboard act (no CSRF).
//   - Served with CSP (self only, no inline script or style), frame-ancestors
//     'none' and X-Frame-Options DENY by the admin handler.
//   - Every value from the API is written with textContent, never as HTML.
//   - Charts are drawn by uPlot, vendored under assets/vendor (version,
//     source and hashes in its README.md): a canvas, element styles set
//     through the CSSOM (allowed by style-src 'self'); the page reports a
//     CSP violation it sees in #message and body[data-csp-violations].
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
)

// CSP is the Content-Security-Policy of every admin response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets
var assets embed.FS

// assetFiles are the files served beside the page (the vendored charting
// library, uPlot, under vendor/: see vendor/README.md).
var assetFiles = []string{"app.js", "app.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}

// Handler serves the page at "/" and the assets beside it ("/app.js",
// "/app.css", "/vendor/..."); mount it under a prefix with http.StripPrefix.
func Handler() (http.Handler, error) {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	tmpl, err := template.ParseFS(static, "index.html")
	if err != nil {
		return nil, err
	}
	// The version (a hash of the assets) keeps a browser from mixing a
	// cached script with a new page.
	sum := sha256.New()
	for _, name := range assetFiles {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			return nil, err
		}
		sum.Write(b)
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, struct{ Version string }{hex.EncodeToString(sum.Sum(nil))[:12]}); err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page.Bytes())
	})
	for _, name := range assetFiles {
		mux.Handle("GET /"+name, files)
	}
	return mux, nil
}
