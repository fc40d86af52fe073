// Command sesgate is the SES sending gateway. `sesgate help` lists its
// commands; `sesgate serve -h` the settings of the gateway.
//
// Process settings come from flags, each with an environment variable
// (flag --data-dir, env SESGATE_DATA_DIR); the flag wins.
//
// As a Kubernetes sidecar, run `sesgate serve` with SESGATE_SMTP_ADDR and
// SESGATE_HTTP_ADDR on 127.0.0.1 (the default) so only containers of the pod
// reach it; give the SES credentials (IRSA or pod identity) to the sesgate
// container's service account only. Plain SMTP AUTH is allowed on loopback
// listeners only, unless SESGATE_INSECURE_AUTH=true.
//
// Store: without Redis, limits, suppressions, the first-contact memory and
// breaker state live in <data-dir>/store.db (one process). With
// SESGATE_REDIS_URL (or store.redis in the policy file) every replica shares
// them in Redis; SESGATE_REDIS_PASSWORD adds a password, and
// SESGATE_RECIPIENT_KEY (or store.recipient_key_file) must then hold the same
// HMAC key on every replica. See store and limiter for the semantics.
//
// This package parses the command line and dispatches; the gateway itself
// is wired by package internal/server.
package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/sesgate/sesgate/internal/admin/adminclient"
	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/internal/server"
)

func main() { cli.Main("sesgate", run) }

// usageError is a mistake in the command line: exit code 2.
type usageError = cli.UsageError

// program is the command table: it dispatches and it is the help.
func program() cli.Program {
	return cli.Program{Name: "sesgate", Commands: []cli.Command{
		{Name: "serve", About: "run the gateway: SMTP and HTTP in, SES or the outbox out (sesgate serve -h)", Run: serve},
		{Name: "check-config", Args: "FILE", About: "validate a policy file, report every problem", Run: checkConfig},
		{Name: "token", Subs: []cli.Command{
			{Name: "new", Args: "--tenant ID | --admin --name NAME", About: "mint a sending or admin token; prints it once and its policy line", Run: tokenNew},
		}},
		{Name: "outbox", Subs: []cli.Command{
			{Name: "list", About: "list the messages in the local outbox", Run: outboxList},
			{Name: "show", Args: "ID", About: "print one message of the local outbox", Run: outboxShow},
		}},
		{Name: "ses-server", About: "run the local SES v2 test server", Run: sesServer},
		{Name: "suppress", Subs: []cli.Command{
			{Name: "add", Args: "ADDRESS", About: "suppress an address in the configured store (--tenant, --reason, --expires)", Run: suppress("add")},
			{Name: "remove", Args: "ADDRESS", About: "lift the suppression of an address (--tenant)", Run: suppress("remove")},
			{Name: "list", About: "list the global suppressions, or a tenant's (--tenant, --limit)", Run: suppress("list")},
		}},
		{Name: "probe", Args: "[--url URL]", About: "exit 0 when the gateway answers ready (for exec probes)", Run: probe},
		{Name: "admin", Args: "...", About: "operate a running gateway through its admin API (sesgate admin help)", Run: adminCmd},
		{Name: "tenant", Args: "create|list|get|update|delete ...", About: "manage tenants at run time through the admin API (= sesgate admin tenant ...)", Run: tenantCmd},
	}}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return program().Run(ctx, args, stdout, stderr)
}

// serve runs `sesgate serve` until ctx ends.
func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	s, err := server.ParseSettings(args, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, s.LogLevel)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.Options{Settings: s, Logger: log, Banner: stderr})
}

// tenantCmd runs `sesgate tenant ...` as `sesgate admin tenant ...`.
func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return adminCmd(ctx, append([]string{"tenant"}, args...), stdout, stderr)
}

// adminCmd runs `sesgate admin ...`: the client of the admin API (`sesgate
// admin help` lists its commands). Command-line mistakes exit 2.
func adminCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := adminclient.Run(ctx, args, os.Getenv, os.Stdin, stdout, stderr)
	if errors.Is(err, adminclient.ErrUsage) {
		return usageError{Msg: err.Error()}
	}
	return err
}
