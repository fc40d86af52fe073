package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/sesgate/sesgate/internal/bench/thinrelay"
)

type thinRelaySettings struct {
	smtpAddr string
	endpoint string
}

func parseThinRelay(args []string, stderr io.Writer) (*thinRelaySettings, error) {
	fs := flag.NewFlagSet("thin-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	t := &thinRelaySettings{}
	fs.StringVar(&t.smtpAddr, "smtp-addr", "127.0.0.1:2526", "loopback host:port to accept SMTP on (no AUTH)")
	fs.StringVar(&t.endpoint, "ses-endpoint", "", "SES v2 endpoint URL (required); credentials and region from the AWS environment")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{Msg: err.Error()}
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "thin-relay takes no arguments")
	}
	if u, err := url.Parse(t.endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("--ses-endpoint %q: want http(s)://host[:port]", t.endpoint))
	}
	if len(problems) > 0 {
		return nil, usageError{Msg: strings.Join(problems, "; ")}
	}
	return t, nil
}

// thinRelayCmd runs the thin relay until it is signalled.
func thinRelayCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	t, err := parseThinRelay(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS config: %w", err)
	}
	if cfg.Region == "" {
		return usageError{Msg: "no AWS region: set AWS_REGION"}
	}
	r, err := thinrelay.New(thinrelay.Options{Endpoint: t.endpoint, Region: cfg.Region, Credentials: cfg.Credentials})
	if err != nil {
		return err
	}
	ln, err := thinrelay.Listen(t.smtpAddr)
	if err != nil {
		return usageError{Msg: "--smtp-addr: " + err.Error()}
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ln) }()
	fmt.Fprintf(stderr, "thin relay: SMTP %s -> SES %s\n", ln.Addr(), t.endpoint)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = r.Close()
		return <-done
	}
}
