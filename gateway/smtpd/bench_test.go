package smtpd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
)

// BenchmarkSubmitReusedConnection sends b.N messages over one authenticated
// connection (MAIL, RCPT, DATA each time) to an in-memory sink and reports
// msgs/s: the SMTP front end's own cost per message.
func BenchmarkSubmitReusedConnection(b *testing.B) {
	sink := &testSink{count: true}
	logger := slog.New(slog.DiscardHandler)
	p := gateway.NewPipeline(gateway.Options{Auth: &testAuth{tokens: testTenants()}, Sink: sink, Logger: logger})
	srv, err := New(Options{Pipeline: p, Logger: logger, Domain: "mx.test"})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	c, err := smtp.Dial(l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "acme", acmeToken)); err != nil {
		b.Fatal(err)
	}
	msg := message("app@acme.example", "to@dest.example", "", strings.Repeat("a line of a typical message body\r\n", 60))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := c.Mail("app@acme.example", nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Rcpt("to@dest.example", nil); err != nil {
			b.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(w, msg); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.n != b.N {
		b.Fatalf("sink got %d messages, want %d", sink.n, b.N)
	}
}
