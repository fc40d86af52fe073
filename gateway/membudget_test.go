package gateway

import (
	"sync"
	"testing"
)

func TestMemBudget(t *testing.T) {
	if _, err := NewMemBudget(0); err == nil {
		t.Fatal("empty budget accepted")
	}
	b, err := NewMemBudget(100)
	if err != nil {
		t.Fatal(err)
	}
	if !b.TryTake(60) || b.TryTake(41) || !b.TryTake(40) || b.TryTake(1) {
		t.Fatalf("takes over a budget of 100 wrong; in use %d", b.InUse())
	}
	b.Release(60)
	if b.InUse() != 40 || !b.TryTake(60) {
		t.Fatalf("release: in use %d", b.InUse())
	}
	b.Release(100)

	// Concurrent takers never hold more than the limit together.
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int64(0)
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if b.TryTake(30) {
					mu.Lock()
					peak = max(peak, b.InUse())
					mu.Unlock()
					b.Release(30)
				}
			}
		})
	}
	wg.Wait()
	if peak > 100 || b.InUse() != 0 {
		t.Fatalf("peak %d, left %d", peak, b.InUse())
	}
}
