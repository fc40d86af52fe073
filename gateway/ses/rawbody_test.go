package ses

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/sestest"
)

func TestMain(m *testing.M) {
	sestest.RunChildIfAsked()
	os.Exit(m.Run())
}

// bigMessage returns a message of exactly size bytes: a header section and
// CRLF lines of random base64 characters.
func bigMessage(size int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 0, size)
	b = append(b, testMessage[:len(testMessage)-len("hello\r\n")]...)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for len(b) < size {
		n := min(76, size-len(b)-2)
		if n <= 0 {
			b = append(b, "\r\n"[:size-len(b)]...)
			break
		}
		for range n {
			b = append(b, alphabet[rng.IntN(64)])
		}
		b = append(b, '\r', '\n')
	}
	return b
}

func TestRawBodyReadsAndSeeksAsTheEncodedForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for n := range 40 {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		prefix, suffix := []byte(`{"Content":{"Raw":{"Data":"`), []byte(`"}},"X":1}`)
		want := append(append(append([]byte{}, prefix...), base64.StdEncoding.EncodeToString(data)...), suffix...)
		// iotest.TestReader reads in small and odd sizes and, since
		// rawBody is an io.Seeker, seeks around and reads again.
		if err := iotest.TestReader(newRawBody(prefix, data, suffix), want); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		for _, chunk := range []int{1, 3, 4, 5, 7, 64} {
			b := newRawBody(prefix, data, suffix)
			var got []byte
			buf := make([]byte, chunk)
			for {
				k, err := b.Read(buf)
				got = append(got, buf[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d bytes, reads of %d: got %q, want %q", n, chunk, got, want)
			}
		}
	}
}

// recordingClient is an SDK HTTP client that hashes the body of every
// request it is given (the bytes that would go on the wire), in order, and
// fails the call.
type recordingClient struct {
	mu     sync.Mutex
	bodies [][32]byte
	sizes  []int64
}

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		return nil, err
	}
	_ = r.Body.Close()
	c.mu.Lock()
	c.bodies = append(c.bodies, [32]byte(h.Sum(nil)))
	c.sizes = append(c.sizes, n)
	c.mu.Unlock()
	return nil, errRecorded
}

var errRecorded = errors.New("recorded, not sent")

// TestStreamedBodyIsTheSDKsOwn proves the wire bytes of the streamed
// request equal those the SDK writes for the same input with the message
// inside it, and that SES (sestest: SigV4 checked, the message decoded)
// receives the message byte for byte, for a small and a 40 MiB message,
// and again after a throttled attempt.
func TestStreamedBodyIsTheSDKsOwn(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	tenant := &gateway.Tenant{ID: "acme", SES: gateway.SESOptions{ConfigurationSet: "cs-1"}}
	large := MaxMessageBytes
	if raceEnabled {
		large = 4<<20 + 2
	}
	for _, size := range []int{len(testMessage), streamMinBytes - 1, streamMinBytes, 1<<20 + 1, large} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := bigMessage(size)
			if size == len(testMessage) {
				data = []byte(testMessage)
			}
			env := envelope(tenant, "a@example.net", "b@example.net")
			env.Data = data
			env.SES.Tags = []gateway.MessageTag{{Name: "campaign", Value: "x_y-z"}}

			// The SDK's own body and ours, through a client that records
			// the bytes it is given.
			rec := &recordingClient{}
			sink := newSink(t, url, ClientOptions{HTTPClient: rec}, Options{MaxAttempts: 1})
			in, err := sink.input(env)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = sink.client.SendEmail(context.Background(), in) // the SDK alone
			_, _ = sink.Send(context.Background(), env)            // streamed
			if len(rec.bodies) != 2 {
				t.Fatalf("recorded %d bodies", len(rec.bodies))
			}
			if rec.bodies[0] != rec.bodies[1] || rec.sizes[0] != rec.sizes[1] {
				t.Fatalf("streamed body (%d bytes) differs from the SDK's (%d bytes)", rec.sizes[1], rec.sizes[0])
			}
			if want := int64(base64.StdEncoding.EncodedLen(size)); rec.sizes[1] < want {
				t.Fatalf("body of %d bytes cannot hold the message (%d in base64)", rec.sizes[1], want)
			}

			// Then for real, the first attempt throttled: the retry sends
			// the body again from its start.
			sink = newSink(t, url, ClientOptions{}, Options{MaxAttempts: 2, Timeout: MaxTimeout}) // -race on a busy machine
			srv.Reset()
			srv.FailNext(1, sestest.Fault{Type: sestest.TooManyRequests})
			id, err := sink.Send(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			if n := srv.Requests(); n != 2 {
				t.Fatalf("SES got %d requests, want 2 (one throttled, one retry)", n)
			}
			m, ok := srv.Message(id)
			if !ok {
				t.Fatalf("SES has no message %s", id)
			}
			if !bytes.Equal(m.Raw, data) {
				t.Fatalf("SES received %d bytes that differ from the %d sent", len(m.Raw), len(data))
			}
		})
	}
}

// TestStreamedBodyNeverSendsThePlaceholder: when the middleware cannot
// find the placeholder once (here: two envelopes' worth), the call fails
// before anything is sent.
func TestStreamedBodyNeverSendsThePlaceholder(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	sink := newSink(t, url, ClientOptions{}, Options{MaxAttempts: 1})
	placeholder, marker := newPlaceholder()
	in, err := sink.input(envelope(&gateway.Tenant{ID: "acme"}, "a@example.net"))
	if err != nil {
		t.Fatal(err)
	}
	in.Content.Raw.Data = placeholder
	in.ConfigurationSetName = new(string(marker)) // a second occurrence
	_, err = sink.client.SendEmail(context.Background(), in, withRawStream(marker, []byte(testMessage)))
	if err == nil {
		t.Fatal("sent although the placeholder appeared twice")
	}
	if n := srv.Requests(); n != 0 {
		t.Fatalf("SES got %d requests", n)
	}
}

// TestSendAllocatesLittleOfALargeMessage counts the bytes the process
// allocates while the sink sends a 40 MiB message to SES (sestest in a
// child process, so only the sink's side is counted): the SDK alone
// allocated about four times the message (a base64 copy, the growing JSON
// buffer); streamed, a small fraction of it.
func TestSendAllocatesLittleOfALargeMessage(t *testing.T) {
	url := sestest.StartChild(t)
	sink := newSink(t, url, ClientOptions{}, Options{MaxAttempts: 1, Timeout: MaxTimeout})
	env := envelope(&gateway.Tenant{ID: "acme"}, "a@example.net")
	if _, err := sink.Send(context.Background(), env); err != nil { // warm: connection, credentials
		t.Fatal(err)
	}
	size := MaxMessageBytes
	if raceEnabled {
		size = 8 << 20
	}
	env.Data = bigMessage(size)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	id, err := sink.Send(context.Background(), env)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("sending %d bytes allocated %d bytes (%.3fx)", len(env.Data), alloc, float64(alloc)/float64(len(env.Data)))
	if limit := uint64(size / 10); alloc > limit {
		t.Fatalf("sending a %d-byte message allocated %d bytes, more than %d", len(env.Data), alloc, limit)
	}
	// What SES decoded is the message.
	resp, err := http.Get(url + "/_sestest/messages/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(env.Data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("SES decoded another message than the one sent")
	}
}
