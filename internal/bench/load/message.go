package load

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MaxMessageSize bounds Message.Size.
const MaxMessageSize = 10 << 20

// Message describes the mail every sender sends: the same sender, size and
// a recipient drawn in turn from Recipients addresses.
type Message struct {
	From       string // default bench@example.com
	Domain     string // recipients are rcpt<N>@Domain; default example.net
	Recipients int    // distinct recipients used in turn; default 100
	Size       int    // approximate size of the raw message in bytes; default 1000
	// Mix, when set, chooses each send's recipient instead (known
	// addresses and first contacts over several domains); the raw
	// message is then one, its To header a fixed list address.
	Mix *Mix
}

func (m Message) withDefaults() Message {
	if m.From == "" {
		m.From = "bench@example.com"
	}
	if m.Domain == "" {
		m.Domain = "example.net"
	}
	if m.Recipients <= 0 {
		m.Recipients = 100
	}
	if m.Size <= 0 {
		m.Size = 1000
	}
	m.Size = min(m.Size, MaxMessageSize)
	return m
}

// headerBytes is about what the headers of a composed message take.
const headerBytes = 300

// text returns the body: lines of 76 characters, about Size minus the
// headers in all.
func (m Message) text() string {
	n := max(m.Size-headerBytes, 16)
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 3)[:76] + "\r\n"
	var b strings.Builder
	b.Grow(n + len(line))
	for b.Len() < n {
		b.WriteString(line[:min(len(line)-2, n-b.Len())])
		b.WriteString("\r\n")
	}
	return b.String()
}

// rcpt returns the envelope recipient of send seq.
func (m Message) rcpt(seq int64) string {
	if m.Mix != nil {
		return m.Mix.Recipient(seq)
	}
	return m.recipient(seq % int64(m.Recipients))
}

// body returns the HTTP request body of send seq: bodies holds one body
// per recipient, or, with a Mix, the two halves around the recipient.
func (m Message) body(bodies [][]byte, seq int64) []byte {
	if m.Mix == nil {
		return bodies[seq%int64(len(bodies))]
	}
	r := m.Mix.Recipient(seq)
	b := make([]byte, 0, len(bodies[0])+len(r)+len(bodies[1]))
	return append(append(append(b, bodies[0]...), r...), bodies[1]...)
}

func (m Message) recipient(seq int64) string {
	return fmt.Sprintf("rcpt%d@%s", seq%int64(m.Recipients), m.Domain)
}

// jsonBodies returns the HTTP API request body for each recipient.
func (m Message) jsonBodies() ([][]byte, error) {
	text := m.text()
	if m.Mix != nil {
		const mark = "\x00rcpt\x00"
		b, err := json.Marshal(map[string]any{"from": m.From, "to": []string{mark}, "subject": "sesgate-bench", "text": text})
		if err != nil {
			return nil, err
		}
		// The addresses need no JSON escaping: letters, digits, - . @.
		head, tail, _ := strings.Cut(string(b), `"\u0000rcpt\u0000"`)
		return [][]byte{[]byte(head + `"`), []byte(`"` + tail)}, nil
	}
	out := make([][]byte, m.Recipients)
	for i := range out {
		b, err := json.Marshal(map[string]any{
			"from": m.From, "to": []string{m.recipient(int64(i))},
			"subject": "sesgate-bench", "text": text,
		})
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// raw returns the RFC 5322 message for each recipient (CRLF line ends, no
// line starting with a dot, so it needs no dot-stuffing).
func (m Message) raw() [][]byte {
	text := m.text()
	n, to := m.Recipients, func(i int) string { return m.recipient(int64(i)) }
	if m.Mix != nil {
		n, to = 1, func(int) string { return "bench-list@" + m.Domain }
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: sesgate-bench\r\n"+
			"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <bench-%d@example.com>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"Content-Transfer-Encoding: 7bit\r\n\r\n%s",
			m.From, to(i), i, text)
	}
	return out
}
