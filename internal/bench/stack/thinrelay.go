package stack

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ThinRelay is a started `sesgate-bench thin-relay` (package thinrelay): a
// child process, so its CPU is read from /proc like the gateway's.
type ThinRelay struct {
	*Proc
	SMTPAddr string
}

// StartThinRelay runs `bin thin-relay` (bin: this tool's own executable) on
// a free loopback port, sending to the SES server at sesURL with the bench
// key pair, and waits until it greets.
func StartThinRelay(ctx context.Context, bin, dir, sesURL string) (*ThinRelay, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "thin-relay", "--smtp-addr", addr, "--ses-endpoint", sesURL)
	cmd.Env = ChildEnv(
		"AWS_ACCESS_KEY_ID="+AccessKey, "AWS_SECRET_ACCESS_KEY="+SecretKey, "AWS_REGION="+Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
	)
	p, err := startProc("thin-relay", filepath.Join(dir, "thin-relay.log"), cmd)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, func() error { return greets(addr) }); err != nil {
		p.Stop()
		return nil, err
	}
	return &ThinRelay{Proc: p, SMTPAddr: addr}, nil
}

// greets checks that an SMTP server at addr sends its 220 greeting.
func greets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}
