package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/config"
)

// reloaderOptions are what the policy reload is built from.
type reloaderOptions struct {
	Path    string        // the policy file; empty: no reload
	Poll    time.Duration // how often the file is checked; 0: SIGHUP only
	Admin   *adminSide    // serves the new tenants, tokens and admin tokens
	Reloads *prometheus.CounterVec
	// OnReload is told of every accepted policy (the breakers' tenants and
	// settings).
	OnReload func(*config.Policy, []*gateway.Tenant)
	// Check, when set, refuses a valid policy this process cannot serve
	// (AWS keys without a server key).
	Check  func(*config.Policy) error
	Logger *slog.Logger
}

// reloader reloads the policy file on SIGHUP and when it changes (polled):
// tenants, tokens, admin tokens and limits are swapped at once; an invalid
// file changes nothing.
type reloader struct {
	reloaderOptions
	mu    sync.Mutex // the file's fingerprint
	print fileStamp
}

// newReloader fingerprints the file serve started with.
func newReloader(o reloaderOptions) *reloader {
	r := &reloader{reloaderOptions: o}
	if o.Path != "" {
		r.print, _ = stampFile(o.Path)
	}
	return r
}

// fileStamp identifies a policy file's content.
type fileStamp struct {
	mtime time.Time
	size  int64
	sum   [sha256.Size]byte
}

func stampFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mtime: fi.ModTime(), size: fi.Size(), sum: sha256.Sum256(data)}, nil
}

// run reloads on SIGHUP and when the file changes, until ctx ends.
func (r *reloader) run(ctx context.Context) {
	if r.Path == "" {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if r.Poll > 0 {
		t := time.NewTicker(r.Poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(ctx, "SIGHUP")
		case <-tick:
			fi, err := os.Stat(r.Path)
			r.mu.Lock()
			same := err == nil && fi.ModTime().Equal(r.print.mtime) && fi.Size() == r.print.size
			r.mu.Unlock()
			if !same {
				r.reload(ctx, "file changed")
			}
		}
	}
}

// reload reads the policy file and swaps the policy; an invalid file
// changes nothing.
func (r *reloader) reload(ctx context.Context, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := stampFile(r.Path)
	if err == nil && stamp.sum == r.print.sum {
		r.print = stamp // touched, same content
		r.Reloads.WithLabelValues("unchanged").Inc()
		return
	}
	var p *config.Policy
	if err == nil {
		p, err = config.Load(r.Path)
	}
	if err == nil && r.Check != nil {
		err = r.Check(p)
	}
	if err != nil {
		r.print = stamp // do not retry the same broken content every poll
		r.Reloads.WithLabelValues("invalid").Inc()
		var ce *config.Error
		if errors.As(err, &ce) {
			r.Logger.Error("policy reload rejected; the old policy stays", "why", why, "problems", ce.Problems)
		} else {
			r.Logger.Error("policy reload rejected; the old policy stays", "why", why, "err", err.Error())
		}
		return
	}
	tenants, entries := p.Build()
	adminTokens := r.Admin.setPolicy(ctx, p, tenants, entries)
	r.print = stamp
	r.Reloads.WithLabelValues("ok").Inc()
	if r.OnReload != nil {
		r.OnReload(p, tenants)
	}
	r.Logger.Info("policy reloaded (tenants, tokens, admin tokens, limits; listeners and store settings need a restart)",
		"why", why, "tenants", len(tenants), "tokens", len(entries), "admin_tokens", adminTokens)
}
