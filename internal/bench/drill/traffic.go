package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Answer codes of a send besides the gateway's error codes.
const (
	CodeOK    = "ok"    // 200: SES took the message
	CodeError = "error" // no answer: connection failed or timed out
)

// Bounds of the traffic.
const (
	sendTimeout    = 10 * time.Second
	maxAnswerBytes = 64 << 10
)

// Sender is one stream of mail with one token: a tenant's own traffic or
// the attacker's.
type Sender struct {
	Name   string // row of the report: the tenant id, or "attacker"
	Tenant string
	Token  string
	From   string
	List   List
	// Rate paces the sends open-loop (messages per second over all
	// workers); 0 sends as fast as the answers come.
	Rate    float64
	Workers int
	// Start and Stop are offsets from the start of the run.
	Start, Stop time.Duration
}

// Tally is what one sender was answered.
type Tally struct {
	Sent  int64            `json:"sent"`
	Codes map[string]int64 `json:"codes"`
	// First and Last are when the first and last answer with each code
	// arrived, in seconds since the start of the run.
	First map[string]float64 `json:"first_s"`
	Last  map[string]float64 `json:"last_s"`
	// Rejected counts recipients dropped from accepted messages, by code.
	Rejected map[string]int64 `json:"rejected_recipients,omitempty"`
	// Examples holds one answer per unexpected code.
	Examples map[string]string `json:"examples,omitempty"`
	// Late counts paced sends that started over 100 ms behind schedule.
	Late int64 `json:"late"`
	// WindowHeld counts the answers that held a message back because the
	// tenant's first-contact window was full (first_contact_limited with
	// the window's message, not the static budget's).
	WindowHeld int64 `json:"window_held"`
}

func newTally() *Tally {
	return &Tally{Codes: map[string]int64{}, First: map[string]float64{}, Last: map[string]float64{},
		Rejected: map[string]int64{}, Examples: map[string]string{}}
}

func (t *Tally) add(code string, at time.Duration, example string) {
	t.Sent++
	t.Codes[code]++
	s := at.Seconds()
	if f, ok := t.First[code]; !ok || s < f {
		t.First[code] = s
	}
	t.Last[code] = max(t.Last[code], s)
	if example != "" && t.Examples[code] == "" {
		t.Examples[code] = example
	}
}

func (t *Tally) merge(o *Tally) {
	t.Sent += o.Sent
	t.Late += o.Late
	t.WindowHeld += o.WindowHeld
	for k, v := range o.Codes {
		t.Codes[k] += v
	}
	for k, v := range o.First {
		if f, ok := t.First[k]; !ok || v < f {
			t.First[k] = v
		}
	}
	for k, v := range o.Last {
		t.Last[k] = max(t.Last[k], v)
	}
	for k, v := range o.Rejected {
		t.Rejected[k] += v
	}
	for k, v := range o.Examples {
		if t.Examples[k] == "" {
			t.Examples[k] = v
		}
	}
}

// PlayOptions configure Play.
type PlayOptions struct {
	URL     string // the gateway's POST /v1/messages
	Senders []Sender
	// Start is the run's time zero; default now.
	Start time.Time
}

// Play runs every sender from its Start to its Stop against the gateway
// and returns their tallies by name. Sends in flight at Stop are answered,
// never abandoned; each has a deadline of 10 s.
func Play(ctx context.Context, o PlayOptions) map[string]*Tally {
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	out := map[string]*Tally{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range o.Senders {
		wg.Go(func() {
			t := play(ctx, o.URL, o.Start, s)
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := out[s.Name]; ok {
				prev.merge(t)
			} else {
				out[s.Name] = t
			}
		})
	}
	wg.Wait()
	return out
}

// senderClient is the HTTP client of one sender: workers connections,
// each send bounded by sendTimeout.
func senderClient(workers int) *http.Client {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers,
		IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: sendTimeout, DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: sendTimeout}
}

func play(ctx context.Context, url string, t0 time.Time, s Sender) *Tally {
	workers := max(s.Workers, 1)
	client := senderClient(workers)
	defer client.CloseIdleConnections()

	stop := t0.Add(s.Stop)
	ctx, cancel := context.WithDeadline(ctx, stop)
	defer cancel()
	if !sleepUntil(ctx, t0.Add(s.Start)) {
		return newTally()
	}
	begin := time.Now()
	var seq atomic.Int64
	tallies := make([]*Tally, workers)
	var wg sync.WaitGroup
	for w := range workers {
		tally := newTally()
		tallies[w] = tally
		wg.Go(func() {
			for ctx.Err() == nil {
				i := seq.Add(1) - 1
				if s.Rate > 0 {
					due := begin.Add(time.Duration(float64(i) / s.Rate * float64(time.Second)))
					if !sleepUntil(ctx, due) || !due.Before(stop) {
						return
					}
					if time.Since(due) > 100*time.Millisecond {
						tally.Late++
					}
				}
				if !time.Now().Before(stop) { // the deadline's timer may fire late
					return
				}
				code, rejected, example, held := send(ctx, client, url, s, i)
				tally.add(code, time.Since(t0), example)
				if held {
					tally.WindowHeld++
				}
				for k, v := range rejected {
					tally.Rejected[k] += v
				}
			}
		})
	}
	wg.Wait()
	total := newTally()
	for _, t := range tallies {
		total.merge(t)
	}
	return total
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// answer is the gateway's JSON answer, success or error.
type answer struct {
	MessageID string `json:"message_id"`
	Rejected  []struct {
		Code string `json:"code"`
	} `json:"rejected"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Answers that tell a first-contact window refusal from a first-contact
// budget refusal (both first_contact_limited): the window's message.
const (
	codeFirstContactLimited = "first_contact_limited"
	windowFullPrefix        = "first-contact window full"
)

// send posts message i of s and returns the answer's code, the recipients
// rejected by code, for an unexpected answer an example, and whether the
// first-contact window held the message back.
func send(ctx context.Context, client *http.Client, url string, s Sender, i int64) (code string, rejected map[string]int64, example string, held bool) {
	body, err := json.Marshal(map[string]any{
		"from": s.From, "to": []string{s.List.Address(i)},
		"subject": fmt.Sprintf("drill %s %d", s.Name, i), "text": "sesgate-bench drill\r\n",
	})
	if err != nil {
		return CodeError, nil, err.Error(), false
	}
	// A send in flight when the run ends is answered, not abandoned.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return CodeError, nil, err.Error(), false
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return CodeError, nil, err.Error(), false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return CodeError, nil, err.Error(), false
	}
	var a answer
	_ = json.Unmarshal(data, &a)
	for _, r := range a.Rejected {
		if rejected == nil {
			rejected = map[string]int64{}
		}
		rejected[r.Code]++
	}
	switch {
	case resp.StatusCode == http.StatusOK && a.MessageID != "":
		return CodeOK, rejected, "", false
	case a.Error != nil && a.Error.Code != "":
		held = a.Error.Code == codeFirstContactLimited && strings.HasPrefix(a.Error.Message, windowFullPrefix)
		return a.Error.Code, rejected, "", held
	}
	return "http_" + strconv.Itoa(resp.StatusCode), rejected, string(data[:min(len(data), 200)]), false
}
