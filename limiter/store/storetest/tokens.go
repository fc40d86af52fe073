package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// OpsStore is a store with the operator state.
type OpsStore interface {
	store.Store
	store.Ops
}

// RunOps checks store.Ops on s, which must be empty (no tokens, audit,
// freeze infos or generation). The steps run in order on the one store.
func RunOps(t *testing.T, s OpsStore) {
	ctx := context.Background()
	at := Start
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("tokens", func(t *testing.T) {
		a := store.TokenRecord{KeyID: "aaaaaaaaaa", Tenant: "billing", SHA256: "00ff", Created: at}
		must(t, s.CreateToken(ctx, a))
		if err := s.CreateToken(ctx, a); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		must(t, s.CreateToken(ctx, store.TokenRecord{KeyID: "bbbbbbbbbb", Tenant: "other", SHA256: "11ee", Created: at}))
		must(t, s.RevokeToken(ctx, "aaaaaaaaaa", at.Add(time.Minute)))
		must(t, s.RevokeToken(ctx, "aaaaaaaaaa", at.Add(time.Hour))) // the first revocation stays
		must(t, s.ExpireToken(ctx, "bbbbbbbbbb", at.Add(2*time.Hour)))
		must(t, s.RevokeToken(ctx, "cccccccccc", at)) // a policy token: a bare revocation
		must(t, s.TouchTokens(ctx, map[string]time.Time{"bbbbbbbbbb": at.Add(3 * time.Minute)}))
		got, err := s.ListTokens(ctx)
		must(t, err)
		slices.SortFunc(got, func(x, y store.TokenRecord) int { return cmpString(x.KeyID, y.KeyID) })
		want := []store.TokenRecord{
			{KeyID: "aaaaaaaaaa", Tenant: "billing", SHA256: "00ff", Created: at, Revoked: at.Add(time.Minute)},
			{KeyID: "bbbbbbbbbb", Tenant: "other", SHA256: "11ee", Created: at, Expires: at.Add(2 * time.Hour), LastUsed: at.Add(3 * time.Minute)},
			{KeyID: "cccccccccc", Revoked: at},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("tokens:\n got %v\nwant %v", got, want)
		}
	})
	t.Run("audit capped", func(t *testing.T) {
		for i := range 7 {
			must(t, s.AddAudit(ctx, []byte(fmt.Sprintf(`{"n":%d}`, i)), 5))
		}
		got, err := s.ListAudit(ctx, 10)
		must(t, err)
		var ss []string
		for _, g := range got {
			ss = append(ss, string(g))
		}
		want := []string{`{"n":6}`, `{"n":5}`, `{"n":4}`, `{"n":3}`, `{"n":2}`}
		if !slices.Equal(ss, want) {
			t.Fatalf("audit %v, want %v", ss, want)
		}
		got, err = s.ListAudit(ctx, 2)
		must(t, err)
		if len(got) != 2 || string(got[0]) != `{"n":6}` {
			t.Fatalf("audit limit 2: %q", got)
		}
	})
	t.Run("freeze infos", func(t *testing.T) {
		must(t, s.SetFreezeInfo(ctx, "billing", &store.FreezeInfo{Reason: "leak | oops", By: "kid", At: at}))
		must(t, s.SetFreezeInfo(ctx, "", &store.FreezeInfo{Reason: "all", By: "kid2", At: at}))
		must(t, s.SetFreezeInfo(ctx, "other", &store.FreezeInfo{Reason: "x", By: "k", At: at}))
		must(t, s.SetFreezeInfo(ctx, "other", nil))
		got, err := s.FreezeInfos(ctx)
		must(t, err)
		want := map[string]store.FreezeInfo{"billing": {Reason: "leak | oops", By: "kid", At: at}, "": {Reason: "all", By: "kid2", At: at}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("freeze infos %v, want %v", got, want)
		}
	})
	t.Run("generation", func(t *testing.T) {
		g0, err := s.Generation(ctx)
		must(t, err)
		must(t, s.Bump(ctx))
		must(t, s.Bump(ctx))
		g2, err := s.Generation(ctx)
		must(t, err)
		if g0 != 0 || g2 != 2 {
			t.Fatalf("generations %d then %d, want 0 then 2", g0, g2)
		}
	})
	t.Run("sent minutes", func(t *testing.T) {
		// One message admitted now: the minute of now counts one recipient.
		d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "sm", Recipients: []string{"a@x.org"}})
		must(t, err)
		if !d.Admitted {
			t.Fatalf("not admitted: %+v", d)
		}
		from := at.Add(-2 * time.Minute)
		first, got, err := s.SentMinutes(ctx, "sm", from, at.Add(time.Minute))
		must(t, err)
		if first != from.Unix()/60 || !slices.Equal(got, []int64{0, 0, 1, 0}) {
			t.Fatalf("sent minutes from %d: %v, want [0 0 1 0] from %d", first, got, from.Unix()/60)
		}
	})
	t.Run("suppression pages", func(t *testing.T) {
		for _, a := range []string{"b1@x.org", "a2@x.org", "a1@x.org", "a3@y.org", "c@x.org"} {
			must(t, s.AddSuppression(ctx, store.Suppression{Tenant: "pg", Address: a, Reason: store.Manual, Added: at}))
		}
		must(t, s.AddSuppression(ctx, store.Suppression{Tenant: "", Address: "a0@x.org", Reason: store.Manual, Added: at}))
		tests := []struct {
			name, prefix, after string
			limit               int
			want                []string
		}{
			{"first page", "", "", 2, []string{"a1@x.org", "a2@x.org"}},
			{"next page", "", "a2@x.org", 2, []string{"a3@y.org", "b1@x.org"}},
			{"last page", "", "b1@x.org", 2, []string{"c@x.org"}},
			{"prefix", "A", "", 10, []string{"a1@x.org", "a2@x.org", "a3@y.org"}},
			{"prefix after", "a", "a1@x.org", 10, []string{"a2@x.org", "a3@y.org"}},
			{"glob characters are literal", "a*", "", 10, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.PageSuppressions(ctx, "pg", tc.prefix, tc.after, tc.limit)
				must(t, err)
				var addrs []string
				for _, g := range got {
					addrs = append(addrs, g.Address)
				}
				if !slices.Equal(addrs, tc.want) {
					t.Fatalf("got %v, want %v", addrs, tc.want)
				}
			})
		}
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
