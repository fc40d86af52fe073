package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestOps(t *testing.T) {
	c := storetest.NewClock(storetest.Start)
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.RunOps(t, s)
}
