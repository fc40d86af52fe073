package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway/outbox"
	"github.com/sesgate/sesgate/internal/config"
)

func checkConfig(args []string, stdout io.Writer) error {
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

func tokenCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return usageError{Msg: "usage: sesgate token new --tenant ID | --admin --name NAME"}
	}
	fs := flag.NewFlagSet("token new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant id the token belongs to")
	isAdmin := fs.Bool("admin", false, "mint an admin API token (with --name)")
	name := fs.String("name", "", "whose admin token it is (shown in the audit log)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
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

func outboxCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", env("SESGATE_DATA_DIR", "./sesgate-data"), "data directory (env SESGATE_DATA_DIR)")
	if len(args) == 0 {
		return usageError{Msg: "usage: sesgate outbox list | show ID"}
	}
	sub := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	o, err := outbox.New(outboxDir(*dataDir), nil)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
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
	case "show":
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
	return usageError{Msg: "usage: sesgate outbox list | show ID"}
}
