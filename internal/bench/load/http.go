package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxAnswerBytes bounds an answer body read by a sender.
const maxAnswerBytes = 64 << 10

// HTTPOptions configure HTTP senders to the gateway's POST /v1/messages.
type HTTPOptions struct {
	URL     string // e.g. http://127.0.0.1:8025/v1/messages
	Token   string
	Message Message
	// Conns is the size of the keep-alive pool, normally the worker count.
	Conns int
	// TLSConfig is used for an https URL; nil: the default.
	TLSConfig *tls.Config
}

// HTTP makes senders that share one keep-alive connection pool.
type HTTP struct {
	url    string
	token  string
	msg    Message
	bodies [][]byte
	client *http.Client
}

// NewHTTP prepares the request bodies and the connection pool.
func NewHTTP(opts HTTPOptions) (*HTTP, error) {
	msg := opts.Message.withDefaults()
	bodies, err := msg.jsonBodies()
	if err != nil {
		return nil, err
	}
	conns := max(opts.Conns, 1)
	tr := &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: time.Minute,
		DisableCompression: true, TLSClientConfig: opts.TLSConfig,
	}
	return &HTTP{url: opts.URL, token: "Bearer " + opts.Token, msg: msg, bodies: bodies, client: &http.Client{Transport: tr}}, nil
}

// NewSender returns a sender; all of them share the pool.
func (h *HTTP) NewSender(int) (Sender, error) { return httpSender{h}, nil }

// Close closes the idle connections.
func (h *HTTP) Close() { h.client.CloseIdleConnections() }

type httpSender struct{ h *HTTP }

func (s httpSender) Close() error { return nil }

func (s httpSender) Send(ctx context.Context, seq int64) Outcome {
	h := s.h
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(h.msg.body(h.bodies, seq)))
	if err != nil {
		return Outcome{Code: CodeError, Err: err}
	}
	req.Header.Set("Authorization", h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return Outcome{Code: CodeError, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return Outcome{Code: CodeError, Err: err}
	}
	out := Outcome{Code: strconv.Itoa(resp.StatusCode)}
	if resp.StatusCode != http.StatusOK {
		out.Err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body[:min(len(body), 300)]))
	}
	if resp.StatusCode == http.StatusOK {
		var ans struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal(body, &ans) == nil {
			out.SESID = ans.MessageID
		}
	}
	return out
}
