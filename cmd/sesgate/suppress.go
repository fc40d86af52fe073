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

// suppressFlags are the flags of `sesgate suppress add|remove|list`.
type suppressFlags struct {
	dataDir, config string
	tenant, reason  string
	expires         time.Duration
	limit           int
}

// suppress returns `sesgate suppress add|remove|list`: the suppression
// lists of the configured store.
func suppress(sub string) cli.Run {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		const use = "usage: sesgate suppress add|remove|list [--tenant ID] [--reason R] [--expires DUR] [ADDRESS]"
		fs := flag.NewFlagSet("suppress "+sub, flag.ContinueOnError)
		fs.SetOutput(stderr)
		var f suppressFlags
		fs.StringVar(&f.dataDir, "data-dir", cli.Env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory of the embedded store (env SESGATE_DATA_DIR)")
		fs.StringVar(&f.config, "config", cli.Env("SESGATE_CONFIG", ""), "policy file naming the store (env SESGATE_CONFIG)")
		fs.StringVar(&f.tenant, "tenant", "", "tenant id; empty for the global list")
		fs.StringVar(&f.reason, "reason", string(store.Manual), "hard-bounce, complaint or manual (add)")
		fs.DurationVar(&f.expires, "expires", 0, "lifetime of the entry (add); 0 never expires")
		fs.IntVar(&f.limit, "limit", 1000, "most entries to list (list)")
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
		if sub == "list" && (len(pos) != 0 || f.limit <= 0) || sub != "list" && len(pos) != 1 {
			return usageError{Msg: use}
		}
		var addr string // none for list
		if len(pos) == 1 {
			addr = pos[0]
		}
		return editSuppressions(ctx, sub, f, addr, stdout, stderr)
	}
}

// editSuppressions opens the store and adds, removes or lists.
func editSuppressions(ctx context.Context, sub string, f suppressFlags, addr string, stdout, stderr io.Writer) error {
	var p *config.Policy
	if f.config != "" {
		var err error
		if p, err = config.Load(f.config); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return err
	}
	st, err := server.OpenStore(ctx, f.dataDir, p, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer st.Close()
	list := "global list"
	if f.tenant != "" {
		list = "tenant " + f.tenant
	}
	switch sub {
	case "remove":
		found, err := st.RemoveSuppression(ctx, f.tenant, addr)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%s is not on the %s", addr, list)
		}
		fmt.Fprintf(stdout, "removed %s from the %s\n", addr, list)
		return nil
	case "add":
		r, err := store.ParseSuppressionReason(f.reason)
		if err != nil {
			return usageError{Msg: err.Error()}
		}
		sp := store.Suppression{Tenant: f.tenant, Address: addr, Reason: r, Added: time.Now().UTC()}
		if f.expires > 0 {
			sp.Expires = sp.Added.Add(f.expires)
		}
		if err := st.AddSuppression(ctx, sp); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "suppressed %s on the %s (%s)\n", strings.ToLower(addr), list, r)
		return nil
	}
	entries, err := st.ListSuppressions(ctx, f.tenant, f.limit)
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
