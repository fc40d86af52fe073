package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/internal/cli"
)

// TestHelpListsEveryCommand: `sesgate help` (and no or an unknown command)
// lists every command and subcommand the table dispatches, each with its
// description; the table is the dispatcher, so the help cannot miss one.
func TestHelpListsEveryCommand(t *testing.T) {
	var paths []string
	var walk func(prefix string, cs []cli.Command)
	walk = func(prefix string, cs []cli.Command) {
		for _, c := range cs {
			if len(c.Subs) > 0 {
				walk(prefix+c.Name+" ", c.Subs)
				continue
			}
			if c.Run == nil || c.About == "" {
				t.Errorf("command %q has no Run or no description", prefix+c.Name)
			}
			paths = append(paths, prefix+c.Name)
		}
	}
	walk("", program().Commands)
	paths = append(paths, "help")
	for _, want := range []string{"serve", "check-config", "token new", "outbox list", "outbox show", "ses-server",
		"suppress add", "suppress remove", "suppress list", "probe", "admin", "help"} {
		found := false
		for _, p := range paths {
			found = found || p == want
		}
		if !found {
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
