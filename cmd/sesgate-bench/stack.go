package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sesgate/sesgate/internal/bench"
	"github.com/sesgate/sesgate/internal/sestest"
)

// The key pair and region the in-process SES server accepts.
const (
	sesAccessKey = "sesgatebench"
	sesSecretKey = "sesgate-bench-local-secret"
	sesRegion    = "us-east-1"
)

// Bounds of the stack's start and stop.
const (
	buildTimeout = 3 * time.Minute
	readyTimeout = 20 * time.Second
	stopTimeout  = 10 * time.Second
)

// sesServer is the in-process SES v2 test server, its handler wrapped in a
// timer.
type sesServer struct {
	srv   *sestest.Server
	timer *bench.SESTimer
	url   string
	hs    *http.Server
}

func startSES(latency time.Duration, log *slog.Logger) (*sesServer, error) {
	srv := sestest.New(sestest.Options{
		AccessKeyID: sesAccessKey, SecretAccessKey: sesSecretKey, Region: sesRegion,
		Logger: log, MaxMessages: 1000, MaxStoredBytes: 16 << 20,
	})
	srv.SetLatency(latency)
	timer := bench.NewSESTimer(bench.SESTimerOptions{Next: srv})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: timer, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() { _ = hs.Serve(ln) }()
	return &sesServer{srv: srv, timer: timer, url: "http://" + ln.Addr().String(), hs: hs}, nil
}

func (s *sesServer) close() {
	s.srv.Close()
	_ = s.hs.Close()
}

// repoRoot returns the directory of the sesgate module's go.mod at or above
// the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/sesgate/sesgate\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sesgate repository")
		}
		dir = parent
	}
}

// sesgateBinary returns the sesgate binary to run: the given path, else one
// built from the repository into dir, else sesgate on PATH.
func sesgateBinary(ctx context.Context, given, dir string, stderr io.Writer) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("--sesgate: %w", err)
		}
		return given, nil
	}
	root, err := repoRoot()
	if err != nil {
		if p, lerr := exec.LookPath("sesgate"); lerr == nil {
			return p, nil
		}
		return "", fmt.Errorf("no sesgate binary: run from the repository, give --sesgate PATH, or put sesgate on PATH (%v)", err)
	}
	out := filepath.Join(dir, "sesgate")
	fmt.Fprintf(stderr, "building %s/cmd/sesgate ...\n", root)
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/sesgate")
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sesgate: %w\n%s", err, buf.Bytes())
	}
	return out, nil
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// childEnv is the environment of a child process: ours without any
// SESGATE_ or AWS_ setting (so nothing of the user's leaks in, least of all
// real AWS credentials), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SESGATE_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// proc is a child process we started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func startProc(name, logPath string, cmd *exec.Cmd) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, then SIGKILL after stopTimeout.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail returns the end of the process's output, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitReady polls check until it succeeds, the process exits or the time
// is up.
func (p *proc) waitReady(ctx context.Context, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
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
			return fmt.Errorf("%s not ready after %s: %v\n%s", p.name, readyTimeout, err, p.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// gatewayOptions are how the gateway is started.
type gatewayOptions struct {
	bin, dir   string
	sesURL     string
	redisURL   string
	configPath string // policy file; none: the dev tenant
	tlsCert    string
	tlsKey     string
	logLevel   string
	env        []string // extra environment
}

// gatewayProc is a started `sesgate serve`.
type gatewayProc struct {
	*proc
	smtpAddr  string
	httpURL   string // base, http://127.0.0.1:port
	adminAddr string
	token     string // the dev tenant's, without a policy file
}

func startGateway(ctx context.Context, o gatewayOptions) (*gatewayProc, error) {
	smtpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(o.dir, "gateway-data")
	args := []string{"serve", "--data-dir", dataDir, "--smtp-addr", smtpAddr, "--http-addr", httpAddr,
		"--sink", "ses", "--log-level", o.logLevel, "--shutdown-timeout", "5s", "--domain", "sesgate-bench.localhost"}
	if o.configPath != "" {
		args = append(args, "--config", o.configPath)
	}
	if o.tlsCert != "" {
		args = append(args, "--tls-cert", o.tlsCert, "--tls-key", o.tlsKey)
	}
	cmd := exec.Command(o.bin, args...)
	cmd.Env = childEnv(
		"AWS_ACCESS_KEY_ID="+sesAccessKey, "AWS_SECRET_ACCESS_KEY="+sesSecretKey, "AWS_REGION="+sesRegion,
		"AWS_ENDPOINT_URL_SESV2="+o.sesURL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(o.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(o.dir, "no-aws-credentials"),
	)
	// The admin listener (metrics) on a free port, not the default one
	// another gateway on this machine may hold.
	cmd.Env = append(cmd.Env, "SESGATE_ADMIN_ADDR="+adminAddr)
	cmd.Env = append(cmd.Env, o.env...)
	if o.redisURL != "" {
		// The Redis store needs the first-contact HMAC key shared by the
		// replicas; this gateway is alone, so a fresh one will do.
		cmd.Env = append(cmd.Env, "SESGATE_REDIS_URL="+o.redisURL, "SESGATE_RECIPIENT_KEY="+rand.Text())
	}
	p, err := startProc("sesgate", filepath.Join(o.dir, "gateway.log"), cmd)
	if err != nil {
		return nil, err
	}
	g := &gatewayProc{proc: p, smtpAddr: smtpAddr, httpURL: "http://" + httpAddr, adminAddr: adminAddr}
	client := &http.Client{Timeout: time.Second}
	err = p.waitReady(ctx, func() error {
		resp, err := client.Get(g.httpURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	if o.configPath == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "dev-token"))
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("dev token: %w", err)
		}
		g.token = strings.TrimSpace(string(b))
	}
	return g, nil
}

// startRedis runs redis-server on a free loopback port, without
// persistence, in dir.
func startRedis(ctx context.Context, dir string) (*proc, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("--start-redis: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", rdir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	cmd.Env = childEnv()
	p, err := startProc("redis-server", filepath.Join(dir, "redis.log"), cmd)
	if err != nil {
		return nil, "", err
	}
	url := "redis://" + addr
	if err := p.waitReady(ctx, func() error { _, err := bench.RedisStats(ctx, url); return err }); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, url, nil
}

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost
// and returns the files and a pool that trusts it.
func writeCert(dir string) (certPath, keyPath string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sesgate-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool, nil
}

// tlsClientConfig trusts the pool (the generated certificate) or, when
// insecure, anything.
func tlsClientConfig(pool *x509.CertPool, insecure bool) *tls.Config {
	return &tls.Config{RootCAs: pool, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // the user asked, for a self-signed target
}

// writeLimitedPolicy mints a token for the tenant `limited` with the
// sesgate binary and writes a policy file giving it a rate of one message
// per second. It returns the file and the token.
func writeLimitedPolicy(ctx context.Context, bin, dir string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "token", "new", "--tenant", "limited")
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("sesgate token new: %w", err)
	}
	var token, line string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		t := sc.Text()
		if _, after, ok := strings.Cut(t, "token (shown once, give it to the app): "); ok {
			token = strings.TrimSpace(after)
		}
		if after, ok := strings.CutPrefix(strings.TrimSpace(t), "- "); ok {
			line = after
		}
	}
	if token == "" || line == "" {
		return "", "", fmt.Errorf("sesgate token new: unexpected output (%d bytes)", len(out))
	}
	policy := fmt.Sprintf(`# written by sesgate-bench refuse: one tenant over its limit
tenants:
  - id: limited
    tokens:
      - %s
    identities: ["*"]
    limits:
      rate: 1
      burst: 1
`, line)
	path := filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		return "", "", err
	}
	return path, token, nil
}
