package memory

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sesgate/sesgate/internal/bench/stack"
)

// The envelope of every message.
const (
	From = "bench@example.com"
	To   = "rcpt@example.net"
)

// Message returns a raw message of exactly size bytes (at least MinSize):
// a header section and CRLF lines of 76 base64 characters, the shape of an
// attachment, not compressible.
func Message(size int64) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 0, size)
	b = append(b, "From: Bench <"+From+">\r\nTo: <"+To+">\r\nSubject: sesgate-bench memory\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"...)
	rng := rand.New(rand.NewPCG(1, 2))
	for int64(len(b)) < size {
		n := min(76, int(size)-len(b)-2)
		if n <= 0 { // one or two bytes left: an empty line
			b = append(b, "\r\n"[:int(size)-len(b)]...)
			break
		}
		for range n {
			b = append(b, alphabet[rng.IntN(64)])
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// message sends msg through path on a fresh gateway and reads the peak.
func (r *run) message(ctx context.Context, path string, msg []byte) (*MessageReport, error) {
	gw, err := r.gateway(ctx, "")
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	send := func(m []byte) (string, int64, error) {
		switch path {
		case "smtp":
			text, err := sendSMTP(ctx, gw, m)
			if err != nil {
				return "", 0, err
			}
			_, id, _ := strings.Cut(text, " ses=")
			return id, int64(len(m)), nil
		case "http":
			return sendRaw(ctx, gw, m)
		}
		return sendJSON(ctx, gw, m)
	}
	if _, _, err := send(Message(4 << 10)); err != nil {
		return nil, fmt.Errorf("warm-up message: %w", err)
	}
	time.Sleep(settle)
	if err := ResetPeak(gw.Pid()); err != nil {
		return nil, err
	}
	base, err := ReadStatus(gw.Pid())
	if err != nil {
		return nil, err
	}
	id, req, err := send(msg)
	if err != nil {
		return nil, err
	}
	after, err := ReadStatus(gw.Pid())
	if err != nil {
		return nil, err
	}
	m := &MessageReport{Path: path, Size: int64(len(msg)), Request: req, BaseRSS: base.RSS, Peak: after.Peak, MessageID: id}
	got, ok := r.ses.Server.Message(id)
	if !ok {
		return nil, fmt.Errorf("SES has no message %q", id)
	}
	m.Size = int64(got.Size) // the JSON path composes its own
	m.Multiple = float64(m.Peak-m.BaseRSS) / float64(m.Size)
	return m, nil
}

// sendRaw posts msg as message/rfc822.
func sendRaw(ctx context.Context, gw *stack.Gateway, msg []byte) (string, int64, error) {
	q := url.Values{"from": {From}, "to": {To}}
	id, err := post(ctx, gw, "/v1/messages?"+q.Encode(), "message/rfc822", msg)
	return id, int64(len(msg)), err
}

// sendJSON posts a /v1/messages JSON request whose attachment makes the
// composed message about len(msg) bytes: MIME base64 takes 78 bytes per 57.
func sendJSON(ctx context.Context, gw *stack.Gateway, msg []byte) (string, int64, error) {
	att := max(int64(len(msg))-4<<10, 1) * 57 / 78
	body, err := json.Marshal(map[string]any{
		"from": From, "to": []string{To}, "subject": "sesgate-bench memory", "text": "see the attachment",
		"attachments": []map[string]string{{
			"filename": "data.bin", "content_type": "application/octet-stream",
			"content": base64.StdEncoding.EncodeToString(msg[len(msg)-int(att):]),
		}},
	})
	if err != nil {
		return "", 0, err
	}
	id, err := post(ctx, gw, "/v1/messages", "application/json", body)
	return id, int64(len(body)), err
}

// post sends body and returns the SES MessageId of the 200 answer.
func post(ctx context.Context, gw *stack.Gateway, path, ctype string, body []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.HTTPURL+path, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+gw.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %s: %s: %s", path, resp.Status, b)
	}
	var out struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.MessageID == "" {
		return "", fmt.Errorf("POST %s: answer without message_id: %s", path, b)
	}
	return out.MessageID, nil
}
