package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// Store is the configured store: Redis when SESGATE_REDIS_URL or
// store.redis is set, else the embedded store under the data directory.
type Store struct {
	store.Store
	Redis *redisstore.Store // nil for the embedded store
	Desc  string            // for the log: "redis" or "embedded PATH (sync 100ms)"
}

// OpenStore opens the store of the policy (nil: no policy file) with the
// environment's Redis URL, password and recipient key, for a one-shot
// command (`sesgate suppress`): a Redis store without its in-process view,
// which only a serving gateway needs (it would scan every list at start).
func OpenStore(ctx context.Context, dataDir string, p *config.Policy, log *slog.Logger) (*Store, error) {
	return OpenStoreWith(ctx, dataDir, p, log, StoreSettings{}, redisstore.ViewOptions{Off: true})
}

// OpenStoreWith is OpenStore with the process's store settings (a
// --store-sync given with Redis is refused: it tunes the embedded store)
// and the Redis store's view as vo says.
func OpenStoreWith(ctx context.Context, dataDir string, p *config.Policy, log *slog.Logger, ss StoreSettings, vo redisstore.ViewOptions) (*Store, error) {
	var sc config.Store
	if p != nil {
		sc = p.Store
	}
	redisURL := os.Getenv("SESGATE_REDIS_URL")
	useRedis := redisURL != "" || sc.Redis != nil
	if useRedis && ss.storeSyncSet {
		return nil, errors.New("--store-sync (SESGATE_STORE_SYNC) tunes the embedded store; unset it with Redis")
	}
	key, err := recipientKey(dataDir, sc.RecipientKeyFile, !useRedis)
	if err != nil {
		return nil, err
	}
	if !useRedis {
		path := filepath.Join(dataDir, "store.db")
		s, err := boltstore.Open(boltstore.Options{Path: path, RecipientKey: key, KnownTTL: sc.KnownRecipientTTL, Logger: log, SyncEvery: ss.StoreSync})
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%s is in use by another sesgate process (the embedded store is single-process; stop it first or use Redis)", path)
		}
		if err != nil {
			return nil, err
		}
		return &Store{Store: s, Desc: fmt.Sprintf("embedded %s (sync %s)", path, s.SyncName())}, nil
	}
	co := redisstore.ConnOptions{URL: redisURL}
	if r := sc.Redis; r != nil {
		co.DialTimeout, co.ReadTimeout, co.WriteTimeout, co.PoolSize = r.DialTimeout, r.ReadTimeout, r.WriteTimeout, r.PoolSize
		if redisURL == "" {
			co.URL, co.Addrs, co.MasterName, co.Username = r.URL, r.Addrs, r.MasterName, r.Username
		}
	}
	co.Password = os.Getenv("SESGATE_REDIS_PASSWORD")
	if co.Password != "" && co.URL != "" {
		co.URL, err = urlWithPassword(co.URL, co.Password)
		if err != nil {
			return nil, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := redisstore.Dial(dctx, co, redisstore.Options{RecipientKey: key, KnownTTL: sc.KnownRecipientTTL, Logger: log, View: vo})
	if err != nil {
		return nil, err
	}
	if err := s.Client().Ping(dctx).Err(); err != nil {
		// Not fatal: the degraded mode and the reconnects handle an outage.
		log.Warn("redis not reachable at start", "err", err.Error())
	}
	return &Store{Store: s, Redis: s, Desc: "redis"}, nil
}

func urlWithPassword(raw, pass string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", errors.New("SESGATE_REDIS_URL: not a URL")
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, _ := strings.Cut(rest[:at], ":")
		return scheme + "://" + user + ":" + pass + "@" + rest[at+1:], nil
	}
	return scheme + "://:" + pass + "@" + rest, nil
}

// recipientKey returns the HMAC key of the first-contact memory: env
// SESGATE_RECIPIENT_KEY, the policy's key file, or (embedded store only) a
// random key kept in <data-dir>/recipient.key.
func recipientKey(dataDir, file string, mayCreate bool) ([]byte, error) {
	if v := os.Getenv("SESGATE_RECIPIENT_KEY"); v != "" {
		return []byte(v), nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("store.recipient_key_file: %w", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !mayCreate {
		return nil, errors.New("the Redis store needs SESGATE_RECIPIENT_KEY or store.recipient_key_file, the same on every replica")
	}
	path := filepath.Join(dataDir, "recipient.key")
	b, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	k := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("recipient key: %w", err)
	}
	return []byte(k), nil
}
