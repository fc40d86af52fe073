package guard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

func TestAlerterRetries(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int // answers in order; then 200
		wantCalls int
		delivered bool
	}{
		{name: "fails first, then delivered", statuses: []int{503, 500}, wantCalls: 3, delivered: true},
		{name: "4xx is not retried", statuses: []int{400}, wantCalls: 1},
		{name: "gives up after the attempts", statuses: []int{503, 503, 503, 503}, wantCalls: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			var got []Alert
			done := make(chan struct{}, 10)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				defer func() { done <- struct{}{} }()
				calls++
				if calls <= len(tc.statuses) {
					w.WriteHeader(tc.statuses[calls-1])
					return
				}
				b, _ := io.ReadAll(r.Body)
				var a Alert
				if err := json.Unmarshal(b, &a); err != nil || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("body %q: %v", b, err)
				}
				got = append(got, a)
			}))
			defer srv.Close()
			a, err := NewAlerter(AlerterOptions{URL: srv.URL, Attempts: 3, Backoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			start := time.Now()
			a.Send(Alert{Text: "sesgate: tenant acme breaker trip", Tenant: "acme", Event: "trip", State: "open", At: start})
			for range tc.wantCalls {
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("webhook not called")
				}
			}
			time.Sleep(50 * time.Millisecond) // no further call
			mu.Lock()
			defer mu.Unlock()
			if calls != tc.wantCalls || (len(got) == 1) != tc.delivered {
				t.Fatalf("calls %d delivered %d; want %d, %v", calls, len(got), tc.wantCalls, tc.delivered)
			}
			if tc.delivered && (got[0].Text != "sesgate: tenant acme breaker trip" || got[0].Tenant != "acme") {
				t.Fatalf("alert %+v", got[0])
			}
		})
	}
}

// TestAlerterNeverBlocks: with the webhook hanging, Send returns at once
// and alerts beyond the queue are dropped.
func TestAlerterNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	a, err := NewAlerter(AlerterOptions{URL: srv.URL, Queue: 2, Attempts: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer close(release) // before Close, which waits for the hanging post
	start := time.Now()
	for range 100 {
		a.Send(Alert{Text: "x"})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("100 sends took %v", d)
	}
}

type memMessages struct {
	mu     sync.Mutex
	writes [][]store.MessageRef
	m      map[string]store.MessageRef
}

func (m *memMessages) RememberMessages(_ context.Context, refs []store.MessageRef, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, append([]store.MessageRef(nil), refs...))
	for _, r := range refs {
		m.m[r.SESMessageID] = r
	}
	return nil
}

func (m *memMessages) LookupMessage(_ context.Context, id string) (string, string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.m[id]
	return r.Tenant, r.GatewayID, ok, nil
}

// TestRememberBatches: records are written in batches, bounded by Batch,
// and all queued ones are written at Close.
func TestRememberBatches(t *testing.T) {
	ms := &memMessages{m: map[string]store.MessageRef{}}
	r, err := NewRemember(RememberOptions{Store: ms, Batch: 4, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r.Add(store.MessageRef{SESMessageID: string(rune('a' + i)), Tenant: "acme", GatewayID: "g"})
	}
	r.Close()
	sizes := []int{}
	for _, w := range ms.writes {
		sizes = append(sizes, len(w))
	}
	if len(sizes) != 3 || sizes[0] != 4 || sizes[1] != 4 || sizes[2] != 2 {
		t.Fatalf("batches %v, want [4 4 2]", sizes)
	}
	tenant, gw, found, err := r.LookupMessage(context.Background(), "c")
	if err != nil || !found || tenant != "acme" || gw != "g" {
		t.Fatalf("lookup: %q %q %v %v", tenant, gw, found, err)
	}
}
