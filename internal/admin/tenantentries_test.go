package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/internal/admin"
)

// TestTenantEntriesAPI: the tenants of the API over the real backend:
// create (with its first token, which authenticates), every problem of a
// bad entry at once, get, update, paged list with a prefix, the file's
// tenants read-only, delete (its token refused), the refusals of bad
// requests, and an audit record of each action.
func TestTenantEntriesAPI(t *testing.T) {
	e := newEnv(t, nil)
	a := e.call(t, "POST", "/v1/tenants?mint_token=true", `{"id": "web-1", "identities": ["@web.example"], "limits": {"per_day": 5}}`)
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var c admin.Created
	a.json(t, &c)
	if c.ID != "web-1" || c.Source != admin.SourceAPI || c.Token == nil || c.Token.Tenant != "web-1" {
		t.Fatalf("created: %+v", c)
	}
	if tenant, ok := e.authenticate(t, c.Token.Token); !ok || tenant != "web-1" {
		t.Fatalf("the minted token: %q %v", tenant, ok)
	}
	// YAML body, no token.
	if a := e.do(t, "POST", "/v1/tenants", e.token, "application/yaml", "id: web-2\nidentities: ['*']\n"); a.status != 201 {
		t.Fatalf("create YAML: %d %s", a.status, a.body)
	}

	// Every problem at once, in the file's words.
	a = e.call(t, "POST", "/v1/tenants", `{"id": "bad", "limits": {"rate": -1, "colour": 1}}`)
	var bad struct {
		Error struct {
			Code     string   `json:"code"`
			Problems []string `json:"problems"`
		} `json:"error"`
	}
	a.json(t, &bad)
	if a.status != 400 || bad.Error.Code != "invalid_tenant" || strings.Join(bad.Error.Problems, "\n") != strings.Join([]string{
		"identities (line 1, not set): at least one identity is required",
		"limits.rate (line 1): must be >= 0",
		"limits.colour (line 1): unknown key (want one of: rate, burst, max_recipients, max_message_size, rate_per, per_hour, per_day, first_contact_per_hour, first_contact_per_day, per_domain_rate, per_domain_burst, first_contact_window, shadow)",
	}, "\n") {
		t.Fatalf("bad entry: %d %s", a.status, a.body)
	}

	// Get, update (the id of the path only), list by pages.
	a = e.call(t, "GET", "/v1/tenants/web-1/entry", "")
	var got admin.TenantEntry
	a.json(t, &got)
	var compact bytes.Buffer
	if a.status != 200 || got.Version != c.Version || json.Compact(&compact, got.Entry) != nil || !strings.Contains(compact.String(), `"per_day":5`) {
		t.Fatalf("get: %d %s", a.status, a.body)
	}
	if a := e.call(t, "PUT", "/v1/tenants/web-1", `{"id": "web-9", "identities": ["*"]}`); a.status != 400 {
		t.Fatalf("update with another id: %d %s", a.status, a.body)
	}
	a = e.call(t, "PUT", "/v1/tenants/web-1", `{"id": "web-1", "identities": ["*"]}`)
	var upd admin.TenantEntry
	a.json(t, &upd)
	if a.status != 200 || upd.Version <= c.Version {
		t.Fatalf("update: %d %s", a.status, a.body)
	}
	a = e.call(t, "GET", "/v1/tenant-entries?limit=2", "")
	var p1 admin.TenantEntryPage
	a.json(t, &p1)
	a = e.call(t, "GET", "/v1/tenant-entries?limit=2&cursor="+p1.Next, "")
	var p2 admin.TenantEntryPage
	a.json(t, &p2)
	a = e.call(t, "GET", "/v1/tenant-entries?limit=2&cursor="+p2.Next, "")
	var p3 admin.TenantEntryPage
	a.json(t, &p3)
	ids := func(p admin.TenantEntryPage) (out []string) {
		for _, e := range p.Tenants {
			out = append(out, e.Source+":"+e.ID)
		}
		return out
	}
	if all := strings.Join(append(append(ids(p1), ids(p2)...), ids(p3)...), " "); all != "file:alpha file:beta file:gamma api:web-1 api:web-2" || p3.Next != "" {
		t.Fatalf("pages: %s (next %q)", all, p3.Next)
	}
	a = e.call(t, "GET", "/v1/tenant-entries?prefix=web-&source=api", "")
	var pw admin.TenantEntryPage
	a.json(t, &pw)
	if strings.Join(ids(pw), " ") != "api:web-1 api:web-2" {
		t.Fatalf("prefix: %s", a.body)
	}

	// The file's tenants are read-only here.
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/tenants", `{"id": "alpha", "identities": ["*"]}`},
		{"PUT", "/v1/tenants/alpha", `{"id": "alpha", "identities": ["*"]}`},
		{"DELETE", "/v1/tenants/alpha", ""},
	} {
		if a := e.call(t, r.method, r.path, r.body); a.status != 409 || !strings.Contains(string(a.body), "is defined in the policy file") {
			t.Errorf("%s %s: %d %s", r.method, r.path, a.status, a.body)
		}
	}

	// Bad requests.
	for _, r := range []struct {
		method, path, ct, body string
		status                 int
	}{
		{"POST", "/v1/tenants", "text/plain", `{}`, 415},
		{"POST", "/v1/tenants?mint=1", "application/json", `{}`, 400},
		{"POST", "/v1/tenants?mint_token=maybe", "application/json", `{}`, 400},
		{"POST", "/v1/tenants", "application/json", strings.Repeat(" ", admin.MaxEntryBytes+1), 413},
		{"GET", "/v1/tenant-entries?source=disk", "", "", 400},
		{"GET", "/v1/tenant-entries?cursor=zzz", "", "", 400},
		{"GET", "/v1/tenants/nobody/entry", "", "", 404},
		{"DELETE", "/v1/tenants/nobody", "", "", 404},
	} {
		if a := e.do(t, r.method, r.path, e.token, r.ct, r.body); a.status != r.status {
			t.Errorf("%s %s: %d, want %d: %s", r.method, r.path, a.status, r.status, a.body)
		}
	}

	// Delete: the token is refused.
	if a := e.call(t, "DELETE", "/v1/tenants/web-1", ""); a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if _, ok := e.authenticate(t, c.Token.Token); ok {
		t.Fatal("the deleted tenant's token still authenticates")
	}

	// Audited, refusals included.
	log, err := e.be.Audit().List(context.Background(), 100)
	must(t, err)
	seen := map[string]int{}
	for _, l := range log {
		seen[l.Action+"/"+l.Result]++
	}
	if seen["tenant.create/"+admin.ResultOK] != 2 || seen["tenant.update/"+admin.ResultOK] != 1 || seen["tenant.delete/"+admin.ResultOK] != 1 || seen["tenant.create/"+admin.ResultError] < 3 {
		t.Errorf("audit: %v", seen)
	}
}
