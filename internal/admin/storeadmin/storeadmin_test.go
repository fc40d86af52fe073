package storeadmin

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testPolicy() (*Policy, auth.Minted) {
	billing, other := &gateway.Tenant{ID: "billing"}, &gateway.Tenant{ID: "other"}
	m := auth.NewToken("billing")
	return &Policy{
		Tenants: []*gateway.Tenant{other, billing},
		Entries: []auth.Entry{{Record: m.Record, Tenant: billing}},
	}, m
}

// keyIDs returns the key ids of entries, sorted.
func keyIDs(es []auth.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Record.KeyID)
	}
	slices.Sort(out)
	return out
}

// TestWatchPolls: a change made through one Backend reaches another
// Backend on the same store through the generation poll alone (the
// embedded store publishes nothing), and the token table is right.
func TestWatchPolls(t *testing.T) {
	st := openStore(t)
	p, policyTok := testPolicy()
	a, _ := New(Options{Store: st}, p)
	b, _ := New(Options{Store: st, PollEvery: 50 * time.Millisecond}, p)

	var mu sync.Mutex
	var seen []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Watch(ctx, func(ctx context.Context) error {
		es, err := b.Entries(ctx)
		mu.Lock()
		seen = keyIDs(es)
		mu.Unlock()
		return err
	})
	wait := func(what string, want []string) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			mu.Lock()
			got := slices.Clone(seen)
			mu.Unlock()
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: table %v, want %v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("at start", []string{policyTok.Record.KeyID})

	m := auth.NewToken("billing")
	if err := a.Tokens().Create(ctx, m.Record, time.Now()); err != nil {
		t.Fatal(err)
	}
	wait("after a mint elsewhere", keyIDs([]auth.Entry{{Record: m.Record}, {Record: policyTok.Record}}))

	if err := a.Tokens().Revoke(ctx, policyTok.Record.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	wait("after revoking the policy token", []string{m.Record.KeyID})

	tests := []struct {
		name string
		err  error
		call func() error
	}{
		{"mint for an unknown tenant", admin.ErrNotFound, func() error {
			return a.Tokens().Create(ctx, auth.NewToken("nobody").Record, time.Now())
		}},
		{"mint a taken key id", admin.ErrConflict, func() error { return a.Tokens().Create(ctx, m.Record, time.Now()) }},
		{"revoke an unknown key id", admin.ErrNotFound, func() error { return a.Tokens().Revoke(ctx, "zzzzzzzzzz", time.Now()) }},
		{"freeze an unknown tenant", admin.ErrNotFound, func() error {
			return a.Tenants().SetFrozen(ctx, "nobody", admin.Freeze{Frozen: true})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
		})
	}
}

// TestRotationDeadline: Expire puts the deadline on the entry.
func TestRotationDeadline(t *testing.T) {
	st := openStore(t)
	p, tok := testPolicy()
	b, _ := New(Options{Store: st}, p)
	ctx := context.Background()
	dl := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := b.Tokens().Expire(ctx, tok.Record.KeyID, dl); err != nil {
		t.Fatal(err)
	}
	es, err := b.Entries(ctx)
	if err != nil || len(es) != 1 || !es[0].Expires.Equal(dl) {
		t.Fatalf("entries %+v, %v", es, err)
	}
	list, _ := b.Tokens().List(ctx)
	if len(list) != 1 || !list[0].ExpiresAt.Equal(dl) || list[0].Tenant != "billing" {
		t.Fatalf("list %+v", list)
	}
}

// TestFreezeAndSuppressionPages: a freeze is read back with its reason;
// suppression pages walk every list in order.
func TestFreezeAndSuppressionPages(t *testing.T) {
	st := openStore(t)
	p, _ := testPolicy()
	b, _ := New(Options{Store: st}, p)
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := b.Tenants().SetFrozen(ctx, "billing", admin.Freeze{Frozen: true, Reason: "leak", By: "kid", At: at}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Tenants().Status(ctx, "billing")
	if err != nil || s.Freeze != (admin.Freeze{Frozen: true, Reason: "leak", By: "kid", At: at}) {
		t.Fatalf("status %+v, %v", s.Freeze, err)
	}
	if err := b.Tenants().SetFrozen(ctx, "billing", admin.Freeze{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.Tenants().Status(ctx, "billing"); s.Freeze.Frozen {
		t.Fatal("still frozen after the unfreeze")
	}

	var add []admin.Suppression
	for _, x := range []struct{ tenant, addr string }{{"", "g@x.org"}, {"billing", "b1@x.org"}, {"billing", "b2@x.org"}, {"other", "o@x.org"}} {
		add = append(add, admin.Suppression{Tenant: x.tenant, Address: x.addr, Reason: admin.ReasonManual, Added: at})
	}
	if err := b.Suppressions().Add(ctx, add); err != nil {
		t.Fatal(err)
	}
	var got []string
	q := admin.SuppressionQuery{Tenant: admin.AllLists, Limit: 2}
	for range 5 {
		page, next, err := b.Suppressions().List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			got = append(got, s.Tenant+"/"+s.Address)
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	want := []string{"/g@x.org", "billing/b1@x.org", "billing/b2@x.org", "other/o@x.org"}
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
}

// TestSeries: 60 points, oldest first, the current minute last with what
// admission counted.
func TestSeries(t *testing.T) {
	st := openStore(t)
	p, _ := testPolicy()
	b, _ := New(Options{Store: st}, p)
	ctx := context.Background()
	if d, err := st.Admit(ctx, store.AdmitRequest{Tenant: "billing", Recipients: []string{"a@x.org", "b@x.org"}}); err != nil || !d.Admitted {
		t.Fatalf("admit: %+v %v", d, err)
	}
	pts, err := b.Tenants().Series(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	var total int64
	for _, p := range pts {
		total += p.Sent
	}
	// The admission's minute is the last (or, across a minute boundary,
	// the one before).
	if len(pts) != 60 || !pts[59].At.Equal(now) || !pts[0].At.Equal(now.Add(-59*time.Minute)) || total != 2 || pts[59].Sent+pts[58].Sent != 2 {
		t.Fatalf("series: %d points, first %v, last %+v", len(pts), pts[0].At, pts[59])
	}
	if _, err := b.Tenants().Series(ctx, "nobody"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
}

// minuteBreakers is a breakers backend with per-minute counts, as guard.Guard.
type minuteBreakers struct {
	NoBreakers
	counts map[int64]breaker.Bucket
}

func (m minuteBreakers) MinuteCounts(context.Context, string) (map[int64]breaker.Bucket, error) {
	return m.counts, nil
}

// TestSeriesBounces: bounces and complaints land in the point of the
// minute the mail was sent; minutes outside the hour are left out.
func TestSeriesBounces(t *testing.T) {
	st := openStore(t)
	p, _ := testPolicy()
	now := time.Now().UTC().Truncate(time.Minute)
	m := now.Unix() / 60
	brk := minuteBreakers{counts: map[int64]breaker.Bucket{
		m - 2:  {At: m - 2, Bounces: 3, Complaints: 1},
		m - 59: {At: m - 59, Bounces: 1},
		m - 90: {At: m - 90, Bounces: 7},
	}}
	b, _ := New(Options{Store: st, Breakers: brk, Now: func() time.Time { return now.Add(30 * time.Second) }}, p)
	pts, err := b.Tenants().Series(context.Background(), "billing")
	if err != nil {
		t.Fatal(err)
	}
	if pts[57].Bounces != 3 || pts[57].Complaints != 1 || pts[0].Bounces != 1 {
		t.Fatalf("points: [0]=%+v [57]=%+v", pts[0], pts[57])
	}
	var total int64
	for _, p := range pts {
		total += p.Bounces
	}
	if total != 4 {
		t.Fatalf("%d bounces in the hour, want 4 (the one 90 minutes ago left out)", total)
	}
}
