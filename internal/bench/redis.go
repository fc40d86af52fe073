package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxInfoBytes bounds an INFO answer.
const maxInfoBytes = 1 << 20

// RedisSnapshot is what RedisStats reads: per-command call counts and
// microseconds (INFO commandstats) and the server's CPU time (INFO cpu).
type RedisSnapshot struct {
	Calls map[string]int64 // command name (e.g. "evalsha", "config|get") -> calls
	Usec  map[string]int64 // command name -> microseconds spent in it
	CPU   time.Duration    // used_cpu_user + used_cpu_sys
}

// RedisDelta is the difference of two snapshots. Commands run by a script
// are counted by Redis too (an EVALSHA that runs two commands counts three
// calls, and its usec include theirs); ByCommand shows which is which.
type RedisDelta struct {
	Calls     int64            `json:"calls"`
	Usec      int64            `json:"usec"`
	CPU       time.Duration    `json:"cpu_ns"`
	ByCommand map[string]int64 `json:"calls_by_command"`
	// UsecByCommand: microseconds by command (a script's include those of
	// the commands it ran).
	UsecByCommand map[string]int64 `json:"usec_by_command"`
}

// Sub returns after minus before, leaving out the INFO commands the
// measurement itself sends.
func (after RedisSnapshot) Sub(before RedisSnapshot) RedisDelta {
	d := RedisDelta{CPU: after.CPU - before.CPU, ByCommand: map[string]int64{}, UsecByCommand: map[string]int64{}}
	for name, n := range after.Calls {
		if name == "info" || name == "auth" || name == "select" {
			continue
		}
		if c := n - before.Calls[name]; c > 0 {
			d.ByCommand[name] = c
			d.Calls += c
			d.Usec += after.Usec[name] - before.Usec[name]
			d.UsecByCommand[name] = after.Usec[name] - before.Usec[name]
		}
	}
	return d
}

// RedisStats reads INFO from the Redis server at a URL
// (redis://[user:password@]host:port[/db], rediss:// for TLS, or host:port).
func RedisStats(ctx context.Context, rawURL string) (RedisSnapshot, error) {
	addr, user, pass, useTLS, err := parseRedisURL(rawURL)
	if err != nil {
		return RedisSnapshot{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return RedisSnapshot{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if useTLS {
		host, _, _ := net.SplitHostPort(addr)
		tc := tls.Client(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return RedisSnapshot{}, err
		}
		conn = tc
	}
	r := bufio.NewReader(conn)
	do := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(conn, b.String()); err != nil {
			return "", err
		}
		return readRESP(r)
	}
	if pass != "" {
		args := []string{"AUTH", pass}
		if user != "" {
			args = []string{"AUTH", user, pass}
		}
		if _, err := do(args...); err != nil {
			return RedisSnapshot{}, fmt.Errorf("redis AUTH: %w", err)
		}
	}
	stats, err := do("INFO", "commandstats")
	if err != nil {
		return RedisSnapshot{}, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	cpu, err := do("INFO", "cpu")
	if err != nil {
		return RedisSnapshot{}, fmt.Errorf("redis INFO cpu: %w", err)
	}
	return parseInfo(stats, cpu)
}

func parseRedisURL(raw string) (addr, user, pass string, useTLS bool, err error) {
	if !strings.Contains(raw, "://") {
		if _, _, err := net.SplitHostPort(raw); err != nil {
			return "", "", "", false, fmt.Errorf("redis address %q: %w", raw, err)
		}
		return raw, "", "", false, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", false, fmt.Errorf("redis URL: %w", err)
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		useTLS = true
	default:
		return "", "", "", false, fmt.Errorf("redis URL: scheme %q, want redis or rediss", u.Scheme)
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		if pass == "" { // redis://:password@ or redis://password@
			user, pass = "", user
		}
	}
	return addr, user, pass, useTLS, nil
}

// readRESP reads one reply: a simple string, an error, an integer or a
// bulk string (all INFO and AUTH answer with).
func readRESP(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New("redis: " + line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > maxInfoBytes {
			return "", fmt.Errorf("redis: bad bulk length %q", line[1:])
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line[:min(len(line), 40)])
}

// parseInfo reads lines like
//
//	cmdstat_get:calls=1,usec=2,usec_per_call=2.00,rejected_calls=0,failed_calls=0
//	used_cpu_sys:0.011734
func parseInfo(stats, cpu string) (RedisSnapshot, error) {
	s := RedisSnapshot{Calls: map[string]int64{}, Usec: map[string]int64{}}
	for line := range strings.Lines(stats) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case k != "calls" && k != "usec":
			case err != nil:
				return s, fmt.Errorf("redis commandstats %s: %s=%q", name, k, v)
			case k == "calls":
				s.Calls[name] = n
			default:
				s.Usec[name] = n
			}
		}
	}
	var seen int
	for line := range strings.Lines(cpu) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return s, fmt.Errorf("redis cpu %s=%q", k, v)
		}
		s.CPU += time.Duration(f * float64(time.Second))
		seen++
	}
	if seen != 2 {
		return s, errors.New("redis INFO cpu: no used_cpu_sys/used_cpu_user")
	}
	return s, nil
}
