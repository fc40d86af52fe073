package stack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// RepoRoot returns the directory of the sesgate module's go.mod at or above
// the working directory.
func RepoRoot() (string, error) {
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

// Binary returns the sesgate binary to run: the given path, else one
// built from the repository into dir, else sesgate on PATH.
func Binary(ctx context.Context, given, dir string, stderr io.Writer) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("--sesgate: %w", err)
		}
		return given, nil
	}
	root, err := RepoRoot()
	if err != nil {
		if p, lerr := exec.LookPath("sesgate"); lerr == nil {
			return p, nil
		}
		return "", fmt.Errorf("no sesgate binary: run from the repository, give --sesgate PATH, or put sesgate on PATH (%v)", err)
	}
	out := filepath.Join(dir, "sesgate")
	fmt.Fprintf(stderr, "building %s/cmd/sesgate ...\n", root)
	ctx, cancel := context.WithTimeout(ctx, BuildTimeout)
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

// GatewayOptions are how the gateway is started.
type GatewayOptions struct {
	Bin        string // the sesgate binary
	Dir        string // holds the data directory and gateway.log
	SESURL     string
	RedisURL   string // empty: the embedded store
	ConfigPath string // policy file; none: the dev tenant
	TLSCert    string
	TLSKey     string
	LogLevel   string
	Env        []string // extra environment
}

// Gateway is a started `sesgate serve`.
type Gateway struct {
	*Proc
	SMTPAddr  string
	HTTPURL   string // base, http://127.0.0.1:port
	AdminAddr string
	Token     string // the dev tenant's, without a policy file
}

// StartGateway runs `sesgate serve` on free loopback ports, sending to the
// SES server at o.SESURL, and waits until it answers ready.
func StartGateway(ctx context.Context, o GatewayOptions) (*Gateway, error) {
	smtpAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(o.Dir, "gateway-data")
	args := []string{"serve", "--data-dir", dataDir, "--smtp-addr", smtpAddr, "--http-addr", httpAddr,
		"--sink", "ses", "--log-level", o.LogLevel, "--shutdown-timeout", "5s", "--domain", "sesgate-bench.localhost"}
	if o.ConfigPath != "" {
		args = append(args, "--config", o.ConfigPath)
	}
	if o.TLSCert != "" {
		args = append(args, "--tls-cert", o.TLSCert, "--tls-key", o.TLSKey)
	}
	cmd := exec.Command(o.Bin, args...)
	cmd.Env = ChildEnv(
		"AWS_ACCESS_KEY_ID="+AccessKey, "AWS_SECRET_ACCESS_KEY="+SecretKey, "AWS_REGION="+Region,
		"AWS_ENDPOINT_URL_SESV2="+o.SESURL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(o.Dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(o.Dir, "no-aws-credentials"),
	)
	// The admin listener (metrics) on a free port, not the default one
	// another gateway on this machine may hold.
	cmd.Env = append(cmd.Env, "SESGATE_ADMIN_ADDR="+adminAddr)
	// The load generator is one source on purpose (-c up to 512 SMTP
	// connections from 127.0.0.1): lift the per-source cap to the global one.
	cmd.Env = append(cmd.Env, "SESGATE_SMTP_MAX_CONNS_PER_SOURCE=1000")
	cmd.Env = append(cmd.Env, o.Env...)
	if o.RedisURL != "" {
		// The Redis store needs the first-contact HMAC key shared by the
		// replicas; this gateway is alone, so a fresh one will do.
		cmd.Env = append(cmd.Env, "SESGATE_REDIS_URL="+o.RedisURL, "SESGATE_RECIPIENT_KEY="+rand.Text())
	}
	p, err := startProc("sesgate", filepath.Join(o.Dir, "gateway.log"), cmd)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Proc: p, SMTPAddr: smtpAddr, HTTPURL: "http://" + httpAddr, AdminAddr: adminAddr}
	client := &http.Client{Timeout: time.Second}
	err = p.waitReady(ctx, func() error {
		resp, err := client.Get(g.HTTPURL + "/readyz")
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
		p.Stop()
		return nil, err
	}
	if tok := adminToken(o.Dir, dataDir); o.RedisURL != "" && tok != "" {
		// Measure the steady state: suppression checks and the freeze
		// answered from the replica's memory, not the reads it does while
		// its view is built (seconds per million suppressed addresses).
		if err := waitViewReady(ctx, client, "http://"+adminAddr+"/metrics", tok); err != nil {
			p.Stop()
			return nil, err
		}
	}
	if o.ConfigPath == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "dev-token"))
		if err != nil {
			p.Stop()
			return nil, fmt.Errorf("dev token: %w", err)
		}
		g.Token = strings.TrimSpace(string(b))
	}
	return g, nil
}

// WriteLimitedPolicy mints a token for the tenant `limited` with the
// sesgate binary and writes a policy file giving it a rate of one message
// per second. It returns the file and the token.
func WriteLimitedPolicy(ctx context.Context, bin, dir string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "token", "new", "--tenant", "limited")
	cmd.Env = ChildEnv()
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

// ViewReadyTimeout bounds the wait for a Redis-store gateway's view (10
// million suppressed addresses take about 20 s to scan on 2 cores).
const ViewReadyTimeout = 5 * time.Minute

// AdminTokenFile is the admin token's file: the one the bench writes
// beside its policy (0600) and the one a gateway without a policy mints in
// its data directory.
const AdminTokenFile = "admin-token"

// adminToken is the admin token the bench wrote beside its policy
// (AdminTokenFile in dir) or the one a gateway without a policy mints
// in its data directory; "" if neither exists (then nothing waits for the
// view: a policy without suppressions builds it in milliseconds).
func adminToken(dir, dataDir string) string {
	for _, p := range []string{filepath.Join(dir, AdminTokenFile), filepath.Join(dataDir, AdminTokenFile)} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// waitViewReady polls the gateway's metrics until sesgate_store_view_ready
// reads 1.
func waitViewReady(ctx context.Context, client *http.Client, url, token string) error {
	ctx, cancel := context.WithTimeout(ctx, ViewReadyTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if rerr == nil {
				for _, line := range strings.Split(string(body), "\n") {
					if strings.TrimSpace(line) == "sesgate_store_view_ready 1" {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway's suppression view not ready after %s (sesgate_store_view_ready at %s)", ViewReadyTimeout, url)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
