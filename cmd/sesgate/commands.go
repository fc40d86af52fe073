package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway/outbox"
	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/server"
)

func checkConfig(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) != 1 {
		return usageError{Msg: "usage: sesgate check-config FILE"}
	}
	p, err := config.Load(args[0])
	if err != nil {
		return err
	}
	tenants, entries := p.Build()
	fmt.Fprintf(stdout, "%s: ok (%d tenants, %d tokens)\n", args[0], len(tenants), len(entries))
	return nil
}

func tokenNew(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant id the token belongs to")
	isAdmin := fs.Bool("admin", false, "mint an admin API token (with --name)")
	name := fs.String("name", "", "whose admin token it is (shown in the audit log)")
	isAWS := fs.Bool("aws", false, "mint an AWS key (access key id and secret access key) for the SES API")
	secretFile := fs.String("aws-key-secret-file", cli.Env("SESGATE_AWS_KEY_SECRET_FILE", ""), "with --aws: the serve process's server key file (env SESGATE_AWS_KEY_SECRET_FILE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *isAWS {
		if *tenant == "" || *isAdmin {
			return usageError{Msg: "--aws needs --tenant ID and no --admin"}
		}
		if *secretFile == "" {
			return usageError{Msg: "--aws needs --aws-key-secret-file FILE (the server key serve uses: the secret is derived from it)"}
		}
		keys, err := auth.LoadAWSKeys(*secretFile)
		if err != nil {
			return err
		}
		m := keys.New(*tenant)
		fmt.Fprintf(stdout, "AWS access key id: %s\n", m.AccessKeyID)
		fmt.Fprintf(stdout, "AWS secret access key (shown once, give it to the app): %s\n", m.SecretAccessKey)
		fmt.Fprintf(stdout, "add under tenants[id=%s].tokens in the policy file:\n  - %s\n", *tenant, m.PolicyLine())
		return nil
	}
	if *isAdmin {
		if *name == "" || *tenant != "" {
			return usageError{Msg: "--admin needs --name NAME and no --tenant"}
		}
		m := auth.NewToken("")
		fmt.Fprintf(stdout, "admin token (shown once): %s\n", m.Token)
		fmt.Fprintf(stdout, "add under admin_tokens in the policy file:\n  - {name: %s, key_id: %s, sha256: %s}\n", *name, m.Record.KeyID, m.Record.Hash)
		return nil
	}
	if *tenant == "" {
		return usageError{Msg: "--tenant is required"}
	}
	m := auth.NewToken(*tenant)
	fmt.Fprintf(stdout, "token (shown once, give it to the app): %s\n", m.Token)
	fmt.Fprintf(stdout, "add under tenants[id=%s].tokens in the policy file:\n  - %s\n", *tenant, m.Record.PolicyLine())
	return nil
}

// openOutbox parses the flags of an outbox subcommand and opens the outbox.
func openOutbox(sub string, args []string, stderr io.Writer) (*outbox.Outbox, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("outbox "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", cli.Env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory (env SESGATE_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	o, err := outbox.New(server.OutboxDir(*dataDir), nil)
	return o, fs, err
}

func outboxList(_ context.Context, args []string, stdout, stderr io.Writer) error {
	o, _, err := openOutbox("list", args, stderr)
	if err != nil {
		return err
	}
	list, err := o.List()
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "outbox is empty")
	}
	for _, m := range list {
		fmt.Fprintf(stdout, "%s  %s  tenant=%s  from=%s  rcpts=%d  %dB\n", m.ID, m.Time.Format("2006-01-02T15:04:05Z"), m.Tenant, m.From, len(m.Recipients), m.Size)
	}
	return nil
}

func outboxShow(_ context.Context, args []string, stdout, stderr io.Writer) error {
	o, fs, err := openOutbox("show", args, stderr)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{Msg: "usage: sesgate outbox show ID"}
	}
	m, data, err := o.Show(fs.Arg(0))
	if errors.Is(err, outbox.ErrNotFound) {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "X-Sesgate-Tenant: %s\nX-Sesgate-Envelope-From: %s\n", m.Tenant, m.From)
	for _, r := range m.Recipients {
		fmt.Fprintf(stdout, "X-Sesgate-Envelope-To: %s\n", r)
	}
	_, err = stdout.Write(data)
	return err
}
