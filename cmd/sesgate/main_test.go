package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/internal/cli"
)

// TestHelpListsEveryCommand: `sesgate help` (and no or an unknown command)
// lists every command and subcommand the table dispatches, each with its
// description; the table is the dispatcher, so the help cannot miss one.
func TestHelpListsEveryCommand(t *testing.T) {
	var paths []string
	for path, c := range program().All() {
		if c.Run == nil || c.About == "" {
			t.Errorf("command %q has no Run or no description", path)
		}
		paths = append(paths, path)
	}
	paths = append(paths, "help")
	for _, want := range []string{"serve", "check-config", "token new", "outbox list", "outbox show", "ses-server",
		"suppress add", "suppress remove", "suppress list", "probe", "admin", "help"} {
		if !slices.Contains(paths, want) {
			t.Errorf("the command table lacks %q", want)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, nil, {"fly"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		var ue cli.UsageError
		if (len(args) == 0 || args[0] == "fly") != errors.As(err, &ue) {
			t.Fatalf("sesgate %v: %v", args, err)
		}
		help := stdout.String() + stderr.String()
		for _, p := range paths {
			if !strings.Contains(help, "\n  "+p+" ") {
				t.Errorf("sesgate %v does not list %q:\n%s", args, p, help)
			}
		}
	}
}
