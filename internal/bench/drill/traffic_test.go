package drill

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGateway answers like the gateway's POST /v1/messages: token "ok"
// sends (but a bounce-* recipient is suppressed), "limited" is over its
// rate, "broken" gets a non-JSON 502; a complaint-* recipient's answer
// lists a dropped recipient.
func fakeGateway(t *testing.T, requests *atomic.Int64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		var m struct {
			From string   `json:"from"`
			To   []string `json:"to"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || len(m.To) != 1 || r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
			t.Errorf("request %s %s: %v %+v", r.Method, r.URL.Path, err, m)
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Header.Get("Authorization") {
		case "Bearer ok":
			if FateOf(m.To[0]) == Bounced {
				w.WriteHeader(422)
				_, _ = w.Write([]byte(`{"error": {"code": "recipient_suppressed_bounce", "rejected": [{"recipient": "x", "code": "recipient_suppressed_bounce"}]}}`))
				return
			}
			if FateOf(m.To[0]) == Complained { // as if a second recipient were dropped
				_, _ = w.Write([]byte(`{"id": "g1", "message_id": "ses-1", "rejected": [{"recipient": "y", "code": "recipient_suppressed"}]}`))
				return
			}
			_, _ = w.Write([]byte(`{"id": "g1", "message_id": "ses-1"}`))
		case "Bearer limited":
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"error": {"code": "rate_limited", "message": "slow down"}}`))
		default:
			w.WriteHeader(502)
			_, _ = w.Write([]byte("bad gateway"))
		}
	}))
}

func TestPlay(t *testing.T) {
	var requests atomic.Int64
	gw := fakeGateway(t, &requests)
	defer gw.Close()
	list := List{Domain: "x.example", N: 10, BounceFraction: 0.2, ComplaintFraction: 0.1}
	t0 := time.Now()
	tallies := Play(context.Background(), PlayOptions{URL: gw.URL + "/v1/messages", Start: t0, Senders: []Sender{
		{Name: "paced", Token: "ok", From: "a@x.example", List: list, Rate: 100, Workers: 2, Stop: 500 * time.Millisecond},
		{Name: "hammer", Token: "limited", From: "a@x.example", List: list, Workers: 4, Start: 200 * time.Millisecond, Stop: 400 * time.Millisecond},
		{Name: "broken", Token: "broken", From: "a@x.example", List: list, Rate: 10, Workers: 1, Stop: 150 * time.Millisecond},
	}})
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("Play took %v for senders stopping at 500 ms", took)
	}
	var total int64
	for _, tl := range tallies {
		total += tl.Sent
	}
	if total != requests.Load() {
		t.Errorf("tallied %d sends, the gateway got %d", total, requests.Load())
	}
	p := tallies["paced"]
	// 100/s for 0.5 s: 50 slots (the one due at 0.5 s may or may not go).
	// Never more; fewer only when the machine was too busy to keep the
	// schedule, which the tally then shows as late sends.
	if p.Sent > 51 || (p.Sent < 45 && p.Late == 0) || p.Sent < 10 || p.Codes[CodeOK]+p.Codes["recipient_suppressed_bounce"] != p.Sent {
		t.Errorf("paced: %+v", p)
	}
	// 2 of every 10 addresses bounce, in order: exactly a fifth, to within one.
	if b := p.Codes["recipient_suppressed_bounce"]; b < p.Sent/5-1 || b > p.Sent/5+1 {
		t.Errorf("paced: %d suppressed of %d", b, p.Sent)
	}
	if r := p.Rejected["recipient_suppressed"]; len(p.Rejected) != 1 || r < p.Sent/10-1 || r > p.Sent/10+1 {
		t.Errorf("paced rejected recipients %v", p.Rejected)
	}
	h := tallies["hammer"]
	// Closed loop for 200 ms: how many depends on the machine; each of the
	// four workers sends at least once, every answer is the refusal.
	if h.Sent < 4 || h.Codes["rate_limited"] != h.Sent || h.First["rate_limited"] < 0.2 || h.Last["rate_limited"] > 0.6 {
		t.Errorf("hammer: %+v", h)
	}
	b := tallies["broken"]
	if b.Codes["http_502"] != b.Sent || b.Sent < 1 || !strings.Contains(b.Examples["http_502"], "bad gateway") {
		t.Errorf("broken: %+v", b)
	}
}

func TestPlayCancelled(t *testing.T) {
	var requests atomic.Int64
	gw := fakeGateway(t, &requests)
	defer gw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	tallies := Play(ctx, PlayOptions{URL: gw.URL + "/v1/messages", Senders: []Sender{
		{Name: "a", Token: "ok", List: List{Domain: "x.example", N: 5}, Workers: 2, Stop: time.Hour},
		{Name: "late", Token: "ok", List: List{Domain: "x.example", N: 5}, Workers: 2, Start: 30 * time.Minute, Stop: time.Hour},
	}})
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("Play ran %v after its context ended", took)
	}
	if tallies["a"].Sent == 0 || tallies["late"].Sent != 0 {
		t.Fatalf("tallies a %+v late %+v", tallies["a"], tallies["late"])
	}
}
