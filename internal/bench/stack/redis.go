package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/sesgate/sesgate/internal/bench"
)

// StartRedis runs redis-server on a free loopback port, without
// persistence, in dir.
func StartRedis(ctx context.Context, dir string) (*Proc, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("--start-redis: %w", err)
	}
	addr, err := FreeAddr()
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
	cmd.Env = ChildEnv()
	p, err := startProc("redis-server", filepath.Join(dir, "redis.log"), cmd)
	if err != nil {
		return nil, "", err
	}
	url := "redis://" + addr
	if err := p.waitReady(ctx, func() error { _, err := bench.RedisStats(ctx, url); return err }); err != nil {
		p.Stop()
		return nil, "", err
	}
	return p, url, nil
}
