package sestest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// TB is the part of testing.TB that StartChild uses.
type TB interface {
	Helper()
	Cleanup(func())
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// A server in a process of its own, for tests that count the allocations
// of the process under test (runtime.MemStats is per process): the test
// binary starts itself again as the server. The child keeps the default
// key pair and region, limits and control API (EnableControl).

// childEnv names the variable that makes a test binary the server.
const childEnv = "SESTEST_CHILD_SERVER"

// RunChildIfAsked must be called first in the TestMain of a package that
// uses StartChild: in the child, it serves until its standard input
// closes and exits; otherwise it returns at once.
func RunChildIfAsked() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	_, url, stop, err := Start(Options{EnableControl: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sestest child:", err)
		os.Exit(2)
	}
	fmt.Println(url)
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent's end closes at its exit
	stop()
	os.Exit(0)
}

// StartChild starts the running test binary again as a Server (its
// TestMain must call RunChildIfAsked) and returns the server's base URL;
// the child stops at the end of the test. Its control API (/_sestest/)
// serves its faults and recorded messages.
func StartChild(t TB) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case url := <-line:
		if !strings.HasPrefix(url, "http://") {
			t.Fatalf("sestest child: no URL, got %q", url)
		}
		return url
	case <-time.After(30 * time.Second):
		t.Fatal("sestest child: no URL within 30 s")
	}
	return ""
}
