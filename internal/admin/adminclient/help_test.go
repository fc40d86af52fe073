package adminclient

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

// TestHelpListsEveryCommand: `sesgate admin help` lists every command the
// table dispatches, and each reaches its own flags (-h prints them).
func TestHelpListsEveryCommand(t *testing.T) {
	var paths []string
	for path, c := range (&runner{}).program().All() {
		if c.Run == nil || c.About == "" {
			t.Errorf("command %q has no Run or no description", path)
		}
		paths = append(paths, path)
	}
	for _, want := range []string{"tokens list", "tokens mint", "tokens revoke", "tokens rotate",
		"tenants list", "tenants status", "tenants freeze", "tenants unfreeze", "freeze-all", "unfreeze-all",
		"breaker list", "breaker status", "breaker reset", "breaker force-open",
		"suppress add", "suppress remove", "suppress list", "suppress import", "suppress export", "audit"} {
		if !slices.Contains(paths, want) {
			t.Errorf("the command table lacks %q", want)
		}
	}
	run := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), args, func(string) string { return "" }, nil, &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	help, _, err := run("help")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(paths, "help") {
		if !strings.Contains(help, "\n  "+p+" ") {
			t.Errorf("sesgate admin help does not list %q:\n%s", p, help)
		}
	}
	if !strings.Contains(help, "--token T") {
		t.Errorf("sesgate admin help lacks the common flags:\n%s", help)
	}
	for _, p := range paths {
		_, stderr, err := run(append(strings.Fields(p), "-h")...)
		if !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(stderr, "Usage of sesgate admin "+p+":") {
			t.Errorf("sesgate admin %s -h: %v, stderr %q", p, err, stderr)
		}
	}
}
