package stack

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExitedSaysWhy: a child that ends by itself is reported with its exit
// status and the end of its output; a running one is not.
func TestExitedSaysWhy(t *testing.T) {
	log := filepath.Join(t.TempDir(), "child.log")
	p, err := startProc("child", log, exec.Command("sh", "-c", "echo last words; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		gone, why := p.Exited()
		if gone {
			if !strings.Contains(why, "exit status 3") || !strings.Contains(why, "last words") {
				t.Fatalf("Exited: %q", why)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	live, err := startProc("sleeper", filepath.Join(t.TempDir(), "s.log"), exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	if gone, why := live.Exited(); gone {
		t.Fatalf("a running child reported exited: %s", why)
	}
}
