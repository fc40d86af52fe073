package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"ok", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"usage", UsageError{"no command"}, 2, "tool: no command\n"},
		{"wrapped usage", fmt.Errorf("serve: %w", UsageError{"bad flag"}), 2, "tool: serve: bad flag\n"},
		{"failure", errors.New("listen: in use"), 1, "tool: listen: in use\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if got := ExitCode("tool", tc.err, &buf); got != tc.code || buf.String() != tc.out {
				t.Fatalf("ExitCode = %d, %q; want %d, %q", got, buf.String(), tc.code, tc.out)
			}
		})
	}
}
