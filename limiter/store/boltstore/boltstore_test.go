package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// TestConformance runs the suite with admissions written behind (the
// default) and committed before each answer (Always).
func TestConformance(t *testing.T) {
	for _, every := range []time.Duration{0, Always} {
		t.Run("sync="+syncName(every), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, c *storetest.Clock) store.Store {
				s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, KnownTTL: storetest.KnownTTL, Now: c.Now, SyncEvery: every})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

func syncName(every time.Duration) string {
	switch every {
	case Always:
		return "always"
	case 0:
		return DefaultSyncEvery.String()
	}
	return every.String()
}

// TestRestart closes and reopens the file: suppressions, first-contact
// memory, quota counters, breaker and freeze flags are all still there.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	c := storetest.NewClock(storetest.Start)
	path := filepath.Join(t.TempDir(), "store.db")
	open := func() *Store {
		s, err := Open(Options{Path: path, RecipientKey: testKey, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	l := gateway.Limits{PerHour: 3, FirstContactPerHour: 2}
	s := open()
	d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "a", Recipients: []string{"k1@x.example", "k2@x.example"}, Limits: l})
	if err != nil || !d.Admitted {
		t.Fatalf("admit: %+v %v", d, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddSuppression(ctx, store.Suppression{Tenant: "a", Address: "gone@x.example", Reason: store.HardBounce, Added: c.Now()}))
	must(s.SetBreaker(ctx, "b", store.Breaker{State: store.Open, OpenUntil: c.Now().Add(time.Minute)}))
	must(s.SetFrozen(ctx, "f", true))
	must(s.Close())
	if _, err := s.Admit(ctx, store.AdmitRequest{Tenant: "a", Recipients: []string{"k1@x.example"}, Limits: l}); err == nil {
		t.Fatal("closed store admitted")
	}

	s = open()
	defer s.Close()
	tests := []struct {
		name   string
		tenant string
		to     []string
		ok     bool
		reason store.Reason
	}{
		{"quota used before the restart still counts", "a", []string{"k1@x.example", "k2@x.example"}, false, store.ReasonPerHour},
		{"known recipients remembered", "a", []string{"k1@x.example"}, true, ""},
		{"suppression kept", "a", []string{"gone@x.example"}, false, store.ReasonSuppressed},
		{"breaker kept", "b", []string{"k1@x.example"}, false, store.ReasonBreakerOpen},
		{"freeze kept", "f", []string{"k1@x.example"}, false, store.ReasonFrozen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := s.Admit(ctx, store.AdmitRequest{Tenant: tc.tenant, Recipients: tc.to, Limits: l})
			if err != nil || d.Admitted != tc.ok || d.Reason != tc.reason {
				t.Fatalf("got %+v %v; want admitted %v reason %q", d, err, tc.ok, tc.reason)
			}
			if tc.ok && d.NewRecipients != 0 {
				t.Fatalf("known recipient counted as new after restart")
			}
		})
	}
}

func TestWindowConformance(t *testing.T) {
	storetest.RunWindow(t, func(t *testing.T, c *storetest.Clock) (store.Store, store.Store) {
		s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, KnownTTL: storetest.KnownTTL, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, s
	})
}
