package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/sesgate/sesgate/internal/admin/adminclient"
)

// adminCmd runs `sesgate admin ...`: the client of the admin API (see
// adminclient.Usage). Command-line mistakes exit 2.
func adminCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := adminclient.Run(ctx, args, os.Getenv, os.Stdin, stdout, stderr)
	if errors.Is(err, adminclient.ErrUsage) {
		return usageError{Msg: err.Error()}
	}
	return err
}
