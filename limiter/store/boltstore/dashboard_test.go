package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestDashboardConformance(t *testing.T) {
	storetest.RunDashboard(t, func(t *testing.T, c *storetest.Clock) store.Store {
		s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, KnownTTL: storetest.KnownTTL, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
