package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestProgram(t *testing.T) {
	var ran []string
	cmd := func(name string) Run {
		return func(_ context.Context, args []string, _, _ io.Writer) error {
			ran = append(ran, name+" "+strings.Join(args, " "))
			return nil
		}
	}
	p := Program{Name: "tool", Footer: "more: tool help", Commands: []Command{
		{Name: "serve", About: "run it", Run: cmd("serve")},
		{Name: "box", Subs: []Command{
			{Name: "list", About: "list the box", Run: cmd("box list")},
			{Name: "show", Args: "ID", About: "print one", Run: cmd("box show")},
		}},
	}}
	tests := []struct {
		name   string
		args   []string
		ran    string
		usage  string // the UsageError's message, or "" for none
		stdout string
		stderr string
	}{
		{name: "command", args: []string{"serve", "-x"}, ran: "serve -x"},
		{name: "subcommand", args: []string{"box", "show", "7"}, ran: "box show 7"},
		{name: "help", args: []string{"help"}, stdout: "box show ID"},
		{name: "-h", args: []string{"-h"}, stdout: "more: tool help"},
		{name: "none", args: nil, usage: "no command", stderr: "serve"},
		{name: "unknown", args: []string{"fly"}, usage: "unknown command fly", stderr: "box list"},
		{name: "no subcommand", args: []string{"box"}, usage: "usage: tool box list\n       tool box show ID"},
		{name: "unknown subcommand", args: []string{"box", "burn"}, usage: "usage: tool box list\n       tool box show ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran = nil
			var stdout, stderr bytes.Buffer
			err := p.Run(context.Background(), tc.args, &stdout, &stderr)
			var ue UsageError
			if tc.usage != "" {
				if !errors.As(err, &ue) || ue.Msg != tc.usage {
					t.Fatalf("err %v, want usage error %q", err, tc.usage)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(ran, ","); got != tc.ran {
				t.Fatalf("ran %q, want %q", got, tc.ran)
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tc.stdout, tc.stderr)
			}
		})
	}
	want := "usage: tool <command> [flags]\n\ncommands:\n" +
		"  serve        run it\n" +
		"  box list     list the box\n" +
		"  box show ID  print one\n" +
		"  help         print this list of commands (also -h, --help)\n" +
		"\nmore: tool help\n"
	if got := p.Usage(); got != want {
		t.Fatalf("usage:\n%s\nwant:\n%s", got, want)
	}
}
