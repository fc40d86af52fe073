package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway/outbox"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testSettings(t *testing.T, dataDir string, extra ...string) *Settings {
	t.Helper()
	s, err := ParseSettings(append([]string{"--data-dir", dataDir, "--sink", "outbox",
		"--smtp-addr", freeAddr(t), "--http-addr", freeAddr(t), "--admin-addr", freeAddr(t), "--reload-poll", "0"}, extra...), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStartServesAndStops starts the gateway in the process (dev tenant,
// outbox): a message sent over HTTP with the dev token reaches the outbox
// through the sink chain, the banner names every listener, and after the
// drain the same data directory and addresses can be started again.
func TestStartServesAndStops(t *testing.T) {
	dir := t.TempDir()
	var (
		s      *Settings
		banner bytes.Buffer
		opts   Options
		srv    *Server
		err    error
	)
	// A free port found by freeAddr may be taken by another test process
	// before Start binds it: try again with new ports.
	for range 5 {
		s = testSettings(t, dir)
		banner.Reset()
		opts = Options{Settings: s, Logger: slog.New(slog.DiscardHandler), Banner: &banner}
		if srv, err = Start(t.Context(), opts); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SMTP   " + s.SMTPAddr, "HTTP   http://" + s.HTTPAddr, "admin  http://" + s.AdminAddr, "tenant dev"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, banner.String())
		}
	}
	tok, err := os.ReadFile(filepath.Join(dir, "dev-token"))
	if err != nil {
		t.Fatal(err)
	}
	// Sent twice with one Idempotency-Key: the store's records are wired,
	// the second is the first's answer and is not sent again.
	for i := range 2 {
		req, _ := http.NewRequest("POST", "http://"+s.HTTPAddr+"/v1/messages",
			strings.NewReader(`{"from":"me@example.com","to":["you@example.org"],"subject":"x","text":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		req.Header.Set("Idempotency-Key", "start-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || (resp.Header.Get("Idempotent-Replayed") == "true") != (i == 1) {
			t.Fatalf("send %d: %s, replayed %q", i, resp.Status, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	ob, err := outbox.New(OutboxDir(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := ob.List(); err != nil || len(list) != 1 {
		t.Fatalf("outbox: %d messages, %v", len(list), err)
	}
	if err := srv.shutdown(); err != nil {
		t.Fatal(err)
	}
	srv.close()

	again, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("second start on the same data directory and addresses: %v", err)
	}
	again.close()
}

// TestFailedStartCleansUp: a start that fails at its last listener (the
// admin address is taken) releases everything it had opened: the embedded
// store and the sending listeners are free for the next start.
func TestFailedStartCleansUp(t *testing.T) {
	dir := t.TempDir()
	s := testSettings(t, dir)
	taken, err := net.Listen("tcp", s.AdminAddr)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Settings: s, Logger: slog.New(slog.DiscardHandler)}
	if _, err := Start(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "(admin)") {
		t.Fatalf("start with the admin address taken: %v", err)
	}
	taken.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	srv.close()
}

// TestTenantLabels: the first max tenants keep their label, later ones
// share "other"; no tenant is "unauthenticated".
func TestTenantLabels(t *testing.T) {
	l := newTenantLabels(2)
	tests := []struct{ name, id, want string }{
		{"first", "a", "a"},
		{"unauthenticated", "", "unauthenticated"},
		{"second", "b", "b"},
		{"over the cap", "c", "other"},
		{"seen before the cap", "a", "a"},
		{"still over", "d", "other"},
	}
	for _, tc := range tests {
		if got := l.of(tc.id); got != tc.want {
			t.Fatalf("%s: label of %q = %q, want %q", tc.name, tc.id, got, tc.want)
		}
	}
}
