package logthrottle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// clock is an injected clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time               { return c.t }
func (c *clock) add(d time.Duration)          { c.t = c.t.Add(d) }
func newClock() *clock                        { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func jsonLogger(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewJSONHandler(b, nil)) }

type line struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	N          int       `json:"n"`
	Who        string    `json:"who"`
	Suppressed int       `json:"suppressed"`
}

func lines(t *testing.T, b *bytes.Buffer) []line {
	t.Helper()
	var out []line
	for _, s := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if s == "" {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// TestBurstThenCount: a key writes its burst, drops the rest, and its next
// line after the budget refills carries the dropped count.
func TestBurstThenCount(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	log := jsonLogger(&b)
	th := New(Options{Rate: 1, Burst: 2, Now: c.now})
	ctx := context.Background()
	for i := range 10 {
		th.Log(ctx, log, slog.LevelWarn, "acme", "rate_limited", "refused", slog.Int("n", i))
	}
	c.add(time.Second)
	th.Log(ctx, log, slog.LevelWarn, "acme", "rate_limited", "refused", slog.Int("n", 10))
	got := lines(t, &b)
	if len(got) != 3 || got[0].N != 0 || got[1].N != 1 || got[2].N != 10 || got[2].Suppressed != 8 || got[0].Suppressed != 0 {
		t.Fatalf("lines %+v, want n=0, n=1, then n=10 with suppressed 8", got)
	}
	// Another key, or another reason, has its own budget.
	th.Log(ctx, log, slog.LevelWarn, "other", "rate_limited", "refused", slog.Int("n", 11))
	th.Log(ctx, log, slog.LevelWarn, "acme", "frozen", "refused", slog.Int("n", 12))
	if got := lines(t, &b); len(got) != 5 {
		t.Fatalf("%d lines, want 5: other keys are not throttled by acme's", len(got))
	}
}

// TestFlushWritesTheTail: the last dropped line is written by Flush with
// its own time and the others' count, once the key has budget.
func TestFlushWritesTheTail(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	log := jsonLogger(&b)
	th := New(Options{Rate: 1, Burst: 1, Now: c.now})
	ctx := context.Background()
	for i := range 5 {
		th.Log(ctx, log, slog.LevelWarn, "acme", "x", "refused", slog.Int("n", i))
		c.add(100 * time.Millisecond)
	}
	last := c.t.Add(-100 * time.Millisecond)
	th.Flush(ctx) // 0.5 s after the first line: no budget yet
	if n := len(lines(t, &b)); n != 1 {
		t.Fatalf("%d lines before the budget refilled, want 1", n)
	}
	c.add(time.Second)
	th.Flush(ctx)
	got := lines(t, &b)
	if len(got) != 2 || got[1].N != 4 || got[1].Suppressed != 3 || !got[1].Time.Equal(last) {
		t.Fatalf("lines %+v, want the tail n=4 at %v with suppressed 3", got, last)
	}
	th.Flush(ctx)
	c.add(5 * time.Second)
	th.Flush(ctx)
	if n := len(lines(t, &b)); n != 2 {
		t.Fatalf("%d lines after flushes with nothing held, want 2", n)
	}
	if len(th.keys) != 0 {
		t.Fatalf("%d idle keys kept after a flush", len(th.keys))
	}
}

// TestAccounting: over a random flood on several keys, each key's lines
// plus their suppressed counts equal its events, and its lines stay within
// Burst + Rate·T + 1.
func TestAccounting(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	log := jsonLogger(&b)
	const burst = 3
	th := New(Options{Rate: 2, Burst: burst, Now: c.now})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	events := map[string]int{}
	start := c.t
	for i := range 50000 {
		who := fmt.Sprint("k", rng.IntN(5))
		events[who]++
		th.Log(ctx, log, slog.LevelInfo, who, "r", "refused", slog.String("who", who), slog.Int("n", i))
		c.add(time.Duration(rng.IntN(400)) * time.Microsecond)
		if i%3000 == 0 {
			th.Flush(ctx)
		}
	}
	T := c.t.Sub(start)
	th.FlushAll(ctx)
	got := map[string][2]int{}
	for _, l := range lines(t, &b) {
		g := got[l.Who]
		got[l.Who] = [2]int{g[0] + 1, g[1] + l.Suppressed}
	}
	for who, n := range events {
		g := got[who]
		if g[0]+g[1] != n {
			t.Errorf("%s: %d lines + %d suppressed, want %d events", who, g[0], g[1], n)
		}
		if max := burst + int(2*T.Seconds()) + 1; g[0] > max {
			t.Errorf("%s: %d lines over %v, want at most %d", who, g[0], T, max)
		}
	}
}

// TestKeyTableBounded: past MaxKeys, new keys share an overflow key per
// message and reason, and past MaxOverflow more one key; every line is
// still counted.
func TestKeyTableBounded(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	log := jsonLogger(&b)
	th := New(Options{Rate: 1, Burst: 1, MaxKeys: 4, Now: c.now})
	ctx := context.Background()
	const n = 2000
	for i := range n {
		th.Log(ctx, log, slog.LevelInfo, fmt.Sprint("src", i), fmt.Sprint("reason", i%500), "refused", slog.Int("n", i))
		if l := len(th.keys); l > 4+MaxOverflow+1 {
			t.Fatalf("%d keys, want at most %d", l, 4+MaxOverflow+1)
		}
	}
	th.FlushAll(ctx)
	total := 0
	for _, l := range lines(t, &b) {
		total += 1 + l.Suppressed
	}
	if total != n {
		t.Fatalf("lines + suppressed = %d, want %d", total, n)
	}
	// Once idle, the keys are swept and a new source gets its own key.
	c.add(time.Minute)
	th.Flush(ctx)
	th.Log(ctx, log, slog.LevelInfo, "fresh", "r", "refused")
	if _, ok := th.keys[key{"refused", "fresh", "r"}]; !ok {
		t.Fatal("a new key did not get its own entry after the table emptied")
	}
}

// TestNilAndDisabled: a nil Throttle writes every line; a level the logger
// does not write is neither written nor counted.
func TestNilAndDisabled(t *testing.T) {
	var b bytes.Buffer
	log := jsonLogger(&b)
	var th *Throttle
	for range 5 {
		th.Log(context.Background(), log, slog.LevelInfo, "a", "r", "refused")
	}
	th.Flush(context.Background())
	if n := len(lines(t, &b)); n != 5 {
		t.Fatalf("nil throttle wrote %d lines, want 5", n)
	}
	b.Reset()
	th = New(Options{})
	for range 5 {
		th.Log(context.Background(), log, slog.LevelDebug, "a", "r", "refused")
	}
	if b.Len() != 0 || len(th.keys) != 0 {
		t.Fatalf("debug lines at info level: %q, %d keys", b.String(), len(th.keys))
	}
}

// TestRunFlushesAtStop: when Run's context ends, what is held back is
// written whatever the budgets.
func TestRunFlushesAtStop(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	log := jsonLogger(&b)
	th := New(Options{Rate: 1, Burst: 1, Now: c.now})
	for i := range 4 {
		th.Log(context.Background(), log, slog.LevelWarn, "acme", "x", "refused", slog.Int("n", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { th.Run(ctx, time.Hour); close(done) }()
	cancel()
	<-done
	got := lines(t, &b)
	if len(got) != 2 || got[1].N != 3 || got[1].Suppressed != 2 {
		t.Fatalf("lines %+v, want n=0 then the tail n=3 with suppressed 2", got)
	}
}

// TestTotalBound: one line from each of many sources (an attacker rotating
// addresses) is held to the total budget; every line is still counted.
func TestTotalBound(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	log := jsonLogger(&b)
	th := New(Options{Rate: 1, Burst: 3, TotalRate: 10, TotalBurst: 20, MaxKeys: 1000, Now: c.now})
	ctx := context.Background()
	const n, secs = 20000, 10
	for i := range n {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 7: 1, 15: byte(i)})
		src, _ := a.Prefix(64)
		th.Log(ctx, log, slog.LevelInfo, Source(src), "bad_credentials", "refused", slog.Int("n", i))
		if i%(n/secs/10) == 0 {
			c.add(100 * time.Millisecond)
			th.Flush(ctx)
		}
	}
	written := len(lines(t, &b))
	if max := 20 + 10*secs + 10; written > max {
		t.Fatalf("%d lines over %ds from %d sources, want at most %d", written, secs, n, max)
	}
	th.FlushAll(ctx)
	total, all := 0, lines(t, &b)
	for _, l := range all {
		total += 1 + l.Suppressed
	}
	if total != n || len(all)-written > 1000+MaxOverflow+1 {
		t.Fatalf("lines + suppressed = %d (want %d); %d lines at the final flush", total, n, len(all)-written)
	}
	if got := Source(netip.MustParsePrefix("2001:db8:1:2::/64")); got != "src:2001:db8:1:2::/64" {
		t.Fatalf("Source of an IPv6 /64 = %q", got)
	}
	if got := Source(netip.MustParsePrefix("192.0.2.1/32")); got != "src:192.0.2.1/32" {
		t.Fatalf("Source of an IPv4 address = %q", got)
	}
}
