package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/internal/redistest"
)

func TestSuppressCommand(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"embedded", func(t *testing.T) {}},
		{"redis", func(t *testing.T) {
			t.Setenv("SESGATE_REDIS_URL", "redis://"+redistest.Start(t).Addr)
			t.Setenv("SESGATE_RECIPIENT_KEY", "test-recipient-key-0123456789")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			dir := t.TempDir()
			cli := func(args ...string) (string, error) {
				var out, errb bytes.Buffer
				err := run(context.Background(), append(append([]string{"suppress"}, args...), "--data-dir", dir), &out, &errb)
				return out.String() + errb.String(), err
			}
			steps := []struct {
				args    []string
				want    string
				wantErr bool
			}{
				{[]string{"add", "--tenant", "billing", "--reason", "hard-bounce", "Bob@Example.org"}, "suppressed bob@example.org on the tenant billing (hard-bounce)", false},
				{[]string{"add", "--expires", "24h", "spam@example.org"}, "suppressed spam@example.org on the global list (manual)", false},
				{[]string{"add", "--reason", "angry", "x@example.org"}, "", true},
				{[]string{"add", "not-an-address"}, "", true},
				{[]string{"add"}, "", true},
				{[]string{"purge"}, "", true},
				{[]string{"list", "--tenant", "billing"}, "bob@example.org  hard-bounce", false},
				{[]string{"list"}, "spam@example.org  manual", false},
				{[]string{"remove", "--tenant", "billing", "BOB@example.org"}, "removed BOB@example.org from the tenant billing", false},
				{[]string{"remove", "--tenant", "billing", "bob@example.org"}, "", true},
				{[]string{"list", "--tenant", "billing"}, "the tenant billing is empty", false},
			}
			for _, st := range steps {
				out, err := cli(st.args...)
				if (err != nil) != st.wantErr || !strings.Contains(out, st.want) {
					t.Fatalf("suppress %v: %q, %v", st.args, out, err)
				}
			}
		})
	}
}
