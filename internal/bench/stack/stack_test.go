package stack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocateSesgate(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "sesgate-bench", "main.go")); err != nil {
		t.Fatalf("RepoRoot = %s, not the sesgate module: %v", root, err)
	}
	if _, err := Binary(context.Background(), filepath.Join(t.TempDir(), "missing"), t.TempDir(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--sesgate") {
		t.Fatalf("missing --sesgate binary: err = %v", err)
	}
}
