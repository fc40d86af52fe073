package server

import (
	"flag"
	"fmt"
	"time"

	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

// StoreSettings tune the embedded store (the rest of the store's settings
// are under store: in the policy file).
type StoreSettings struct {
	// StoreSync is how often the embedded store commits admissions
	// (boltstore.Options.SyncEvery): a crash forgets at most those answered
	// within one StoreSync; boltstore.Always commits each before answering.
	// 0: the default.
	StoreSync time.Duration
	// storeSyncSet: given by flag or environment, so refused with Redis
	// (where it would do nothing).
	storeSyncSet bool
}

// storeFlags adds --store-sync.
func storeFlags(fs *flag.FlagSet, s *StoreSettings) error {
	s.StoreSync = boltstore.DefaultSyncEvery
	if v := cli.Env("SESGATE_STORE_SYNC", ""); v != "" {
		d, err := ParseStoreSync(v)
		if err != nil {
			return cli.UsageError{Msg: "SESGATE_STORE_SYNC: " + err.Error()}
		}
		s.StoreSync, s.storeSyncSet = d, true
	}
	fs.Func("store-sync", "embedded store: how often admissions are committed to the file, 1ms to 10s (a crash forgets at most those answered within it), or always (commit before each answer); default 100ms (env SESGATE_STORE_SYNC)",
		func(v string) error {
			d, err := ParseStoreSync(v)
			if err != nil {
				return err
			}
			s.StoreSync, s.storeSyncSet = d, true
			return nil
		})
	return nil
}

// ParseStoreSync reads a --store-sync value: "always" or a duration from
// 1ms to boltstore.MaxSyncEvery.
func ParseStoreSync(v string) (time.Duration, error) {
	if v == "always" {
		return boltstore.Always, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Millisecond || d > boltstore.MaxSyncEvery {
		return 0, fmt.Errorf("store sync %q: want always or a duration from 1ms to %v", v, boltstore.MaxSyncEvery)
	}
	return d, nil
}
