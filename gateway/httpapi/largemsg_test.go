package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/sesgate/sesgate/gateway"
)

// bigMessage returns a message of exactly size bytes, CRLF line endings.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString("From: app@example.com\r\nTo: to@example.net\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len()+len(line) <= size-2 {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("x", size-b.Len()-2) + "\r\n")
	return b.Bytes()
}

// allocated returns the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLargeRawMessageAllocations counts the bytes the process allocates
// while a message of SES's size limit goes as message/rfc822, with its
// Content-Length and chunked, through the handler and the pipeline to the
// sink (which hashes it in place): the body once (before: the body and the
// pipeline's prepared copy, and for a chunked body a buffer grown by
// doubling).
func TestLargeRawMessageAllocations(t *testing.T) {
	srv := newTestServer(t, serverConfig{})
	srv.sink.digest = true
	size := gateway.DefaultMaxMessageBytes
	if raceEnabled {
		size = 8 << 20
	}
	msg := bigMessage(size)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(msg)
		if chunked {
			body = io.MultiReader(body) // no length: sent chunked
		}
		req, err := http.NewRequest(http.MethodPost, srv.url+"/v1/messages?to=to@example.net", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "message/rfc822")
		var status int
		alloc := allocated(func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		})
		t.Logf("chunked %v: a %d-byte message allocated %d bytes (%.2fx)", chunked, size, alloc, float64(alloc)/float64(size))
		if status != http.StatusOK {
			t.Fatalf("chunked %v: status %d", chunked, status)
		}
		// The body once, a tenth for the rest, and a fixed 4 MiB.
		if limit := uint64(size) + uint64(size)/10 + 4<<20; alloc > limit {
			t.Fatalf("chunked %v: a %d-byte message allocated %d bytes, more than %d", chunked, size, alloc, limit)
		}
	}
	srv.sink.mu.Lock()
	defer srv.sink.mu.Unlock()
	want := sha256.Sum256(msg)
	if len(srv.sink.digests) != 2 || srv.sink.digests[0] != want || srv.sink.digests[1] != want {
		t.Fatal("the sink did not get the message as sent")
	}
}

// TestLargeJSONMessageAllocations states what the JSON API costs for a
// large attachment: the request (base64 in JSON), its decoded fields, the
// decoded attachment and the composed message (base64 again, in MIME
// lines). It bounds it, so that it does not grow unseen.
func TestLargeJSONMessageAllocations(t *testing.T) {
	srv := newTestServer(t, serverConfig{})
	srv.sink.digest = true
	att := 28 << 20 // composes into a message of about 38.3 MiB
	if raceEnabled {
		att = 4 << 20
	}
	content := base64.StdEncoding.EncodeToString(bigMessage(att))
	body := []byte(`{"from":"app@example.com","to":["to@example.net"],"subject":"big","text":"see attached",` +
		`"attachments":[{"filename":"a.bin","content_type":"application/octet-stream","content":"` + content + `"}]}`)
	content = ""
	var a answer
	alloc := allocated(func() {
		a = do(t, http.MethodPost, srv.url+"/v1/messages", testToken, "application/json", body, nil)
	})
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	composed := att / 57 * 78 // MIME base64: 76 characters and CRLF per 57 bytes
	t.Logf("a %d-byte JSON request (a %d-byte attachment, composed into about %d bytes) allocated %d bytes: %.2fx the composed message",
		len(body), att, composed, alloc, float64(alloc)/float64(composed))
	if limit := uint64(composed) * 6; alloc > limit { // 5.08x measured, 6.05x with the attachment as a string
		t.Fatalf("allocated %d bytes, more than %d", alloc, limit)
	}
}
