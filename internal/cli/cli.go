// Package cli holds what the project's commands share: the process entry
// that runs a command with a context cancelled on SIGINT or SIGTERM, the
// exit codes (0 done or help, 1 failure, 2 usage error), the command table
// that both dispatches and prints the help, and the environment and logger
// helpers of their flags.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// UsageError is a mistake in the command line; the process exits with 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Run is a command: arguments without the program name, and its outputs.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Main runs run with os.Args and exits: 0 on success or -h, 2 on a
// UsageError, 1 on any other error (printed as "name: error").
func Main(name string, run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ExitCode(name, run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// ExitCode reports err on stderr and returns the process exit code for it.
func ExitCode(name string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, name+":", err)
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Env returns the environment value of key when set and not empty, else
// def: the default of a flag that has an environment variable.
func Env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// NewLogger returns a JSON logger on w at level (debug, info, warn or
// error); an unknown level is a UsageError of --log-level.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, UsageError{Msg: "--log-level: " + err.Error()}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
