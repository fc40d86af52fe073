package server

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sesgate/sesgate/gateway/outbox"
	"github.com/sesgate/sesgate/internal/config"
)

// startTest starts the gateway, retrying when a port found free was taken.
func startTest(t *testing.T, dir string, extra ...string) (*Server, *Settings, string) {
	t.Helper()
	for range 5 {
		s := testSettings(t, dir, extra...)
		var banner strings.Builder
		srv, err := Start(t.Context(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler), Banner: &banner})
		if err == nil {
			t.Cleanup(srv.close)
			return srv, s, banner.String()
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Fatal("no free ports")
	return nil, nil, ""
}

// TestLaptopAWSKey: without a policy file the dev tenant gets an AWS key in
// <data-dir>/dev-aws-credentials, which the SDK's own shared-credentials
// loader reads; a SendEmail signed with it lands in the outbox, and after a
// restart the same file (server key kept in the data directory) still
// works.
func TestLaptopAWSKey(t *testing.T) {
	dir := t.TempDir()
	for round := range 2 {
		srv, s, banner := startTest(t, dir)
		if !strings.Contains(banner, "SES    http://"+s.HTTPAddr) || !strings.Contains(banner, "dev-aws-credentials") {
			t.Fatalf("banner:\n%s", banner)
		}
		cfg, err := awsconfig.LoadDefaultConfig(t.Context(), awsconfig.WithSharedCredentialsFiles([]string{filepath.Join(dir, "dev-aws-credentials")}),
			awsconfig.WithSharedConfigProfile("sesgate"), awsconfig.WithRegion("us-east-1"))
		if err != nil {
			t.Fatal(err)
		}
		c := sesv2.NewFromConfig(cfg, func(o *sesv2.Options) { o.BaseEndpoint = aws.String("http://" + s.HTTPAddr) })
		out, err := c.SendEmail(t.Context(), &sesv2.SendEmailInput{Content: &types.EmailContent{Raw: &types.RawMessage{
			Data: []byte("From: me@example.com\r\nTo: you@example.org\r\nSubject: x\r\n\r\nx\r\n")}}})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !strings.HasPrefix(aws.ToString(out.MessageId), "outbox-") {
			t.Fatalf("MessageId %q", aws.ToString(out.MessageId))
		}
		ob, _ := outbox.New(OutboxDir(dir), nil)
		if list, err := ob.List(); err != nil || len(list) != round+1 {
			t.Fatalf("outbox: %d messages, %v", len(list), err)
		}
		if err := srv.shutdown(); err != nil {
			t.Fatal(err)
		}
		srv.close()
	}
}

// TestPolicyAWSKeysNeedServerKey: a policy file listing AWS keys without
// --aws-key-secret-file is refused at start, naming the flag.
func TestPolicyAWSKeysNeedServerKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yml")
	pol := "tenants:\n  - id: a\n    identities: [\"*\"]\n    tokens:\n      - {aws_access_key_id: SGAWSKQ7W2E4R5T6}\n"
	if err := os.WriteFile(path, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testSettings(t, dir, "--config", path, "--sink", "outbox")
	_, err := Start(t.Context(), Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "--aws-key-secret-file") {
		t.Fatalf("start: %v", err)
	}
}

// TestReloadRefusesAWSKeysWithoutServerKey: a reloaded policy that adds AWS
// keys to a process without a server key is rejected (the old one stays),
// never served with keys that could not authenticate.
func TestReloadRefusesAWSKeysWithoutServerKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yml")
	pol := "tenants:\n  - id: a\n    identities: [\"*\"]\n    tokens:\n      - {aws_access_key_id: SGAWSKQ7W2E4R5T6}\n"
	if err := os.WriteFile(path, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reloads"}, []string{"result"})
	r := &reloader{reloaderOptions: reloaderOptions{Path: path, Reloads: reloads, Logger: slog.New(slog.DiscardHandler),
		Check: func(p *config.Policy) error { return checkAWSKeys(p, nil) }}}
	r.reload(t.Context(), "test") // Admin is nil: reaching setPolicy would panic
	if n := testutil.ToFloat64(reloads.WithLabelValues("invalid")); n != 1 {
		t.Fatalf("invalid reloads: %v", n)
	}
}
