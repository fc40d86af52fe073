//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package outbox

import (
	"os"
	"time"
)

// Without flock, New never knows it is alone: it removes only leftovers
// older than StaleAfter.
func tryLockExclusive(*os.File) (bool, error) { return false, nil }

func lockShared(*os.File, time.Duration, time.Duration) error { return nil }
