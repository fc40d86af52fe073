package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sampleStats = `# Commandstats
cmdstat_eval:calls=1,usec=54,usec_per_call=54.00,rejected_calls=0,failed_calls=0
cmdstat_config|resetstat:calls=1,usec=32,usec_per_call=32.00,rejected_calls=0,failed_calls=0
cmdstat_set:calls=1,usec=7,usec_per_call=7.00,rejected_calls=0,failed_calls=0
cmdstat_info:calls=4,usec=200,usec_per_call=50.00,rejected_calls=0,failed_calls=0
`

const sampleCPU = "# CPU\r\nused_cpu_sys:0.011734\r\nused_cpu_user:0.500000\r\nused_cpu_sys_children:0.000000\r\n"

func TestParseInfoAndSub(t *testing.T) {
	before, err := parseInfo(sampleStats, sampleCPU)
	if err != nil {
		t.Fatal(err)
	}
	if before.Calls["eval"] != 1 || before.Usec["config|resetstat"] != 32 || before.CPU != 511734*time.Microsecond {
		t.Fatalf("parsed %+v", before)
	}
	after, err := parseInfo(sampleStats+"cmdstat_evalsha:calls=10,usec=90,usec_per_call=9.00\ncmdstat_get:calls=5,usec=5\n",
		"used_cpu_sys:0.111734\nused_cpu_user:0.500000\n")
	if err != nil {
		t.Fatal(err)
	}
	after.Calls["info"] = 9 // the measurement's own INFO calls are left out
	d := after.Sub(before)
	want := map[string]int64{"evalsha": 10, "get": 5}
	if d.Calls != 15 || d.Usec != 95 || d.CPU != 100*time.Millisecond || fmt.Sprint(d.ByCommand) != fmt.Sprint(want) {
		t.Errorf("delta = %+v, want calls 15, usec 95, cpu 100ms, by command %v", d, want)
	}

	for _, tt := range []struct{ name, stats, cpu, wantErr string }{
		{"bad calls", "cmdstat_get:calls=x,usec=1\n", sampleCPU, `commandstats get: calls="x"`},
		{"no cpu", sampleStats, "# CPU\n", "no used_cpu_sys"},
		{"bad cpu", sampleStats, "used_cpu_sys:zz\nused_cpu_user:0\n", "used_cpu_sys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseInfo(tt.stats, tt.cpu); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		name, url                 string
		addr, user, pass, errWant string
		tls                       bool
	}{
		{name: "host port", url: "127.0.0.1:6379", addr: "127.0.0.1:6379"},
		{name: "url", url: "redis://127.0.0.1:7000/0", addr: "127.0.0.1:7000"},
		{name: "default port", url: "redis://cache.internal", addr: "cache.internal:6379"},
		{name: "password only", url: "redis://:s3cret@h:1", addr: "h:1", pass: "s3cret"},
		{name: "user and password", url: "rediss://bench:s3cret@h:1", addr: "h:1", user: "bench", pass: "s3cret", tls: true},
		{name: "bad scheme", url: "http://h:1", errWant: `scheme "http"`},
		{name: "no port", url: "localhost", errWant: "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, user, pass, tls, err := parseRedisURL(tt.url)
			if tt.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errWant) {
					t.Fatalf("err = %v, want %q", err, tt.errWant)
				}
				return
			}
			if err != nil || addr != tt.addr || user != tt.user || pass != tt.pass || tls != tt.tls {
				t.Fatalf("got %q %q %q %v %v", addr, user, pass, tls, err)
			}
		})
	}
}

// startRedis runs a redis-server with a password on a free port.
func startRedis(t *testing.T, password string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed (CI=true; scripts/test.sh installs it)")
		}
		t.Skip("redis-server not installed (scripts/test.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", dir, "--save", "", "--appendonly", "no", "--requirepass", password)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatalf("redis-server did not listen on %s (dir %s)", addr, filepath.Base(dir))
	return ""
}

// redisDo sends commands on one connection and returns the first line of
// each reply.
func redisDo(t *testing.T, addr, password string, cmds ...[]string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, args := range append([][]string{{"AUTH", password}}, cmds...) {
		fmt.Fprintf(c, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := readRESP(r); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
}

func TestRedisStatsAgainstRedis(t *testing.T) {
	const pw = "bench-pw"
	addr := startRedis(t, pw)
	ctx := context.Background()
	url := "redis://:" + pw + "@" + addr

	before, err := RedisStats(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	redisDo(t, addr, pw,
		[]string{"SET", "a", "1"}, []string{"SET", "b", "2"}, []string{"GET", "a"},
		[]string{"EVAL", "redis.call('INCR', KEYS[1]); return 1", "1", "c"})
	after, err := RedisStats(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	// The commands a script runs count as calls too: EVAL plus its INCR.
	want := map[string]int64{"set": 2, "get": 1, "eval": 1, "incr": 1}
	if fmt.Sprint(d.ByCommand) != fmt.Sprint(want) || d.Calls != 5 {
		t.Errorf("delta calls %d by command %v, want 5 and %v", d.Calls, d.ByCommand, want)
	}
	if d.Usec <= 0 || d.CPU < 0 {
		t.Errorf("delta usec %d cpu %v, want usec > 0 and cpu >= 0", d.Usec, d.CPU)
	}

	tests := []struct{ name, url, wantErr string }{
		{"wrong password", "redis://:nope@" + addr, "redis AUTH"},
		{"no password", "redis://" + addr, "NOAUTH"},
		{"nothing listening", "redis://127.0.0.1:1", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := RedisStats(ctx, tt.url); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
