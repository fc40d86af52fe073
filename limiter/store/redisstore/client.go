package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ConnOptions select and tune the Redis deployment. Either URL or Addrs.
type ConnOptions struct {
	// URL: redis:// or rediss:// for a standalone server, the same with
	// ?master_name=NAME for Sentinel (the host is a sentinel; more with
	// &addr=host:port), redis+cluster:// or rediss+cluster:// for a Cluster
	// (more seed nodes with &addr=host:port). Query parameters are
	// go-redis's (dial_timeout, pool_size, ...).
	URL string
	// Addrs: one address is a standalone server, several a Cluster, or
	// sentinels when MasterName is set.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	// Timeouts of one network operation; default 1 s dial, 500 ms read
	// and write. A call's context deadline, when earlier, wins: every
	// client is built with go-redis's ContextTimeoutEnabled, so the
	// admission's call timeout (50 ms by default) bounds the socket read
	// itself, not only the wait for a pooled connection.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	PoolSize     int // default go-redis's (10 per CPU)
}

// NewClient builds the UniversalClient for o. Each new connection runs
// onConnect (nil for none); Store uses it to preload its scripts after a
// reconnect or failover.
func NewClient(o ConnOptions, onConnect func(ctx context.Context, cn *redis.Conn) error) (redis.UniversalClient, error) {
	dial, read, write := o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	if dial <= 0 {
		dial = time.Second
	}
	if read <= 0 {
		read = 500 * time.Millisecond
	}
	if write <= 0 {
		write = 500 * time.Millisecond
	}
	switch {
	case o.URL != "" && len(o.Addrs) > 0:
		return nil, errors.New("redisstore: set a URL or addresses, not both")
	case o.URL != "":
		u, err := url.Parse(o.URL)
		if err != nil {
			return nil, fmt.Errorf("redisstore: URL: %w", err)
		}
		scheme, cluster := strings.CutSuffix(u.Scheme, "+cluster")
		if scheme != "redis" && scheme != "rediss" {
			return nil, fmt.Errorf("redisstore: URL scheme %q: want redis, rediss, redis+cluster or rediss+cluster", u.Scheme)
		}
		u.Scheme = scheme
		switch {
		case cluster:
			co, err := redis.ParseClusterURL(u.String())
			if err != nil {
				return nil, fmt.Errorf("redisstore: URL: %w", err)
			}
			co.DialTimeout, co.ReadTimeout, co.WriteTimeout = dial, read, write
			co.OnConnect = onConnect
			co.ContextTimeoutEnabled = true
			if o.PoolSize > 0 {
				co.PoolSize = o.PoolSize
			}
			return redis.NewClusterClient(co), nil
		case u.Query().Get("master_name") != "":
			fo, err := redis.ParseFailoverURL(u.String())
			if err != nil {
				return nil, fmt.Errorf("redisstore: URL: %w", err)
			}
			fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout = dial, read, write
			fo.OnConnect = onConnect
			fo.ContextTimeoutEnabled = true
			if o.PoolSize > 0 {
				fo.PoolSize = o.PoolSize
			}
			return redis.NewFailoverClient(fo), nil
		default:
			so, err := redis.ParseURL(u.String())
			if err != nil {
				return nil, fmt.Errorf("redisstore: URL: %w", err)
			}
			so.DialTimeout, so.ReadTimeout, so.WriteTimeout = dial, read, write
			so.OnConnect = onConnect
			so.ContextTimeoutEnabled = true
			if o.PoolSize > 0 {
				so.PoolSize = o.PoolSize
			}
			return redis.NewClient(so), nil
		}
	case len(o.Addrs) > 0:
		return redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: o.Addrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password,
			DialTimeout: dial, ReadTimeout: read, WriteTimeout: write, PoolSize: o.PoolSize,
			OnConnect: onConnect, ContextTimeoutEnabled: true,
		}), nil
	}
	return nil, errors.New("redisstore: no URL or addresses")
}

// Dial connects to Redis as o says and returns a Store whose scripts are
// loaded again on every new connection (after a restart or a failover the
// new primary may not have them: no NOSCRIPT burst).
func Dial(ctx context.Context, o ConnOptions, opts Options) (*Store, error) {
	admit := admitScript()
	onConnect := func(ctx context.Context, cn *redis.Conn) error {
		// Best effort: Script.Run falls back to EVAL anyway (usage.lua,
		// run once per tenant after an outage, is left to that).
		_ = cn.ScriptLoad(ctx, admit).Err()
		_ = cn.ScriptLoad(ctx, leaseSrc).Err()
		return nil
	}
	c, err := NewClient(o, onConnect)
	if err != nil {
		return nil, err
	}
	opts.Client = c
	s, err := New(ctx, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}
