package gateway

import "sync"

// Slots bounds what is in flight per key (requests of a tenant,
// connections of a source): at most max at once for each key. It holds an
// entry only for a key with something in flight. It is safe for
// concurrent use.
type Slots[K comparable] struct {
	max int

	mu    sync.Mutex
	taken map[K]int // no zero entries
}

// NewSlots returns Slots of max per key.
func NewSlots[K comparable](max int) *Slots[K] {
	return &Slots[K]{max: max, taken: map[K]int{}}
}

// Take takes one of k's slots; false, taking nothing, when k has max taken.
func (s *Slots[K]) Take(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken[k] >= s.max {
		return false
	}
	s.taken[k]++
	return true
}

// Give gives back one slot that Take took for k.
func (s *Slots[K]) Give(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.taken[k] - 1; n > 0 {
		s.taken[k] = n
	} else {
		delete(s.taken, k)
	}
}

// Len is the number of keys with a slot taken.
func (s *Slots[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.taken)
}
