package gateway

import (
	"sync"
	"testing"
)

func TestSlots(t *testing.T) {
	s := NewSlots[string](2)
	if !s.Take("a") || !s.Take("a") || s.Take("a") {
		t.Fatal("a: want two slots then none")
	}
	if !s.Take("b") {
		t.Fatal("b refused while a is full")
	}
	s.Give("a")
	if !s.Take("a") || s.Take("a") {
		t.Fatal("a: a given-back slot is not taken again exactly once")
	}
	s.Give("a")
	s.Give("a")
	s.Give("b")
	if n := s.Len(); n != 0 {
		t.Fatalf("%d keys left after every slot was given back, want 0", n)
	}
}

// TestSlotsRace: many goroutines taking and giving the slots of a few keys
// never hold more than max of one key at once, and leave no entries.
func TestSlotsRace(t *testing.T) {
	const max, keys, workers, rounds = 3, 4, 32, 500
	s := NewSlots[int](max)
	var (
		mu   sync.Mutex
		held [keys]int
		over bool
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				k := (w + i) % keys
				if !s.Take(k) {
					continue
				}
				mu.Lock()
				held[k]++
				over = over || held[k] > max
				mu.Unlock()
				mu.Lock()
				held[k]--
				mu.Unlock()
				s.Give(k)
			}
		})
	}
	wg.Wait()
	if over {
		t.Fatalf("more than %d slots of one key held at once", max)
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("%d keys left after every slot was given back, want 0", n)
	}
}
