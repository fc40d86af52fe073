package feedback

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway/httpapi"
)

// stallServer is the SNS handler on the HTTP front end's server and
// listener (httpapi.NewServer over httpapi.LimitListener), as serve wires
// it, on loopback.
func stallServer(t *testing.T, opts SNSOptions, lopts httpapi.ListenerOptions) (string, *sink) {
	t.Helper()
	good, _ := testKeys()
	sk := &sink{}
	in, err := NewIngester(IngesterOptions{Processor: sk, Tenants: tenants{"t1": true}})
	if err != nil {
		t.Fatal(err)
	}
	opts.TopicARNs = []string{testTopic}
	opts.Ingester = in
	opts.Verifier = NewVerifier(VerifierOptions{Fetcher: &fetcher{certs: map[string]*x509.Certificate{testCertURL: good.cert}}})
	opts.Confirmer = &confirmer{}
	h, err := NewSNSHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll, err := httpapi.LimitListener(l, lopts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(httpapi.ServerOptions{Handler: h})
	go func() { _ = srv.Serve(ll) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	})
	return l.Addr().String(), sk
}

// stalled is one connection that sent part of a body and stopped.
type stalled struct {
	start time.Time
	end   time.Time // when the server answered or closed
}

// TestSNSStalledBodies is the flood of SNS posts that send part of a
// large body and stop: many connections from one address, each declaring
// 256 KiB and sending 200 KiB. Memory stays bounded (the per-source
// connection cap and the SNS body budget), every stalled body is cut
// within the body timeout (not the server's 2-minute read timeout), and a
// signed notification from another address is processed meanwhile.
func TestSNSStalledBodies(t *testing.T) {
	const (
		attackers   = 400
		declared    = MaxSNSBodyBytes
		sent        = 200 << 10
		bodyTimeout = 2 * time.Second
		perSource   = 64
	)
	addr, sk := stallServer(t, SNSOptions{BodyTimeout: bodyTimeout},
		httpapi.ListenerOptions{MaxConns: 1000, MaxConnsPerSource: perSource})

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	var peakMu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakMu.Lock()
			peak = max(peak, ms.HeapInuse)
			peakMu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	partial := []byte(`{"Type":"Notification","MessageId":"x","Message":"` + strings.Repeat("A", sent-50))
	results := make([]stalled, attackers)
	var resMu sync.Mutex
	var wg sync.WaitGroup
	for i := range attackers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
		resMu.Lock()
		results[i].start = time.Now()
		resMu.Unlock()
		fmt.Fprintf(c, "POST /v1/events/sns HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nx-amz-sns-message-type: Notification\r\nContent-Length: %d\r\n\r\n", declared)
		wg.Go(func() {
			_, _ = c.Write(partial) // then nothing more
		})
		wg.Go(func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(c)) // until the server answers and closes
			resMu.Lock()
			results[i].end = time.Now()
			resMu.Unlock()
		})
	}

	// A signed notification from another address, while they stall.
	good, _ := testKeys()
	note := mustJSON(notification(good, "2", "legit-1", testTopic, testCertURL, sesEvent("Bounce", "t1", time.Now(), "a@x.example"), time.Now()))
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	resp, err := client.Post("http://"+addr+"/v1/events/sns", "text/plain", strings.NewReader(note))
	if err != nil {
		t.Fatalf("legitimate notification: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(sk.Events()) != 1 {
		t.Fatalf("legitimate notification: %s, %d events processed", resp.Status, len(sk.Events()))
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	limit := bodyTimeout + 10*time.Second // generous: the bound is the timeout, not the slack
	select {
	case <-done:
	case <-time.After(limit + 5*time.Second):
	}
	close(stopSampling)
	<-sampled
	grew := int64(peak - base)
	slow := 0
	var longest time.Duration
	resMu.Lock()
	defer resMu.Unlock()
	for _, r := range results {
		if r.end.IsZero() {
			slow++
			continue
		}
		longest = max(longest, r.end.Sub(r.start))
		if r.end.Sub(r.start) > limit {
			slow++
		}
	}
	t.Logf("%d stalled connections of %d KiB: heap grew %.1f MiB; longest held %v", attackers, sent>>10, float64(grew)/(1<<20), longest.Round(time.Millisecond))
	if slow > 0 {
		t.Errorf("%d of %d stalled connections still held after %v (body timeout %v)", slow, attackers, limit, bodyTimeout)
	}
	if grew > 40<<20 {
		t.Errorf("heap grew %.1f MiB, want at most 40 MiB", float64(grew)/(1<<20))
	}
}
