// Command sesgate is the SES sending gateway.
//
// Subcommands:
//
//	sesgate serve                 run the gateway (SMTP and HTTP in, SES or outbox out)
//	sesgate check-config FILE     validate a policy file, report every problem
//	sesgate token new --tenant ID mint a token; prints it once and the policy line
//	sesgate outbox list|show ID   read the local outbox
//	sesgate ses-server            run the local SES v2 test server
//	sesgate suppress add|remove|list  edit the suppression lists of the configured store
//	sesgate probe                 exit 0 when the gateway is ready (exec probe)
//	sesgate admin ...             talk to the admin API (tokens, freeze, breakers, suppressions)
//
// Process settings come from flags, each with an environment variable
// (flag --data-dir, env SESGATE_DATA_DIR); the flag wins. See `sesgate serve -h`.
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
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sesgate/sesgate/internal/cli"
)

func main() { cli.Main("sesgate", run) }

// usageError is a mistake in the command line: exit code 2.
type usageError = cli.UsageError

const usage = `usage: sesgate <command> [flags]

commands:
  serve                    run the gateway
  check-config FILE        validate a policy file
  token new --tenant ID    mint a token (printed once) and its policy line
  outbox list              list messages in the local outbox
  outbox show ID           print one message from the outbox
  ses-server               run the local SES v2 test server
  probe [--url URL]        exit 0 when the gateway answers ready (for exec probes)
  admin ...                operate a running gateway through its admin API (sesgate admin help)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{Msg: "no command"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout)
	case "token":
		return tokenCmd(args[1:], stdout, stderr)
	case "outbox":
		return outboxCmd(args[1:], stdout, stderr)
	case "ses-server":
		return sesServer(ctx, args[1:], stdout, stderr)
	case "suppress":
		return suppressCmd(ctx, args[1:], stdout, stderr)
	case "probe":
		return probe(ctx, args[1:], stdout, stderr)
	case "admin":
		return adminCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{Msg: "unknown command " + args[0]}
}

// env returns the environment value of key, or def.
func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
