package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sesgate/sesgate/sestest"
)

// sesServer runs the local SES v2 test server: SigV4-checked SendEmail that
// records messages, with fault injection under /_sestest/.
func sesServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ses-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", env("SESTEST_ADDR", "127.0.0.1:4566"), "listen address (env SESTEST_ADDR)")
	akid := fs.String("access-key", env("SESTEST_ACCESS_KEY", "local"), "access key id it accepts (env SESTEST_ACCESS_KEY)")
	secret := fs.String("secret-key", env("SESTEST_SECRET_KEY", "localsecret"), "secret key it accepts (env SESTEST_SECRET_KEY)")
	region := fs.String("region", env("SESTEST_REGION", "us-east-1"), "region it accepts (env SESTEST_REGION)")
	logLevel := fs.String("log-level", env("SESGATE_LOG_LEVEL", "info"), "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	srv := sestest.New(sestest.Options{
		AccessKeyID: *akid, SecretAccessKey: *secret, Region: *region,
		Logger: log, EnableControl: true,
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "local SES v2 server on http://%s (region %s, access key %q); messages: http://%s/_sestest/messages\n",
		l.Addr(), *region, *akid, l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
