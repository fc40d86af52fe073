package storeadmin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/config"
)

// table is a TokenTable that remembers the calls.
type table struct {
	m                map[string]auth.Entry
	replaces         int
	patched, removed []string
}

func (t *table) Replace(es []auth.Entry) {
	t.replaces++
	t.m = map[string]auth.Entry{}
	for _, e := range es {
		t.m[e.Record.KeyID] = e
	}
}

func (t *table) Patch(set []auth.Entry, remove []string) {
	t.m = maps.Clone(t.m)
	for _, k := range remove {
		delete(t.m, k)
		t.removed = append(t.removed, k)
	}
	for _, e := range set {
		t.m[e.Record.KeyID] = e
		t.patched = append(t.patched, e.Record.KeyID)
	}
}

func filePolicy(t *testing.T, perDay int, extraTenant string) *Policy {
	t.Helper()
	doc := fmt.Sprintf("plans:\n  basic: {limits: {per_day: %d}}\ntenants:\n  - {id: filed, identities: ['*'], plan: basic}\n%s", perDay, extraTenant)
	p, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ts, es := p.Build()
	return &Policy{Tenants: ts, Entries: es, File: p, FilePath: "policy.yml"}
}

// TestAPITenantsApplyIncrementally: after the first apply, one change of
// one tenant among many decodes that one entry and patches only its
// token on another replica; a plan change at a reload re-decodes the
// tenants on the plan; a deleted tenant's token leaves the table; the file
// wins an id both define.
func TestAPITenantsApplyIncrementally(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	a, _ := New(Options{Store: st}, filePolicy(t, 5, ""))
	b, _ := New(Options{Store: st}, filePolicy(t, 5, ""))
	ents := a.TenantEntries()
	kids := map[string]string{}
	const n = 40
	for i := range n {
		id := fmt.Sprintf("app-%02d", i)
		if _, err := ents.Create(ctx, []byte(`{"id": "`+id+`", "identities": ["*"], "plan": "basic"}`)); err != nil {
			t.Fatal(err)
		}
		m := auth.NewToken(id)
		if err := a.Tokens().Create(ctx, m.Record, a.now()); err != nil {
			t.Fatal(err)
		}
		kids[id] = m.Record.KeyID
	}
	var tb table
	if err := b.ApplyTo(ctx, &tb); err != nil {
		t.Fatal(err)
	}
	if tb.replaces != 1 || len(tb.m) != n || b.decoded.Load() != n {
		t.Fatalf("first apply: %d replaces, %d entries, %d decodes", tb.replaces, len(tb.m), b.decoded.Load())
	}
	if e := tb.m[kids["app-07"]]; e.Tenant == nil || e.Tenant.ID != "app-07" || e.Tenant.Limits.PerDay != 5 {
		t.Fatalf("app-07's entry: %+v", e.Tenant)
	}

	// One update: one decode, one patched key id.
	if _, err := ents.Update(ctx, "app-07", []byte(`{"id": "app-07", "identities": ["@x.example"], "plan": "basic", "limits": {"per_day": 9}}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyTo(ctx, &tb); err != nil {
		t.Fatal(err)
	}
	if tb.replaces != 1 || b.decoded.Load() != n+1 || fmt.Sprint(tb.patched) != "["+kids["app-07"]+"]" {
		t.Fatalf("after one update: %d replaces, %d decodes, patched %v", tb.replaces, b.decoded.Load(), tb.patched)
	}
	if e := tb.m[kids["app-07"]]; e.Tenant.Limits.PerDay != 9 || e.Tenant.Identities[0] != "@x.example" {
		t.Fatalf("app-07 after the update: %+v", e.Tenant)
	}

	// A delete: its token leaves the table (and is revoked).
	if err := ents.Delete(ctx, "app-03"); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyTo(ctx, &tb); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.m[kids["app-03"]]; ok || tb.replaces != 1 || len(tb.m) != n-1 {
		t.Fatalf("after a delete: token still there %v, %d replaces, %d entries", ok, tb.replaces, len(tb.m))
	}
	if _, err := ents.Get(ctx, "app-03"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}

	// A reload changing the plan: the tenants on it are decoded again
	// (not app-07: it has its own per_day, but it is on the plan too).
	before := b.decoded.Load()
	b.SetPolicy(filePolicy(t, 6, "  - {id: app-11, identities: ['@file.example']}\n"))
	if got := b.decoded.Load() - before; got != n-1 {
		t.Fatalf("plan change: %d decodes, want %d", got, n-1)
	}
	if err := b.ApplyTo(ctx, &tb); err != nil {
		t.Fatal(err)
	}
	if tb.replaces != 2 || tb.m[kids["app-01"]].Tenant.Limits.PerDay != 6 || tb.m[kids["app-07"]].Tenant.Limits.PerDay != 9 {
		t.Fatalf("after the reload: %d replaces, app-01 per_day %d, app-07 per_day %d", tb.replaces,
			tb.m[kids["app-01"]].Tenant.Limits.PerDay, tb.m[kids["app-07"]].Tenant.Limits.PerDay)
	}
	// app-11 is the file's now: listed as shadowed, served as the file's.
	if e := tb.m[kids["app-11"]]; e.Tenant == nil || e.Tenant.Identities[0] != "@file.example" {
		t.Fatalf("app-11's token after the file took the id: %+v", e.Tenant)
	}
	g, err := b.TenantEntries().Get(ctx, "app-11")
	if err != nil || g.Source != admin.SourceFile || g.Shadowed == nil || !strings.HasPrefix(g.Shadowed.Problem, `shadowed: policy.yml defines tenant "app-11"`) {
		t.Fatalf("get app-11: %+v %v", g, err)
	}
}
