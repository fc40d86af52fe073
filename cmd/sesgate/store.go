package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	bolt "go.etcd.io/bbolt"

	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// openedStore is the configured store: Redis when SESGATE_REDIS_URL or
// store.redis is set, else the embedded store under the data directory.
type openedStore struct {
	store.Store
	redis *redisstore.Store // nil for the embedded store
	desc  string
}

// openStore opens the store of the policy (nil: no policy file).
func openStore(ctx context.Context, dataDir string, p *config.Policy, log *slog.Logger) (*openedStore, error) {
	var sc config.Store
	if p != nil {
		sc = p.Store
	}
	redisURL := os.Getenv("SESGATE_REDIS_URL")
	useRedis := redisURL != "" || sc.Redis != nil
	key, err := recipientKey(dataDir, sc.RecipientKeyFile, !useRedis)
	if err != nil {
		return nil, err
	}
	if !useRedis {
		path := filepath.Join(dataDir, "store.db")
		s, err := boltstore.Open(boltstore.Options{Path: path, RecipientKey: key, KnownTTL: sc.KnownRecipientTTL, Logger: log})
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%s is in use by another sesgate process (the embedded store is single-process; stop it first or use Redis)", path)
		}
		if err != nil {
			return nil, err
		}
		return &openedStore{Store: s, desc: "embedded " + path}, nil
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
	s, err := redisstore.Dial(dctx, co, redisstore.Options{RecipientKey: key, KnownTTL: sc.KnownRecipientTTL, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := s.Client().Ping(dctx).Err(); err != nil {
		// Not fatal: the degraded mode and the reconnects handle an outage.
		log.Warn("redis not reachable at start", "err", err.Error())
	}
	return &openedStore{Store: s, redis: s, desc: "redis"}, nil
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

// sesMaxSendRate reads the account's max send rate once from SES.
func sesMaxSendRate(ctx context.Context, c *sesv2.Client) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := c.GetAccount(ctx, &sesv2.GetAccountInput{})
	if err != nil {
		return 0, err
	}
	if out.SendQuota == nil || out.SendQuota.MaxSendRate <= 0 {
		return 0, errors.New("GetAccount returned no send quota")
	}
	return out.SendQuota.MaxSendRate, nil
}

// suppressCmd is `sesgate suppress add|remove|list` against the configured
// store.
func suppressCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: sesgate suppress add|remove|list [--tenant ID] [--reason R] [--expires DUR] [ADDRESS]"
	if len(args) == 0 {
		return usageError{Msg: use}
	}
	sub := args[0]
	fs := flag.NewFlagSet("suppress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory of the embedded store (env SESGATE_DATA_DIR)")
	cfg := fs.String("config", env("SESGATE_CONFIG", ""), "policy file naming the store (env SESGATE_CONFIG)")
	tenant := fs.String("tenant", "", "tenant id; empty for the global list")
	reason := fs.String("reason", string(store.Manual), "hard-bounce, complaint or manual (add)")
	expires := fs.Duration("expires", 0, "lifetime of the entry (add); 0 never expires")
	limit := fs.Int("limit", 1000, "most entries to list (list)")
	// Flags may come before or after the address.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case (sub == "add" || sub == "remove") && len(pos) != 1,
		sub == "list" && (len(pos) != 0 || *limit <= 0),
		sub != "add" && sub != "remove" && sub != "list":
		return usageError{Msg: use}
	}
	var p *config.Policy
	if *cfg != "" {
		var err error
		if p, err = config.Load(*cfg); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	st, err := openStore(ctx, *dataDir, p, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer st.Close()
	list := "global list"
	if *tenant != "" {
		list = "tenant " + *tenant
	}
	switch sub {
	case "add", "remove":
		addr := pos[0]
		if sub == "remove" {
			found, err := st.RemoveSuppression(ctx, *tenant, addr)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("%s is not on the %s", addr, list)
			}
			fmt.Fprintf(stdout, "removed %s from the %s\n", addr, list)
			return nil
		}
		r, err := store.ParseSuppressionReason(*reason)
		if err != nil {
			return usageError{Msg: err.Error()}
		}
		sp := store.Suppression{Tenant: *tenant, Address: addr, Reason: r, Added: time.Now().UTC()}
		if *expires > 0 {
			sp.Expires = sp.Added.Add(*expires)
		}
		if err := st.AddSuppression(ctx, sp); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "suppressed %s on the %s (%s)\n", strings.ToLower(addr), list, r)
		return nil
	case "list":
		entries, err := st.ListSuppressions(ctx, *tenant, *limit)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			fmt.Fprintf(stdout, "the %s is empty\n", list)
		}
		for _, e := range entries {
			exp := "never"
			if !e.Expires.IsZero() {
				exp = e.Expires.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s  %s  added=%s  expires=%s\n", e.Address, e.Reason, e.Added.Format(time.RFC3339), exp)
		}
		return nil
	}
	return usageError{Msg: use}
}
