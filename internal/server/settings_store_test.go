package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// TestStoreSyncSetting covers --store-sync: default, environment, flag,
// the exact refusals, and that the value reaches the embedded store.
func TestStoreSyncSetting(t *testing.T) {
	s, err := ParseSettings(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.StoreSync != boltstore.DefaultSyncEvery || s.storeSyncSet {
		t.Fatalf("default %v (set %v); want %v", s.StoreSync, s.storeSyncSet, boltstore.DefaultSyncEvery)
	}
	t.Setenv("SESGATE_STORE_SYNC", "always")
	if s, err = ParseSettings(nil, io.Discard); err != nil || s.StoreSync != boltstore.Always {
		t.Fatalf("env always: %v %v", s, err)
	}
	if s, err = ParseSettings([]string{"--store-sync", "250ms"}, io.Discard); err != nil || s.StoreSync != 250*time.Millisecond {
		t.Fatalf("flag 250ms over the env: %v %v", s, err)
	}

	for _, tc := range []struct{ v, want string }{
		{"0s", `invalid value "0s" for flag -store-sync: store sync "0s": want always or a duration from 1ms to 10s`},
		{"500us", `invalid value "500us" for flag -store-sync: store sync "500us": want always or a duration from 1ms to 10s`},
		{"11s", `invalid value "11s" for flag -store-sync: store sync "11s": want always or a duration from 1ms to 10s`},
		{"Always", `invalid value "Always" for flag -store-sync: store sync "Always": want always or a duration from 1ms to 10s`},
	} {
		if _, err := ParseSettings([]string{"--store-sync", tc.v}, io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("--store-sync %s: error %v; want %s", tc.v, err, tc.want)
		}
	}
	t.Setenv("SESGATE_STORE_SYNC", "-1s")
	var ue cli.UsageError
	if _, err := ParseSettings(nil, io.Discard); !errors.As(err, &ue) || ue.Msg != `SESGATE_STORE_SYNC: store sync "-1s": want always or a duration from 1ms to 10s` {
		t.Errorf("SESGATE_STORE_SYNC=-1s: error %v", err)
	}

	ctx, log := context.Background(), slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		ss   StoreSettings
		want string
	}{
		{StoreSettings{}, "(sync 100ms)"},
		{StoreSettings{StoreSync: boltstore.Always, storeSyncSet: true}, "(sync always)"},
		{StoreSettings{StoreSync: 2 * time.Second, storeSyncSet: true}, "(sync 2s)"},
	} {
		dir := t.TempDir()
		st, err := OpenStoreWith(ctx, dir, nil, log, tc.ss, redisstore.ViewOptions{Off: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := "embedded " + filepath.Join(dir, "store.db") + " " + tc.want; st.Desc != want {
			t.Errorf("store %q; want %q", st.Desc, want)
		}
		st.Close()
	}

	t.Setenv("SESGATE_REDIS_URL", "redis://127.0.0.1:1")
	_, err = OpenStoreWith(ctx, t.TempDir(), nil, log, StoreSettings{StoreSync: boltstore.Always, storeSyncSet: true}, redisstore.ViewOptions{Off: true})
	if want := "--store-sync (SESGATE_STORE_SYNC) tunes the embedded store; unset it with Redis"; err == nil || err.Error() != want {
		t.Fatalf("redis with --store-sync: error %v; want %s", err, want)
	}
}
