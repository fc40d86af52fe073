// Package gatewaytest starts sesgate's front ends over a pipeline for the
// tests of other packages.
package gatewaytest

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/gateway/smtpd"
)

// FrontEnds starts an SMTP server (domain mx.test) and the HTTP API, both on
// 127.0.0.1:0 and sharing p, and stops them when t ends.
func FrontEnds(t testing.TB, p *gateway.Pipeline) (smtpAddr, httpURL string) {
	t.Helper()
	srv, err := smtpd.New(smtpd.Options{Pipeline: p, Domain: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	hs := httptest.NewServer(httpapi.New(httpapi.Options{Pipeline: p}))
	t.Cleanup(hs.Close)
	return l.Addr().String(), hs.URL
}
