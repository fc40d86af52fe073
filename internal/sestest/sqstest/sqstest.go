// Package sqstest is a small local Amazon SQS server for tests: one or more
// standard queues, spoken to over the wire protocol the current
// aws-sdk-go-v2 sqs client uses (AWS JSON 1.0: POST /, X-Amz-Target
// AmazonSQS.<Operation>, Content-Type application/x-amz-json-1.0).
//
// It implements SendMessage, ReceiveMessage (with long polling and a
// visibility timeout), DeleteMessage and GetQueueUrl; other operations are
// refused as the service refuses unknown ones. Tests enqueue with Send and
// watch with Stats.
//
// Invariants:
//   - A received message is invisible for its visibility timeout, then
//     visible again (at-least-once delivery, as in SQS); it is gone only
//     after DeleteMessage with its latest receipt handle.
//   - MD5OfBody is the real MD5, so the SDK's checksum validation runs.
//   - Bounded: at most MaxMessages queued per queue, 256 KiB per body, 10
//     messages per receive, 20 s of long polling; Close ends every poll.
//   - Requests must carry an AWS4-HMAC-SHA256 Authorization header (the
//     signature itself is not checked).
package sqstest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Limits.
const (
	MaxMessages       = 100_000
	MaxBodyBytes      = 256 << 10
	MaxReceive        = 10
	MaxWait           = 20 * time.Second
	DefaultVisibility = 30 * time.Second
	maxRequestBytes   = 1 << 20
	AccountID         = "123456789012"
)

// Options configure a Server.
type Options struct {
	// Queues are the queue names that exist; default ["events"].
	Queues []string
	// Visibility is the default visibility timeout; default 30 s.
	Visibility time.Duration
	Now        func() time.Time
}

// Stats count what happened to a queue.
type Stats struct {
	Queued   int // messages not deleted (visible or in flight)
	InFlight int
	Received int // receives, redeliveries included
	Deleted  int
	Polls    int // ReceiveMessage calls
}

type message struct {
	id, body, receipt string
	visibleAt         time.Time
	receives          int
	sent              time.Time
}

type queue struct {
	msgs  []*message
	stats Stats
}

// Server is a local SQS endpoint. It is safe for concurrent use.
type Server struct {
	url     string
	vis     time.Duration
	now     func() time.Time
	closed  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	queues  map[string]*queue
	changed chan struct{} // closed and replaced when a message is queued
	hs      *http.Server
}

// Start serves a new Server on 127.0.0.1:0 and returns it; Close stops it.
func Start(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{url: "http://" + ln.Addr().String(), vis: opts.Visibility, now: opts.Now,
		closed: make(chan struct{}), queues: map[string]*queue{}, changed: make(chan struct{})}
	if s.vis <= 0 {
		s.vis = DefaultVisibility
	}
	if s.now == nil {
		s.now = time.Now
	}
	names := opts.Queues
	if len(names) == 0 {
		names = []string{"events"}
	}
	for _, n := range names {
		s.queues[n] = &queue{}
	}
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return s, nil
}

// URL is the endpoint, for the client's BaseEndpoint.
func (s *Server) URL() string { return s.url }

// QueueURL returns the URL of queue name.
func (s *Server) QueueURL(name string) string { return s.url + "/" + AccountID + "/" + name }

// Close ends long polls and stops the server.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		_ = s.hs.Close()
	})
}

// Send queues body on queue name and returns the message id.
func (s *Server) Send(name, body string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	switch {
	case !ok:
		return "", fmt.Errorf("sqstest: no queue %q", name)
	case len(body) == 0 || len(body) > MaxBodyBytes:
		return "", fmt.Errorf("sqstest: body of %d bytes outside [1, %d]", len(body), MaxBodyBytes)
	case len(q.msgs) >= MaxMessages:
		return "", fmt.Errorf("sqstest: queue %q full", name)
	}
	m := &message{id: uuid(), body: body, sent: s.now()}
	q.msgs = append(q.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return m.id, nil
}

// Stats returns the counters of queue name.
func (s *Server) Stats(name string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return Stats{}
	}
	st := q.stats
	st.Queued = len(q.msgs)
	now := s.now()
	for _, m := range q.msgs {
		if m.visibleAt.After(now) {
			st.InFlight++
		}
	}
	return st
}

type apiError struct {
	status int
	typ    string
	msg    string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "AmazonSQS.")
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		writeErr(w, &apiError{404, "UnknownOperationException", "unknown path"})
		return
	case !ok:
		writeErr(w, &apiError{400, "InvalidAction", "missing or bad X-Amz-Target"})
		return
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0"):
		writeErr(w, &apiError{400, "InvalidParameterValue", "Content-Type must be application/x-amz-json-1.0"})
		return
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 "):
		writeErr(w, &apiError{403, "MissingAuthenticationToken", "request is not signed"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		writeErr(w, &apiError{413, "RequestEntityTooLarge", "request too large"})
		return
	}
	var in struct {
		QueueURL            string `json:"QueueUrl"`
		QueueName           string
		MessageBody         string
		ReceiptHandle       string
		MaxNumberOfMessages int
		WaitTimeSeconds     int
		VisibilityTimeout   *int
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeErr(w, &apiError{400, "SerializationException", "bad JSON"})
		return
	}
	var out any
	var aerr *apiError
	switch op {
	case "GetQueueUrl":
		if _, ok := s.queues[in.QueueName]; !ok {
			aerr = &apiError{400, "QueueDoesNotExist", "The specified queue does not exist."}
		} else {
			out = map[string]string{"QueueUrl": s.QueueURL(in.QueueName)}
		}
	case "SendMessage":
		var name string
		if name, aerr = s.queueName(in.QueueURL); aerr == nil {
			id, err := s.Send(name, in.MessageBody)
			if err != nil {
				aerr = &apiError{400, "InvalidParameterValue", err.Error()}
			} else {
				out = map[string]string{"MessageId": id, "MD5OfMessageBody": md5hex(in.MessageBody)}
			}
		}
	case "ReceiveMessage":
		var name string
		if name, aerr = s.queueName(in.QueueURL); aerr == nil {
			out, aerr = s.receive(r, name, in.MaxNumberOfMessages, in.WaitTimeSeconds, in.VisibilityTimeout)
		}
	case "DeleteMessage":
		var name string
		if name, aerr = s.queueName(in.QueueURL); aerr == nil {
			aerr = s.delete(name, in.ReceiptHandle)
			out = struct{}{}
		}
	default:
		aerr = &apiError{400, "InvalidAction", "sqstest does not implement " + op}
	}
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) queueName(url string) (string, *apiError) {
	name, ok := strings.CutPrefix(url, s.url+"/"+AccountID+"/")
	if ok {
		s.mu.Lock()
		_, ok = s.queues[name]
		s.mu.Unlock()
	}
	if !ok {
		return "", &apiError{400, "QueueDoesNotExist", "The specified queue does not exist."}
	}
	return name, nil
}

type wireMessage struct {
	MessageID     string `json:"MessageId"`
	ReceiptHandle string
	MD5OfBody     string
	Body          string
	Attributes    map[string]string `json:",omitempty"`
}

func (s *Server) receive(r *http.Request, name string, max, wait int, vis *int) (any, *apiError) {
	switch {
	case max == 0:
		max = 1
	case max < 1 || max > MaxReceive:
		return nil, &apiError{400, "InvalidParameterValue", "MaxNumberOfMessages must be 1 to 10"}
	}
	if wait < 0 || time.Duration(wait)*time.Second > MaxWait {
		return nil, &apiError{400, "InvalidParameterValue", "WaitTimeSeconds must be 0 to 20"}
	}
	visibility := s.vis
	if vis != nil {
		if *vis < 0 || *vis > 43200 {
			return nil, &apiError{400, "InvalidParameterValue", "VisibilityTimeout must be 0 to 43200"}
		}
		visibility = time.Duration(*vis) * time.Second
	}
	deadline := time.NewTimer(time.Duration(wait) * time.Second)
	defer deadline.Stop()
	s.mu.Lock()
	q := s.queues[name]
	q.stats.Polls++
	s.mu.Unlock()
	for {
		s.mu.Lock()
		now := s.now()
		var got []wireMessage
		for _, m := range q.msgs {
			if len(got) == max {
				break
			}
			if m.visibleAt.After(now) {
				continue
			}
			m.visibleAt = now.Add(visibility)
			m.receives++
			m.receipt = uuid()
			q.stats.Received++
			got = append(got, wireMessage{MessageID: m.id, ReceiptHandle: m.receipt, MD5OfBody: md5hex(m.body), Body: m.body,
				Attributes: map[string]string{"ApproximateReceiveCount": fmt.Sprint(m.receives), "SentTimestamp": fmt.Sprint(m.sent.UnixMilli())}})
		}
		changed := s.changed
		s.mu.Unlock()
		if len(got) > 0 || wait == 0 {
			return map[string]any{"Messages": got}, nil
		}
		// Long poll: wake on a new message, a visibility expiry (checked
		// every 50 ms), the deadline, the client leaving or Close.
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			return map[string]any{"Messages": []wireMessage{}}, nil
		case <-r.Context().Done():
			return nil, &apiError{500, "RequestCanceled", "client went away"}
		case <-s.closed:
			return map[string]any{"Messages": []wireMessage{}}, nil
		}
	}
}

func (s *Server) delete(name, receipt string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	for i, m := range q.msgs {
		if m.receipt != "" && m.receipt == receipt {
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			q.stats.Deleted++
			return nil
		}
	}
	return &apiError{400, "ReceiptHandleIsInvalid", "The input receipt handle is invalid."}
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-query-error", e.typ+";Sender")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.typ, "message": e.msg})
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
