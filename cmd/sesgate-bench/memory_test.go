package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/bench/memory"
)

// TestMemoryEndToEnd runs `sesgate-bench memory` small: the sessions are
// opened, authenticated and alive, each path's message reached SES (its
// MessageId found there, with the size sent), and the figures are read.
func TestMemoryEndToEnd(t *testing.T) {
	bin := buildSesgate(t)
	out := filepath.Join(t.TempDir(), "memory.json")
	const size = 2_000_000
	stdout := runBench(t, 3*time.Minute, "memory", "--sesgate", bin, "--sessions", "40", "--size", "2000000", "--json", out)
	rep := readReport[memory.Report](t, out)
	if s := rep.Sessions; s == nil || s.N != 40 || s.BeforeRSS <= 0 || s.WithRSS <= 0 {
		t.Fatalf("sessions: %+v", rep.Sessions)
	}
	var paths []string
	for _, m := range rep.Messages {
		paths = append(paths, m.Path)
		if m.MessageID == "" || m.BaseRSS <= 0 || m.Peak < m.BaseRSS || m.Request <= 0 {
			t.Errorf("%s: %+v", m.Path, m)
		}
		if m.Path != "json" && (m.Size != size || m.Request != size) {
			t.Errorf("%s: SES got %d bytes of a %d-byte request, want %d", m.Path, m.Size, m.Request, size)
		}
	}
	if strings.Join(paths, ",") != "smtp,http,json" {
		t.Fatalf("paths %v", paths)
	}
	if !strings.Contains(stdout, "idle authenticated SMTP sessions: 40") {
		t.Fatalf("report:\n%s", stdout)
	}
}
