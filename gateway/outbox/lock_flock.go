//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package outbox

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// tryLockExclusive takes an exclusive flock on f without waiting. It
// reports false (and no error) when another descriptor holds a lock.
func tryLockExclusive(f *os.File) (bool, error) {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// lockShared takes (or turns an exclusive lock into) a shared flock on f,
// trying every poll for at most wait.
func lockShared(f *os.File, wait, poll time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("the outbox directory stayed locked by another process")
		}
		time.Sleep(poll)
	}
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
