package stack

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sesgate/sesgate/internal/bench"
	"github.com/sesgate/sesgate/internal/sestest"
)

// SES is the in-process SES v2 test server, its handler wrapped in a
// timer.
type SES struct {
	Server *sestest.Server
	Timer  *bench.SESTimer
	URL    string // http://127.0.0.1:port
	hs     *http.Server
}

// StartSES serves the SES test server on a free loopback port, adding
// latency to every request.
func StartSES(latency time.Duration, log *slog.Logger) (*SES, error) {
	srv := sestest.New(sestest.Options{
		AccessKeyID: AccessKey, SecretAccessKey: SecretKey, Region: Region,
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
	return &SES{Server: srv, Timer: timer, URL: "http://" + ln.Addr().String(), hs: hs}, nil
}

// Close stops the server.
func (s *SES) Close() {
	s.Server.Close()
	_ = s.hs.Close()
}

// ServeOn serves h on a free loopback port; it returns the server and its
// base URL.
func ServeOn(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	go func() { _ = hs.Serve(ln) }()
	return hs, "http://" + ln.Addr().String(), nil
}
