package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server defaults. A JSON message of ~50 MiB must be readable from a slow
// client within ReadTimeout, and WriteTimeout (which in net/http runs from
// the end of the request headers) must cover the body read plus the submit.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 2 * time.Minute
	DefaultWriteTimeout      = DefaultReadTimeout + DefaultSubmitTimeout + 10*time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// ServerOptions configure NewServer. Zero values take the defaults above;
// nothing is left unlimited.
type ServerOptions struct {
	Addr              string
	Handler           http.Handler
	Logger            *slog.Logger // net/http's own errors, at Warn
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// BaseContext, when set, is the parent of every request context;
	// cancelling it cancels the requests in flight.
	BaseContext func(net.Listener) context.Context
}

// NewServer returns an *http.Server with every timeout and size set.
func NewServer(opts ServerOptions) *http.Server {
	orDefault := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	s := &http.Server{
		Addr:              opts.Addr,
		Handler:           opts.Handler,
		ReadHeaderTimeout: orDefault(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(opts.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      orDefault(opts.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       orDefault(opts.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		BaseContext:       opts.BaseContext,
	}
	if s.MaxHeaderBytes <= 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.Logger != nil {
		s.ErrorLog = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	}
	return s
}
