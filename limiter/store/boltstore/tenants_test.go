package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/sesgate/sesgate/limiter/store/storetest"
)

func TestTenants(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.RunTenants(t, s)
	storetest.RunTokenLog(t, s)
}
