// Package memory is `sesgate-bench memory`: what the gateway holds in
// resident memory with many idle authenticated SMTP sessions, and the peak a
// large message costs over SMTP, HTTP message/rfc822 and the HTTP JSON API.
//
// It starts what it measures on free loopback ports (package stack): the
// SES v2 test server in this process, optionally a redis-server, and one
// fresh `sesgate serve` per phase, so no phase inherits another's heap.
// Figures come from /proc/<pid>/status of the gateway: VmRSS, and VmHWM
// after resetting it with /proc/<pid>/clear_refs ("5"), so a peak is the
// most the gateway held while one message went through.
//
// Invariants:
//   - Every phase is bounded: connections and sends have deadlines, the
//     session count and message size are bounded by the flags' checks.
//   - A message counts only when the gateway answered it 250 or 200, which
//     it does only after SES returned a MessageId.
package memory

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/internal/bench/stack"
	"github.com/sesgate/sesgate/internal/cli"
)

// Bounds of the flags.
const (
	// MaxSessions is the gateway's SMTP connection limit
	// (smtpd.DefaultMaxConnections).
	MaxSessions = 1000
	// MaxSize is SES's raw message limit (go-smtp refuses a message of
	// exactly the gateway's limit over SMTP: its reader stops at the limit
	// before the end-of-data line).
	MaxSize = 40 << 20
	// DefaultSize is a 40 MB message, under every limit.
	DefaultSize = 40_000_000
	// MinSize leaves room for the header section.
	MinSize = 1 << 10

	dialWorkers = 32
	opTimeout   = 2 * time.Minute // one connection's setup, or one send
	settle      = 500 * time.Millisecond
)

// Settings are the flags of a run.
type Settings struct {
	Sessions    int
	Size        int64
	Phases      string // comma-separated: sessions, smtp, http, json
	Sesgate     string
	StartRedis  bool
	LogLevel    string
	Keep        bool
	JSONPath    string
	HeapProfile string
}

// Report is the result of a run.
type Report struct {
	Load     string          `json:"load"` // /proc/loadavg at the start
	Store    string          `json:"store"`
	Sessions *SessionsReport `json:"sessions,omitempty"`
	Messages []MessageReport `json:"messages,omitempty"`
}

// SessionsReport is the idle-sessions phase.
type SessionsReport struct {
	N          int   `json:"n"`
	BeforeRSS  int64 `json:"before_rss_bytes"`
	WithRSS    int64 `json:"with_rss_bytes"`
	PerSession int64 `json:"per_session_bytes"`
}

// MessageReport is one large message through one path.
type MessageReport struct {
	Path      string  `json:"path"`
	Size      int64   `json:"message_bytes"` // the raw message
	Request   int64   `json:"request_bytes"` // what went over the wire to the gateway
	BaseRSS   int64   `json:"base_rss_bytes"`
	Peak      int64   `json:"peak_rss_bytes"`
	Multiple  float64 `json:"peak_over_base_per_message_byte"`
	MessageID string  `json:"ses_message_id"`
}

// Command parses args and runs; it is the `memory` subcommand.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := Parse(args, stderr)
	if err != nil {
		return err
	}
	rep, err := Run(ctx, s, stderr)
	if err != nil {
		return err
	}
	rep.Text(stdout)
	if s.JSONPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(s.JSONPath, append(b, '\n'), 0o644)
	}
	return nil
}

// Parse reads and checks the flags.
func Parse(args []string, stderr io.Writer) (*Settings, error) {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &Settings{}
	fs.IntVar(&s.Sessions, "sessions", 1000, fmt.Sprintf("idle authenticated SMTP sessions, 1 to %d", MaxSessions))
	fs.Int64Var(&s.Size, "size", DefaultSize, fmt.Sprintf("raw message bytes of the large message, %d to %d", MinSize, MaxSize))
	fs.StringVar(&s.Phases, "phases", "sessions,smtp,http,json", "which phases, comma-separated: sessions, smtp, http (message/rfc822), json (/v1/messages with an attachment)")
	fs.StringVar(&s.Sesgate, "sesgate", "", "sesgate binary to start; default: go build ./cmd/sesgate from the repository, else sesgate on PATH")
	fs.BoolVar(&s.StartRedis, "start-redis", false, "the Redis store (a redis-server on a free loopback port) instead of the embedded one")
	fs.StringVar(&s.LogLevel, "gateway-log-level", "warn", "log level of the started gateways (their log goes to a file)")
	fs.BoolVar(&s.Keep, "keep", false, "keep the temporary directory (gateway logs) and print its name")
	fs.StringVar(&s.JSONPath, "json", "", "write the report as JSON to this file")
	fs.StringVar(&s.HeapProfile, "heap-profile", "", "write a heap profile of the gateway with the idle sessions open to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, cli.UsageError{Msg: err.Error()}
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "memory takes no arguments")
	}
	if s.Sessions < 1 || s.Sessions > MaxSessions {
		problems = append(problems, fmt.Sprintf("--sessions must be 1 to %d", MaxSessions))
	}
	if s.Size < MinSize || s.Size > MaxSize {
		problems = append(problems, fmt.Sprintf("--size must be %d to %d", MinSize, MaxSize))
	}
	for p := range strings.SplitSeq(s.Phases, ",") {
		switch p {
		case "sessions", "smtp", "http", "json":
		default:
			problems = append(problems, fmt.Sprintf("--phases: unknown phase %q", p))
		}
	}
	if len(problems) > 0 {
		return nil, cli.UsageError{Msg: strings.Join(problems, "; ")}
	}
	return s, nil
}

func (s *Settings) has(phase string) bool {
	for p := range strings.SplitSeq(s.Phases, ",") {
		if p == phase {
			return true
		}
	}
	return false
}

// run is what the phases share.
type run struct {
	s        *Settings
	stderr   io.Writer
	dir      string
	bin      string
	ses      *stack.SES
	redisURL string
}

// Run starts the stack and runs the phases s asks for.
func Run(ctx context.Context, s *Settings, stderr io.Writer) (*Report, error) {
	r := &run{s: s, stderr: stderr}
	var err error
	if r.dir, err = os.MkdirTemp("", "sesgate-bench-memory-"); err != nil {
		return nil, err
	}
	if s.Keep {
		defer fmt.Fprintf(stderr, "kept %s\n", r.dir)
	} else {
		defer os.RemoveAll(r.dir)
	}
	if r.bin, err = stack.Binary(ctx, s.Sesgate, r.dir, stderr); err != nil {
		return nil, err
	}
	if r.ses, err = stack.StartSES(0, slog.New(slog.DiscardHandler)); err != nil {
		return nil, err
	}
	defer r.ses.Close()
	rep := &Report{Store: "embedded"}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.TrimSpace(string(b))
	}
	if s.StartRedis {
		var redis *stack.Proc
		if redis, r.redisURL, err = stack.StartRedis(ctx, r.dir); err != nil {
			return nil, err
		}
		defer redis.Stop()
		rep.Store = "redis"
	}
	if s.has("sessions") {
		if rep.Sessions, err = r.sessions(ctx); err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
	}
	msg := Message(s.Size)
	for _, p := range []string{"smtp", "http", "json"} {
		if !s.has(p) {
			continue
		}
		m, err := r.message(ctx, p, msg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rep.Messages = append(rep.Messages, *m)
	}
	return rep, nil
}

// gateway starts a fresh gateway; pprofAddr, when not empty, serves its
// profiles.
func (r *run) gateway(ctx context.Context, pprofAddr string) (*stack.Gateway, error) {
	o := stack.GatewayOptions{Bin: r.bin, Dir: r.dir, SESURL: r.ses.URL, RedisURL: r.redisURL, LogLevel: r.s.LogLevel}
	// The defaults already allow a 40 MiB message (SMTP, message/rfc822 and
	// the SES sink) and 1,000 SMTP connections; the stack lifts the
	// per-source cap to 1,000. Stated here so a change of default shows.
	o.Env = append(o.Env, fmt.Sprintf("SESGATE_MEM_BUDGET=%d", 512<<20))
	if pprofAddr != "" {
		o.Env = append(o.Env, "SESGATE_PPROF_ADDR="+pprofAddr)
	}
	gw, err := stack.StartGateway(ctx, o)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.stderr, "gateway pid %d (SMTP %s, HTTP %s)\n", gw.Pid(), gw.SMTPAddr, gw.HTTPURL)
	return gw, nil
}

// sessions opens s.Sessions authenticated SMTP sessions that then idle,
// and reads the gateway's VmRSS before and with them.
func (r *run) sessions(ctx context.Context) (*SessionsReport, error) {
	var pprofAddr string
	if r.s.HeapProfile != "" {
		var err error
		if pprofAddr, err = stack.FreeAddr(); err != nil {
			return nil, err
		}
	}
	gw, err := r.gateway(ctx, pprofAddr)
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	// One message first, so that what the first message initialises (the
	// SES client and its connection) is in the baseline.
	if _, err := sendSMTP(ctx, gw, Message(4<<10)); err != nil {
		return nil, fmt.Errorf("warm-up message: %w", err)
	}
	time.Sleep(settle)
	before, err := ReadStatus(gw.Pid())
	if err != nil {
		return nil, err
	}
	clients, err := openSessions(ctx, gw, r.s.Sessions)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	time.Sleep(settle)
	with, err := ReadStatus(gw.Pid())
	if err != nil {
		return nil, err
	}
	if pprofAddr != "" {
		if err := fetch(ctx, "http://"+pprofAddr+"/debug/pprof/heap?gc=1", r.s.HeapProfile); err != nil {
			return nil, fmt.Errorf("heap profile: %w", err)
		}
	}
	// Each session must still be alive: a NOOP on every one.
	for i, c := range clients {
		if err := c.Noop(); err != nil {
			return nil, fmt.Errorf("session %d gone after the measurement: %w", i, err)
		}
	}
	return &SessionsReport{N: len(clients), BeforeRSS: before.RSS, WithRSS: with.RSS,
		PerSession: (with.RSS - before.RSS) / int64(len(clients))}, nil
}

// openSessions connects n clients, each EHLO and AUTH PLAIN.
func openSessions(ctx context.Context, gw *stack.Gateway, n int) ([]*smtp.Client, error) {
	clients := make([]*smtp.Client, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range dialWorkers {
		wg.Go(func() {
			for i := range next {
				clients[i], errs[i] = dial(ctx, gw)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	var open []*smtp.Client
	for _, c := range clients {
		if c != nil {
			open = append(open, c)
		}
	}
	return open, errors.Join(errs...)
}

// dial opens one authenticated session.
func dial(ctx context.Context, gw *stack.Gateway) (*smtp.Client, error) {
	d := net.Dialer{Timeout: opTimeout}
	conn, err := d.DialContext(ctx, "tcp", gw.SMTPAddr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(opTimeout))
	c := smtp.NewClient(conn)
	if err := c.Hello("sesgate-bench.localhost"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Auth(sasl.NewPlainClient("", "dev", gw.Token)); err != nil {
		c.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// sendSMTP sends msg in a session of its own; it returns the 250 reply.
func sendSMTP(ctx context.Context, gw *stack.Gateway, msg []byte) (string, error) {
	c, err := dial(ctx, gw)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Mail(From, nil); err != nil {
		return "", err
	}
	if err := c.Rcpt(To, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	return resp.StatusText, nil
}

// fetch saves url to path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: opTimeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Text writes the report for people.
func (rep *Report) Text(w io.Writer) {
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	fmt.Fprintf(w, "gateway memory (store %s; load average %s)\n", rep.Store, rep.Load)
	if s := rep.Sessions; s != nil {
		fmt.Fprintf(w, "idle authenticated SMTP sessions: %d\n", s.N)
		fmt.Fprintf(w, "  VmRSS before %s, with them %s: %.1f KB per session\n", mb(s.BeforeRSS), mb(s.WithRSS), float64(s.PerSession)/1e3)
	}
	for _, m := range rep.Messages {
		fmt.Fprintf(w, "%-5s message %s (request %s): VmRSS %s before, VmHWM %s: peak - base = %s = %.2fx the message\n",
			m.Path, mb(m.Size), mb(m.Request), mb(m.BaseRSS), mb(m.Peak), mb(m.Peak-m.BaseRSS), m.Multiple)
	}
}
