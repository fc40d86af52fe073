package server

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway/smtpd"
	"github.com/sesgate/sesgate/internal/cli"
)

// TestSMTPFloodSettings covers the SMTP flood bounds: defaults, flags,
// environment, and refused values.
func TestSMTPFloodSettings(t *testing.T) {
	s, err := ParseSettings(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.SMTPMaxConnsPerSource != smtpd.DefaultMaxConnectionsPerSource || s.SMTPAuthTimeout != smtpd.DefaultAuthTimeout ||
		s.SMTPPreAuthTimeout != smtpd.DefaultPreAuthReadTimeout {
		t.Fatalf("defaults: %d %v %v", s.SMTPMaxConnsPerSource, s.SMTPAuthTimeout, s.SMTPPreAuthTimeout)
	}

	t.Setenv("SESGATE_SMTP_MAX_CONNS_PER_SOURCE", "20")
	t.Setenv("SESGATE_SMTP_AUTH_TIMEOUT", "15s")
	s, err = ParseSettings([]string{"--smtp-preauth-timeout", "3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.SMTPMaxConnsPerSource != 20 || s.SMTPAuthTimeout != 15*time.Second || s.SMTPPreAuthTimeout != 3*time.Second {
		t.Fatalf("env and flags: %d %v %v", s.SMTPMaxConnsPerSource, s.SMTPAuthTimeout, s.SMTPPreAuthTimeout)
	}

	for _, args := range [][]string{
		{"--smtp-max-conns-per-source", "0"},
		{"--smtp-max-conns-per-source", "1001"},
		{"--smtp-auth-timeout", "0s"},
		{"--smtp-preauth-timeout", "-1s"},
	} {
		var ue cli.UsageError
		if _, err := ParseSettings(args, io.Discard); !errors.As(err, &ue) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
	t.Setenv("SESGATE_SMTP_AUTH_TIMEOUT", "soon")
	var ue cli.UsageError
	if _, err := ParseSettings(nil, io.Discard); !errors.As(err, &ue) {
		t.Errorf("SESGATE_SMTP_AUTH_TIMEOUT=soon: error %v, want a usage error", err)
	}
}
