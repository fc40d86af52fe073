package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSender answers by sequence number: every third send is refused.
type fakeSender struct {
	delay  time.Duration
	closed *atomic.Int64
}

func (f fakeSender) Send(ctx context.Context, seq int64) Outcome {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if seq%3 == 2 {
		return Outcome{Code: "429", Err: errors.New("slow down")}
	}
	return Outcome{Code: "200", SESID: fmt.Sprintf("id-%d", seq)}
}

func (f fakeSender) Close() error { f.closed.Add(1); return nil }

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		delay       time.Duration
		wantSent    int64 // -1: not exact
		minElapsed  time.Duration
		maxElapsed  time.Duration
		wantMatched bool
	}{
		{name: "count bound", opts: Options{Workers: 4, Count: 30}, wantSent: 30, maxElapsed: 5 * time.Second},
		{name: "duration bound", opts: Options{Workers: 2, Duration: 100 * time.Millisecond}, delay: time.Millisecond,
			wantSent: -1, minElapsed: 100 * time.Millisecond, maxElapsed: 2 * time.Second},
		// 40 sends at 400/s: the last is due at 97.5 ms.
		{name: "paced", opts: Options{Workers: 4, Count: 40, Rate: 400}, wantSent: 40, minElapsed: 95 * time.Millisecond, maxElapsed: 2 * time.Second},
		{name: "paced and capped", opts: Options{Workers: 4, Count: 1000, Rate: 100, Duration: 150 * time.Millisecond},
			wantSent: -1, minElapsed: 140 * time.Millisecond, maxElapsed: 2 * time.Second},
		{name: "SES times matched", opts: Options{Workers: 3, Count: 9, SESTime: func(id string) (time.Duration, bool) {
			return 50 * time.Microsecond, strings.HasPrefix(id, "id-")
		}}, wantSent: 9, maxElapsed: 5 * time.Second, wantMatched: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var closed atomic.Int64
			var done atomic.Int64
			opts := tt.opts
			opts.Done = &done
			opts.NewSender = func(int) (Sender, error) { return fakeSender{delay: tt.delay, closed: &closed}, nil }
			res, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSent >= 0 && res.Sent != tt.wantSent {
				t.Errorf("Sent = %d, want %d", res.Sent, tt.wantSent)
			}
			if res.Sent == 0 || done.Load() != res.Sent || int64(res.Latency.Count()) != res.Sent {
				t.Errorf("Sent %d, Done %d, latency samples %d: want equal and > 0", res.Sent, done.Load(), res.Latency.Count())
			}
			if got := res.Codes["200"] + res.Codes["429"]; got != res.Sent || res.Codes["429"] != (res.Sent+0)/3 {
				t.Errorf("codes %v for %d sends: want every third 429", res.Codes, res.Sent)
			}
			if res.Errors["429"] != "slow down" {
				t.Errorf("Errors = %v, want the 429 cause", res.Errors)
			}
			if res.Elapsed < tt.minElapsed || res.Elapsed > tt.maxElapsed {
				t.Errorf("Elapsed = %v, want %v to %v", res.Elapsed, tt.minElapsed, tt.maxElapsed)
			}
			if closed.Load() != int64(opts.Workers) {
				t.Errorf("%d senders closed, want %d", closed.Load(), opts.Workers)
			}
			if tt.wantMatched {
				if res.Matched != res.Codes["200"] || res.SES.Count() != uint64(res.Matched) || res.SES.Quantile(1) != 50*time.Microsecond {
					t.Errorf("matched %d, SES samples %d max %v; want %d at 50µs", res.Matched, res.SES.Count(), res.SES.Quantile(1), res.Codes["200"])
				}
			} else if res.Matched != 0 {
				t.Errorf("Matched = %d without SESTime", res.Matched)
			}
		})
	}
}

func TestRunPacingCountsLateSends(t *testing.T) {
	// One worker, each send 10 ms, paced at 1000/s: nearly every send is late.
	var closed atomic.Int64
	res, err := Run(context.Background(), Options{Workers: 1, Count: 10, Rate: 1000,
		NewSender: func(int) (Sender, error) { return fakeSender{delay: 10 * time.Millisecond, closed: &closed}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Late < 8 || res.MaxLag < 50*time.Millisecond {
		t.Errorf("Late = %d, MaxLag = %v; want >= 8 late and a lag of ~80 ms", res.Late, res.MaxLag)
	}
}

func TestRunRefuses(t *testing.T) {
	ok := func(int) (Sender, error) { return fakeSender{closed: new(atomic.Int64)}, nil }
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no workers", Options{Count: 1, NewSender: ok}, "Workers must be positive"},
		{"unbounded", Options{Workers: 1, NewSender: ok}, "a Count or a Duration is required"},
		{"sender fails", Options{Workers: 2, Count: 1, NewSender: func(i int) (Sender, error) {
			if i == 1 {
				return nil, errors.New("no connection")
			}
			return ok(i)
		}}, "no connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.opts); err == nil || err.Error() != tt.wantErr && !strings.HasSuffix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	res, err := Run(ctx, Options{Workers: 2, Count: 1 << 40, Rate: 100,
		NewSender: func(int) (Sender, error) { return fakeSender{closed: new(atomic.Int64)}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed > 2*time.Second || res.Sent > 20 {
		t.Fatalf("ran %v and %d sends after a cancel at 50 ms", res.Elapsed, res.Sent)
	}
}
