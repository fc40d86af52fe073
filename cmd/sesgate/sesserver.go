package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/internal/sestest"
)

// sesServer runs the local SES v2 test server: SigV4-checked SendEmail that
// records messages, with fault injection under /_sestest/.
func sesServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ses-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", cli.Env("SESTEST_ADDR", "127.0.0.1:4566"), "listen address (env SESTEST_ADDR)")
	akid := fs.String("access-key", cli.Env("SESTEST_ACCESS_KEY", "local"), "access key id it accepts (env SESTEST_ACCESS_KEY)")
	secret := fs.String("secret-key", cli.Env("SESTEST_SECRET_KEY", "localsecret"), "secret key it accepts (env SESTEST_SECRET_KEY)")
	region := fs.String("region", cli.Env("SESTEST_REGION", "us-east-1"), "region it accepts (env SESTEST_REGION)")
	logLevel := fs.String("log-level", cli.Env("SESGATE_LOG_LEVEL", "info"), "log level")
	eventsURL := fs.String("events-url", "", "publish signed SNS notifications of SES events to this URL, e.g. http://127.0.0.1:8025/v1/events/sns")
	certOut := fs.String("sns-cert-out", "", "write the PEM certificate that signs the notifications to this file (give it to sesgate serve as SESGATE_SNS_TRUST_CERT)")
	bounceFraction := fs.Float64("bounce-fraction", 0, "fraction of recipients (chosen by address) that hard-bounce")
	bounceLocal := fs.String("bounce-local-part", "bounce", "recipients whose local part starts with this bounce (- disables)")
	complaintLocal := fs.String("complaint-local-part", "complaint", "recipients whose local part starts with this complain (- disables)")
	eventDelay := fs.Duration("event-delay", 0, "delay between a send and its events")
	eventFormat := fs.String("event-format", sestest.FormatEvent, "event (configuration-set events, with tags) or notification (identity notifications, no tags)")
	deliveries := fs.Bool("deliveries", false, "publish Delivery events for the other recipients")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	srv := sestest.New(sestest.Options{
		AccessKeyID: *akid, SecretAccessKey: *secret, Region: *region,
		Logger: log, EnableControl: true,
	})
	if *certOut != "" {
		pem, err := srv.SNSCertificatePEM()
		if err != nil {
			return err
		}
		if err := os.WriteFile(*certOut, pem, 0o644); err != nil {
			return fmt.Errorf("--sns-cert-out: %w", err)
		}
	}
	if *eventsURL != "" {
		err := srv.SetEvents(&sestest.EventOptions{
			URL: *eventsURL, Delay: *eventDelay, Format: *eventFormat, BounceFraction: *bounceFraction,
			BounceLocalPart: *bounceLocal, ComplaintLocalPart: *complaintLocal, Deliveries: *deliveries,
		})
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "local SES v2 server on http://%s (region %s, access key %q); messages: http://%s/_sestest/messages\n",
		l.Addr(), *region, *akid, l.Addr())
	if *eventsURL != "" {
		fmt.Fprintf(stdout, "publishing SES events as signed SNS notifications (topic %s) to %s\n", sestest.DefaultTopicArn, *eventsURL)
	}
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
