package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ChildEnv is the environment of a child process: ours without any
// SESGATE_ or AWS_ setting (so nothing of the user's leaks in, least of all
// real AWS credentials), plus extra.
func ChildEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SESGATE_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Proc is a child process we started.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func startProc(name, logPath string, cmd *exec.Cmd) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, then SIGKILL after StopTimeout.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Exited reports whether the process has ended by itself (not by Stop),
// with its exit status and the end of its output.
func (p *Proc) Exited() (bool, string) {
	select {
	case <-p.exited:
		return true, fmt.Sprintf("%s exited (%v): %s", p.name, p.cmd.ProcessState, p.logTail())
	default:
		return false, ""
	}
}

// logTail returns the end of the process's output, for error messages.
func (p *Proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitReady polls check until it succeeds, the process exits or the time
// is up.
func (p *Proc) waitReady(ctx context.Context, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %s", p.name, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v\n%s", p.name, ReadyTimeout, err, p.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
