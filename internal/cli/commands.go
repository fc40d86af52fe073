package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Command is one entry of a program's command table. The same table
// dispatches the command line and prints the help, so the help lists every
// command there is.
type Command struct {
	Name  string // as typed: "serve", "list"
	Args  string // what follows the name in the help: "FILE", "--tenant ID"
	About string // one line
	// Run runs the command with the arguments after its name. A command
	// with Subs has no Run: the first argument picks the subcommand.
	Run  Run
	Subs []Command
}

// Program is a command with subcommands: its name and its command table.
// `help`, `-h` and `--help` print the table; no or an unknown command is a
// UsageError after the table is printed on stderr.
type Program struct {
	Name     string
	Commands []Command
	Footer   string // printed after the table
}

// Run dispatches args to the command they name.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, p.Usage())
		return UsageError{Msg: "no command"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, p.Usage())
		return nil
	}
	c, ok := find(p.Commands, args[0])
	if !ok {
		fmt.Fprint(stderr, p.Usage())
		return UsageError{Msg: "unknown command " + args[0]}
	}
	path := p.Name + " " + c.Name
	args = args[1:]
	for c.Run == nil {
		var sub Command
		if len(args) > 0 {
			sub, ok = find(c.Subs, args[0])
		}
		if len(args) == 0 || !ok {
			return UsageError{Msg: subUsage(path, c.Subs)}
		}
		c, path, args = sub, path+" "+sub.Name, args[1:]
	}
	return c.Run(ctx, args, stdout, stderr)
}

func find(cs []Command, name string) (Command, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// subUsage is the usage error of a command without (or with an unknown)
// subcommand: one line per subcommand.
func subUsage(path string, subs []Command) string {
	lines := make([]string, 0, len(subs))
	for _, s := range subs {
		lines = append(lines, strings.TrimSpace(path+" "+s.Name+" "+s.Args))
	}
	return "usage: " + strings.Join(lines, "\n       ")
}

// Usage is the help: every command and subcommand of the table, with its
// arguments and its line of description.
func (p Program) Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s <command> [flags]\n\ncommands:\n", p.Name)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	var list func(prefix string, cs []Command)
	list = func(prefix string, cs []Command) {
		for _, c := range cs {
			if len(c.Subs) == 0 {
				fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(prefix+c.Name+" "+c.Args), c.About)
				continue
			}
			list(prefix+c.Name+" ", c.Subs)
		}
	}
	// help is dispatched by Run itself, for every program.
	list("", append(slices.Clip(p.Commands), Command{Name: "help", About: "print this list of commands (also -h, --help)"}))
	tw.Flush()
	if p.Footer != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(p.Footer, "\n"))
	}
	return b.String()
}
