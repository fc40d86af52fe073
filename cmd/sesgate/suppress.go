package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/server"
	"github.com/sesgate/sesgate/limiter/store"
)

// suppress returns `sesgate suppress add|remove|list`: the suppression
// lists of the configured store.
func suppress(sub string) cli.Run {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		const use = "usage: sesgate suppress add|remove|list [--tenant ID] [--reason R] [--expires DUR] [ADDRESS]"
		fs := flag.NewFlagSet("suppress "+sub, flag.ContinueOnError)
		fs.SetOutput(stderr)
		dataDir := fs.String("data-dir", cli.Env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory of the embedded store (env SESGATE_DATA_DIR)")
		cfg := fs.String("config", cli.Env("SESGATE_CONFIG", ""), "policy file naming the store (env SESGATE_CONFIG)")
		tenant := fs.String("tenant", "", "tenant id; empty for the global list")
		reason := fs.String("reason", string(store.Manual), "hard-bounce, complaint or manual (add)")
		expires := fs.Duration("expires", 0, "lifetime of the entry (add); 0 never expires")
		limit := fs.Int("limit", 1000, "most entries to list (list)")
		// Flags may come before or after the address.
		var pos []string
		rest := args
		for {
			if err := fs.Parse(rest); err != nil {
				return err
			}
			if fs.NArg() == 0 {
				break
			}
			pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
		}
		if sub == "list" && (len(pos) != 0 || *limit <= 0) || sub != "list" && len(pos) != 1 {
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
		st, err := server.OpenStore(ctx, *dataDir, p, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return err
		}
		defer st.Close()
		list := "global list"
		if *tenant != "" {
			list = "tenant " + *tenant
		}
		switch sub {
		case "remove":
			found, err := st.RemoveSuppression(ctx, *tenant, pos[0])
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("%s is not on the %s", pos[0], list)
			}
			fmt.Fprintf(stdout, "removed %s from the %s\n", pos[0], list)
			return nil
		case "add":
			r, err := store.ParseSuppressionReason(*reason)
			if err != nil {
				return usageError{Msg: err.Error()}
			}
			sp := store.Suppression{Tenant: *tenant, Address: pos[0], Reason: r, Added: time.Now().UTC()}
			if *expires > 0 {
				sp.Expires = sp.Added.Add(*expires)
			}
			if err := st.AddSuppression(ctx, sp); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "suppressed %s on the %s (%s)\n", strings.ToLower(pos[0]), list, r)
			return nil
		}
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
}
