package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// RunTenants checks store.TenantStore on s, which must hold no tenants.
// The steps run in order on the one store.
func RunTenants(t *testing.T, s store.TenantStore) {
	ctx := context.Background()
	at := Start
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := func(recs []store.TenantRecord) string {
		out := ""
		for _, r := range recs {
			out += fmt.Sprintf("%s@%d", r.ID, r.Version)
			if r.Deleted {
				out += "(deleted)"
			}
			out += " "
		}
		return out
	}
	spec := func(id string) []byte { return []byte(`{"id":"` + id + `","identities":["*"]}`) }
	var v0 int64 // the version before the test's changes
	t.Run("create and get", func(t *testing.T) {
		for i, id := range []string{"b-1", "a-1", "a-2", "c"} {
			r, err := s.PutTenant(ctx, store.TenantRecord{ID: id, Spec: spec(id), Created: at, Updated: at}, true)
			must(t, err)
			if i == 0 {
				v0 = r.Version - 1
			}
			if r.Version != v0+int64(i)+1 || !r.Created.Equal(at) {
				t.Fatalf("create %s: %+v, want version %d", id, r, v0+int64(i)+1)
			}
		}
		_, err := s.PutTenant(ctx, store.TenantRecord{ID: "a-1", Spec: spec("a-1"), Created: at, Updated: at}, true)
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		r, err := s.GetTenant(ctx, "a-1")
		must(t, err)
		if string(r.Spec) != string(spec("a-1")) || r.Version != v0+2 || !r.Created.Equal(at) || !r.Updated.Equal(at) || r.Deleted {
			t.Fatalf("get: %+v", r)
		}
		if _, err := s.GetTenant(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get unknown: %v, want ErrNotFound", err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, r := range []store.TenantRecord{{ID: "Bad Id", Spec: spec("x")}, {ID: "x"}, {ID: "x", Spec: make([]byte, store.MaxTenantSpec+1)}} {
			if _, err := s.PutTenant(ctx, r, true); err == nil {
				t.Errorf("PutTenant(%q, %d bytes) passed", r.ID, len(r.Spec))
			}
		}
	})
	t.Run("update keeps created", func(t *testing.T) {
		later := at.Add(time.Hour)
		r, err := s.PutTenant(ctx, store.TenantRecord{ID: "a-1", Spec: []byte(`{"v":2}`), Created: later, Updated: later}, false)
		must(t, err)
		if r.Version != v0+5 || !r.Created.Equal(at) || !r.Updated.Equal(later) || string(r.Spec) != `{"v":2}` {
			t.Fatalf("update: %+v", r)
		}
		if _, err := s.PutTenant(ctx, store.TenantRecord{ID: "nobody", Spec: spec("x"), Created: at, Updated: at}, false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown: %v, want ErrNotFound", err)
		}
	})
	t.Run("delete leaves a tombstone", func(t *testing.T) {
		r, err := s.DeleteTenant(ctx, "b-1", at.Add(2*time.Hour))
		must(t, err)
		if r.Version != v0+6 || !r.Deleted {
			t.Fatalf("delete: %+v", r)
		}
		if _, err := s.DeleteTenant(ctx, "b-1", at); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := s.GetTenant(ctx, "b-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get deleted: %v, want ErrNotFound", err)
		}
		if _, err := s.PutTenant(ctx, store.TenantRecord{ID: "b-1", Spec: spec("b-1"), Created: at, Updated: at}, false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update deleted: %v, want ErrNotFound", err)
		}
	})
	t.Run("changed since", func(t *testing.T) {
		got, err := s.ChangedTenants(ctx, v0, 100)
		must(t, err)
		want := fmt.Sprintf("a-2@%d c@%d a-1@%d b-1@%d(deleted) ", v0+3, v0+4, v0+5, v0+6)
		if ids(got) != want {
			t.Fatalf("changed since %d: %s, want %s", v0, ids(got), want)
		}
		got, err = s.ChangedTenants(ctx, v0+4, 1)
		must(t, err)
		if ids(got) != fmt.Sprintf("a-1@%d ", v0+5) {
			t.Fatalf("changed since %d, limit 1: %s", v0+4, ids(got))
		}
		got, err = s.ChangedTenants(ctx, v0+6, 10)
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("changed since the last: %s", ids(got))
		}
		// Re-created after a delete: a new version, live again.
		_, err = s.PutTenant(ctx, store.TenantRecord{ID: "b-1", Spec: spec("b-1"), Created: at, Updated: at}, true)
		must(t, err)
		got, err = s.ChangedTenants(ctx, v0+6, 10)
		must(t, err)
		if ids(got) != fmt.Sprintf("b-1@%d ", v0+7) {
			t.Fatalf("re-created: %s", ids(got))
		}
	})
	t.Run("page and search", func(t *testing.T) {
		page := func(prefix, after string, limit int) string {
			t.Helper()
			got, err := s.PageTenants(ctx, prefix, after, limit)
			must(t, err)
			out := ""
			for _, r := range got {
				out += r.ID + " "
			}
			return out
		}
		must(t, func() error { _, err := s.DeleteTenant(ctx, "c", at); return err }())
		for _, tc := range []struct {
			prefix, after string
			limit         int
			want          string
		}{
			{"", "", 10, "a-1 a-2 b-1 "},
			{"", "", 2, "a-1 a-2 "},
			{"", "a-2", 2, "b-1 "},
			{"a-", "", 10, "a-1 a-2 "},
			{"a-", "a-1", 10, "a-2 "},
			{"a-", "0", 10, "a-1 a-2 "},
			{"b", "", 10, "b-1 "},
			{"c", "", 10, ""},
			{"zz", "", 10, ""},
		} {
			if got := page(tc.prefix, tc.after, tc.limit); got != tc.want {
				t.Errorf("page(%q, %q, %d) = %q, want %q", tc.prefix, tc.after, tc.limit, got, tc.want)
			}
		}
	})
}

// TokenLogStore is a store with the token change log.
type TokenLogStore interface {
	store.Ops
	store.TokenLog
}

// RunTokenLog checks store.TokenLog on s: the token writes of Ops stamp
// their key id with the next version, each key id is listed once at its
// last change, a refused write changes nothing.
func RunTokenLog(t *testing.T, s TokenLogStore) {
	ctx := context.Background()
	at := Start
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	v0, err := s.TokenVersion(ctx)
	must(err)
	must(s.CreateToken(ctx, store.TokenRecord{KeyID: "logaaaaaaa", Tenant: "t1", SHA256: "00ff", Created: at}))
	must(s.CreateToken(ctx, store.TokenRecord{KeyID: "logbbbbbbb", Tenant: "t2", SHA256: "11ee", Created: at}))
	must(s.RevokeToken(ctx, "logaaaaaaa", at.Add(time.Minute)))
	must(s.ExpireToken(ctx, "logbbbbbbb", at.Add(time.Hour)))
	must(s.TouchTokens(ctx, map[string]time.Time{"logbbbbbbb": at.Add(2 * time.Minute)}))
	if err := s.CreateToken(ctx, store.TokenRecord{KeyID: "logaaaaaaa", Tenant: "x", SHA256: "22dd", Created: at}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if v, err := s.TokenVersion(ctx); err != nil || v != v0+4 {
		t.Fatalf("version %d, %v; want %d", v, err, v0+4)
	}
	got, err := s.ChangedTokens(ctx, v0, 10)
	must(err)
	want := []store.TokenChange{
		{Version: v0 + 3, TokenRecord: store.TokenRecord{KeyID: "logaaaaaaa", Tenant: "t1", SHA256: "00ff", Created: at, Revoked: at.Add(time.Minute)}},
		{Version: v0 + 4, TokenRecord: store.TokenRecord{KeyID: "logbbbbbbb", Tenant: "t2", SHA256: "11ee", Created: at, Expires: at.Add(time.Hour)}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changed since %d:\n got %v\nwant %v", v0, got, want)
	}
	if got, err := s.ChangedTokens(ctx, v0, 1); err != nil || len(got) != 1 || got[0].KeyID != "logaaaaaaa" {
		t.Fatalf("limit 1: %v %v", got, err)
	}
	if got, err := s.ChangedTokens(ctx, v0+3, 10); err != nil || len(got) != 1 || got[0].KeyID != "logbbbbbbb" {
		t.Fatalf("since %d: %v %v", v0+3, got, err)
	}
}
