package gateway

import (
	"fmt"
	"sync/atomic"
)

// DefaultMemBudgetBytes is the default of a process's MemBudget: room for
// twelve messages of SES's 40 MiB limit.
const DefaultMemBudgetBytes = 512 << 20

// MemBudget bounds the message bytes that the front ends hold in memory
// together. A front end takes what a message will hold before it reads the
// message (HTTP: the declared length) or as it reads it (SMTP: in steps),
// and gives it back once the message is answered. What would go over the
// limit is refused, never waited for, so a slow client never holds
// another's place. One MemBudget is built per process and shared by every
// front end. It is safe for concurrent use.
type MemBudget struct {
	limit int64
	used  atomic.Int64
}

// NewMemBudget returns a budget of limit bytes; limit must be positive.
func NewMemBudget(limit int64) (*MemBudget, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("gateway: memory budget must be positive, not %d", limit)
	}
	return &MemBudget{limit: limit}, nil
}

// TryTake takes n bytes and reports true, or takes nothing and reports
// false when that would go over the limit.
func (b *MemBudget) TryTake(n int64) bool {
	for {
		used := b.used.Load()
		if n > b.limit-used {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release gives back n bytes taken by TryTake.
func (b *MemBudget) Release(n int64) { b.used.Add(-n) }

// InUse returns the bytes taken now.
func (b *MemBudget) InUse() int64 { return b.used.Load() }

// Limit returns the budget's size in bytes.
func (b *MemBudget) Limit() int64 { return b.limit }
