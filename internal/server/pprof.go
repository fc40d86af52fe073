package server

// Profiling: with SESGATE_PPROF_ADDR set to a loopback address, serve
// exposes net/http/pprof there (its own listener, never the mail or admin
// ones), for `go tool pprof` under load. Off by default.

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// startPprof serves the profiling endpoints on SESGATE_PPROF_ADDR, which
// must be a loopback address; it returns the function that stops them.
func startPprof(log *slog.Logger) (stop func(), err error) {
	addr := os.Getenv("SESGATE_PPROF_ADDR")
	if addr == "" {
		return func() {}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, errors.New("SESGATE_PPROF_ADDR: want a loopback host:port")
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, errors.New("SESGATE_PPROF_ADDR: profiling is served on loopback only")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 5 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	log.Warn("profiling endpoints served (SESGATE_PPROF_ADDR)", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
