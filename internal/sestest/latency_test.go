package sestest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLatencySample: a log-normal draw is deterministic in (seed, id,
// kind), clamped to min..max, and about half the draws fall below the
// median; a fixed latency is that.
func TestLatencySample(t *testing.T) {
	l := Latency{Median: 2 * time.Second, Sigma: 1.5, Min: 500 * time.Millisecond, Max: 90 * time.Second}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	below, atMax := 0, 0
	var draws []time.Duration
	for i := range 2000 {
		id := "m" + string(rune('a'+i%26)) + time.Duration(i).String()
		d := l.Sample(7, id, kindDelivery)
		if d != l.Sample(7, id, kindDelivery) {
			t.Fatal("not deterministic")
		}
		if d < l.Min || d > l.Max {
			t.Fatalf("draw %v outside [%v, %v]", d, l.Min, l.Max)
		}
		if d < l.Median {
			below++
		}
		if d == l.Max {
			atMax++
		}
		draws = append(draws, d)
	}
	if below < 900 || below > 1100 {
		t.Fatalf("%d of 2000 below the median; want about 1000", below)
	}
	// With sigma 1.5, P(d > 45 median) is about 0.5%: a tail up to the cap.
	if atMax == 0 || slices.Max(draws) != l.Max {
		t.Fatalf("no draw reached the %v cap (long tail missing)", l.Max)
	}
	if f := (Latency{Fixed: 3 * time.Second}); f.Sample(1, "x", kindBounce) != 3*time.Second {
		t.Fatal("fixed latency not fixed")
	}
}

// TestLatencyChecked: bad distributions are refused with the reason.
func TestLatencyChecked(t *testing.T) {
	for _, tc := range []struct {
		l    Latency
		want string
	}{
		{Latency{Fixed: 2 * time.Hour}, "latency fixed 2h0m0s outside [0, 1h0m0s]"},
		{Latency{Fixed: time.Second, Median: time.Second}, "fixed excludes"},
		{Latency{Median: time.Second, Sigma: 9}, "sigma 9 outside [0, 5]"},
		{Latency{Median: time.Second, Min: 2 * time.Second, Max: time.Second}, "min 2s above max 1s"},
		{Latency{Median: 10 * time.Second, Max: time.Second}, "median 10s outside [min, max]"},
	} {
		srv := New(Options{})
		err := srv.SetEvents(&EventOptions{URL: "http://x", DeliveryLatency: &tc.l})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.l, err, tc.want)
		}
	}
}

// TestEventsLatencyPerType: each event type of one message is published
// when its own latency has passed (the Delivery before the Bounce here),
// set through the control API with duration strings.
func TestEventsLatencyPerType(t *testing.T) {
	_, url := start(t, Options{EnableControl: true})
	rcv, rurl := startReceiver(t)
	body := `{"url":"` + rurl + `","deliveries":true,"latency":{"fixed":"400ms"},"delivery_latency":{"median":"20ms","sigma":0.1,"min":"10ms","max":"40ms"}}`
	resp, err := http.Post(url+"/_sestest/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST events: %d", resp.StatusCode)
	}
	start := time.Now()
	if _, err := client(url).SendEmail(context.Background(), rawInput("bounce@example.net", "ok@example.net")); err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 2)
	var types []string
	for _, m := range got {
		var ev struct {
			EventType string `json:"eventType"`
		}
		if err := json.Unmarshal([]byte(m["Message"]), &ev); err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.EventType)
	}
	if !slices.Equal(types, []string{"Delivery", "Bounce"}) {
		t.Fatalf("order %v; want the Delivery first", types)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("bounce after %v; want at least its 400ms latency", el)
	}
	resp, err = http.Post(url+"/_sestest/events", "application/json", strings.NewReader(`{"url":"`+rurl+`","latency":{"median":"soon"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad latency: %d", resp.StatusCode)
	}
}
