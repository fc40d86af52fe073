package smtpd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// bigMessage returns a message from acme of exactly size bytes, CRLF line
// endings, no line starting with a dot.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(message("app@acme.example", "to@dest.example", "", ""))
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len()+len(line) <= size-2 {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("x", size-b.Len()-2) + "\r\n")
	return b.Bytes()
}

// TestLargeMessageAllocations counts the bytes the process allocates while
// a message of SES's size limit goes through SMTP DATA and the pipeline to
// the sink (which hashes it in place): the body once, not grown by
// doubling and then copied by the preparation (about 4x before).
func TestLargeMessageAllocations(t *testing.T) {
	h := newHarness(t)
	h.sink.set(func(k *testSink) { k.digest = true })
	size := gateway.DefaultMaxMessageBytes - 1 // go-smtp's reader refuses exactly its limit
	if raceEnabled {
		size = 8 << 20
	}
	msg := bigMessage(size)
	c := h.dial(t)
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c.login("acme", acmeToken)
	c.cmd("MAIL FROM:<app@acme.example> SIZE=1000", "250") // a declared size that is wrong changes nothing
	c.cmd("RCPT TO:<to@dest.example>", "250")
	c.cmd("DATA", "354")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := c.tp.DotWriter()
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.expect("250 2.0.0 Ok: queued as ")
	runtime.ReadMemStats(&after)

	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte message over SMTP allocated %d bytes (%.2fx)", size, alloc, float64(alloc)/float64(size))
	// The body once, a tenth for the rest, and a fixed 4 MiB (the first
	// MiB grown by doubling, go-smtp's and the pipeline's own).
	if limit := uint64(size) + uint64(size)/10 + 4<<20; alloc > limit {
		t.Fatalf("a %d-byte message allocated %d bytes, more than %d", size, alloc, limit)
	}
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	if len(h.sink.digests) != 1 || h.sink.digests[0] != sha256.Sum256(msg) {
		t.Fatal("the sink did not get the message as sent")
	}
	if used := h.srv.budget.InUse(); used != 0 {
		t.Fatalf("%d buffered bytes still taken", used)
	}
}

// TestIdleSessionMemory opens authenticated sessions that then idle and
// bounds what each costs the process: heap and goroutine stacks, client
// sockets included (bare connections, no buffers). go-smtp's reader and
// writer buffers (4 KiB each) and the session goroutine's stack are most
// of it.
func TestIdleSessionMemory(t *testing.T) {
	const n = 200
	const perSession = 40 << 10
	h := newHarness(t, func(_ *harness, o *Options) { o.MaxConnectionsPerSource = n })
	login := "EHLO client.test\r\nAUTH PLAIN " + plainIR("acme", acmeToken) + "\r\n"
	open := func() net.Conn {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReaderSize(conn, 16) // the smallest bufio allows
		if _, err := io.WriteString(conn, login); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if strings.HasPrefix(line, "235 ") {
				break
			}
			if !strings.HasPrefix(line, "220") && !strings.HasPrefix(line, "250") {
				t.Fatalf("login: %q", line)
			}
		}
		if r.Buffered() != 0 {
			t.Fatal("more replies than expected")
		}
		return conn
	}
	open().Close() // what the first session initialises is not a session's cost

	inUse := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	before := inUse()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = open()
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	with := inUse()
	per := (int64(with) - int64(before)) / n
	t.Logf("%d idle sessions: %d bytes each (heap and stacks)", n, per)
	if per > perSession {
		t.Fatalf("an idle session costs %d bytes, more than %d", per, perSession)
	}
	// They are alive.
	for i, c := range conns {
		if _, err := io.WriteString(c, "NOOP\r\n"); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		b := make([]byte, 64)
		if k, err := c.Read(b); err != nil || !strings.HasPrefix(string(b[:k]), "250") {
			t.Fatalf("session %d: NOOP answered %q, %v", i, b[:k], err)
		}
	}
}
