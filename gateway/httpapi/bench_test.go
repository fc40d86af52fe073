package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"testing"
)

// BenchmarkSendJSON posts a typical JSON message (text and HTML, one small
// attachment) over keep-alive connections to a real socket, with a sink
// that answers at once. Allocations include the client's.
func BenchmarkSendJSON(b *testing.B) {
	s := newTestServer(b, serverConfig{})
	s.sink.mu.Lock()
	s.sink.discard = true
	s.sink.mu.Unlock()
	body, err := json.Marshal(map[string]any{
		"from":        "Shop <orders@example.com>",
		"to":          []string{"Customer <c@x.example>"},
		"bcc":         []string{"archive@x.example"},
		"subject":     "Your order #12345 has shipped",
		"text":        strings.Repeat("Thank you for your order. ", 40),
		"html":        "<html><body>" + strings.Repeat("<p>Thank you for your order.</p>", 40) + "</body></html>",
		"attachments": []map[string]string{{"filename": "invoice.pdf", "content_type": "application/pdf", "content": b64(strings.Repeat("%PDF", 512))}},
		"tags":        map[string]string{"kind": "shipping"},
	})
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/messages", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

type benchMessage struct {
	name string
	m    *Message
}

// benchMessages are the messages of BenchmarkCompose: a typical one (text
// and HTML, one 2 KB attachment, a non-ASCII subject and name), a
// text-only one, and one with a 1 MB attachment.
func benchMessages() []benchMessage {
	typical := func() *Message {
		m := baseMessage()
		m.Subject = "Ihre Bestellung #12345 wurde versandt – danke!"
		m.To = []mail.Address{{Name: "Jürgen Groß", Address: "c@x.example"}}
		m.Text = ptr(strings.Repeat("Thank you for your order. ", 40))
		m.HTML = ptr("<html><body>" + strings.Repeat("<p>Thank you for your order.</p>", 40) + "</body></html>")
		m.Headers = []Header{{"X-Campaign", "shipping"}}
		m.Attachments = []Attachment{{Filename: "invoice.pdf", ContentType: "application/pdf", Content: []byte(strings.Repeat("%PDF", 512))}}
		return m
	}
	big := typical()
	big.Attachments[0].Content = bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<18)
	return []benchMessage{{"typical", typical()}, {"text", baseMessage()}, {"1MB", big}}
}

// BenchmarkCompose composes the benchMessages.
func BenchmarkCompose(b *testing.B) {
	for _, bc := range benchMessages() {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, err := Compose(bc.m)
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.SetBytes(int64(n))
		})
	}
}
