// Package redistest starts real redis-server processes for tests: a
// standalone server (optionally persistent, StartPersistent) or a 3-master
// Cluster, on free loopback ports, with their files in t.TempDir(), killed
// at Cleanup.
//
// Without redis-server on PATH the test is skipped, unless CI=true, where
// it fails: CI must run the Redis tests (scripts/test.sh installs the
// Debian package redis-server).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Require skips (or, in CI, fails) t when redis-server is missing and
// returns the paths of redis-server and redis-cli.
func Require(t testing.TB) (server, cli string) {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err == nil {
		cli, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server/redis-cli not installed (CI=true): %v", err)
		}
		t.Skipf("redis-server/redis-cli not installed (apt-get install redis-server): %v", err)
	}
	return server, cli
}

// Server is one redis-server process.
type Server struct {
	Addr string
	t    testing.TB
	bin  string
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts a standalone server (no persistence).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, _ := Require(t)
	return start(t, bin, t.TempDir(), nil)
}

// StartPersistent starts a standalone server that appends every write to
// an append-only file in its directory, fsynced before the reply
// (appendfsync always): after Kill (SIGKILL) and Restart it has all its
// data, as a production Redis with AOF would.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	bin, _ := Require(t)
	return start(t, bin, t.TempDir(), []string{"--appendonly", "yes", "--appendfsync", "always"})
}

func start(t testing.TB, bin, dir string, extra []string) *Server {
	t.Helper()
	var lastErr error
	for range 5 { // a port taken between freePort and bind: try another
		port := freePort(t)
		s := &Server{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			t:    t, bin: bin, dir: dir,
			args: append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--dir", dir, "--protected-mode", "no", "--logfile", filepath.Join(dir, "redis.log")}, extra...),
		}
		if lastErr = s.run(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: cannot start redis-server: %v", lastErr)
	return nil
}

func (s *Server) run() error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v (log %s)", err, filepath.Join(s.dir, "redis.log"))
		default:
		}
		if _, err := s.Do("PING"); err == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			go func() { <-exited }()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING", s.Addr)
}

// PID returns the process id, 0 when not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill stops the server at once (SIGKILL). Safe to call twice.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		// Wait until the port is closed.
		for range 100 {
			c, err := net.DialTimeout("tcp", s.Addr, 50*time.Millisecond)
			if err != nil {
				return
			}
			c.Close()
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Restart starts the server again on the same port and directory: empty,
// or with its data when started by StartPersistent.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 {
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart %s: %v", s.Addr, err)
}

// Do sends one command over a fresh connection (RESP2) and returns the
// reply as text: a simple or bulk string, an integer, or an error.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", fmt.Errorf("empty reply")
	case line[0] == '+' || line[0] == ':':
		return line[1:], nil
	case line[0] == '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case line[0] == '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Info returns one field of INFO section (e.g. "commandstats",
// "cmdstat_evalsha") as its raw value, "" when absent.
func (s *Server) Info(section, field string) string {
	out, err := s.Do("INFO", section)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(out, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return v
		}
	}
	return ""
}

// CPU returns used_cpu_user + used_cpu_sys of INFO cpu: the server's own
// CPU time, network I/O included.
func (s *Server) CPU() time.Duration {
	var total float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, _ := strconv.ParseFloat(s.Info("cpu", f), 64)
		total += v
	}
	return time.Duration(total * float64(time.Second))
}

// Calls returns the calls= count of a command in INFO commandstats.
func (s *Server) Calls(cmd string) int64 {
	return statField(s.Info("commandstats", "cmdstat_"+cmd), "calls")
}

// UsecPerCall returns usec_per_call of a command in INFO commandstats.
func (s *Server) UsecPerCall(cmd string) float64 {
	v := s.Info("commandstats", "cmdstat_"+cmd)
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == "usec_per_call" {
			f, _ := strconv.ParseFloat(val, 64)
			return f
		}
	}
	return 0
}

func statField(v, field string) int64 {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == field {
			n, _ := strconv.ParseInt(val, 10, 64)
			return n
		}
	}
	return 0
}

// Cluster is a 3-master Redis Cluster without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the seed addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// StartCluster starts three cluster-enabled servers, joins them with
// redis-cli --cluster create and waits for cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, cli := Require(t)
	c := &Cluster{}
	for i := range 3 {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, start(t, bin, dir, []string{"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000"}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, c.Addrs()...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		for n.clusterState() != "ok" {
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok: %s", n.Addr, n.clusterState())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Calls sums a command's calls over every node.
func (c *Cluster) Calls(cmd string) int64 {
	var n int64
	for _, s := range c.Nodes {
		n += s.Calls(cmd)
	}
	return n
}

func (s *Server) clusterState() string {
	out, err := s.Do("CLUSTER", "INFO")
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(out, "\r\n") {
		if v, ok := strings.CutPrefix(l, "cluster_state:"); ok {
			return v
		}
	}
	return "unknown"
}

// StartSentinel starts one Sentinel monitoring master under the name
// "mymaster" (quorum 1) and returns it; clients reach the master through
// redis://<sentinel>?master_name=mymaster.
func StartSentinel(t testing.TB, master *Server) *Server {
	t.Helper()
	bin, _ := Require(t)
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(master.Addr)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("sentinel monitor mymaster %s %s 1\nsentinel down-after-milliseconds mymaster 2000\n", host, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 {
		p := freePort(t)
		s := &Server{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)),
			t:    t, bin: bin, dir: dir,
			args: []string{conf, "--sentinel", "--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--protected-mode", "no",
				"--logfile", filepath.Join(dir, "sentinel.log")},
		}
		if lastErr = s.run(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: cannot start sentinel: %v", lastErr)
	return nil
}
