package gateway

import (
	"errors"
	"io"
)

// Sizes of a MessageBuffer.
const (
	// msgBufSmall is what a MessageBuffer keeps in one slice on the Go heap,
	// grown by append: most messages, which Bytes then returns as they are.
	msgBufSmall = 1 << 20
	// msgBufChunk is the size of each chunk beyond msgBufSmall.
	msgBufChunk = 1 << 20
	// msgBufStep is the unit in which a MessageBuffer takes from its budget.
	msgBufStep = 64 << 10
)

// ErrBudgetFull is returned by MessageBuffer writes when the memory budget
// has no room for the bytes.
var ErrBudgetFull = errors.New("gateway: message bytes in memory at the memory budget")

// MessageBuffer holds a message body of unknown size as it is read (SMTP
// DATA, an HTTP body without Content-Length), so that the message is held
// once, not grown by doubling (up to 3x its size for a moment) and then
// copied again.
//
// The first MiB goes into one slice on the Go heap. Beyond it, the body
// goes into chunks of 1 MiB outside the Go heap where the system allows
// it (anonymous mappings on Unix): Bytes then copies them into one slice
// of the exact size and unmaps each chunk as soon as it is copied, so the
// message is resident about once plus a chunk, whatever the garbage
// collector does. The chunks never leave the buffer; what Bytes returns is
// ordinary Go memory.
//
// With a budget, the buffer takes from it in steps of 64 KiB as it grows
// and gives everything back at Release; a write that does not fit fails
// with ErrBudgetFull. The zero value is not usable; see NewMessageBuffer.
// A MessageBuffer is not safe for concurrent use.
type MessageBuffer struct {
	budget *MemBudget // nil: not accounted
	held   int64
	small  []byte
	chunks [][]byte // each msgBufChunk long; the last one filled up to n
	n      int64
	whole  []byte // Bytes' result, once built
	built  bool
}

// NewMessageBuffer returns an empty buffer accounted against budget (nil
// for none).
func NewMessageBuffer(budget *MemBudget) *MessageBuffer {
	return &MessageBuffer{budget: budget}
}

// Len returns the bytes written.
func (b *MessageBuffer) Len() int64 { return b.n }

// reserve takes room in the budget for n more bytes.
func (b *MessageBuffer) reserve(n int64) error {
	if b.budget == nil {
		return nil
	}
	if need := b.n + n - b.held; need > 0 {
		step := max(need, msgBufStep)
		if !b.budget.TryTake(step) {
			return ErrBudgetFull
		}
		b.held += step
	}
	return nil
}

// space returns where the next bytes go, at most maxLen of them: the free
// end of the small slice (grown by doubling up to msgBufSmall), then of the
// last chunk, allocating a chunk when the last one is full.
func (b *MessageBuffer) space(maxLen int) ([]byte, error) {
	if b.built {
		return nil, errors.New("gateway: MessageBuffer written after Bytes")
	}
	if b.n < msgBufSmall {
		if len(b.small) == cap(b.small) {
			grown := make([]byte, len(b.small), min(max(2*cap(b.small), 4<<10), msgBufSmall))
			copy(grown, b.small)
			b.small = grown
		}
		free := b.small[len(b.small):cap(b.small)]
		return free[:min(maxLen, len(free))], nil
	}
	beyond := b.n - msgBufSmall
	if int64(len(b.chunks))*msgBufChunk == beyond { // all full
		c, err := allocChunk(msgBufChunk)
		if err != nil {
			return nil, err
		}
		b.chunks = append(b.chunks, c)
	}
	used := int(beyond - int64(len(b.chunks)-1)*msgBufChunk)
	free := b.chunks[len(b.chunks)-1][used:]
	return free[:min(maxLen, len(free))], nil
}

// commit records that n bytes were written into the last space.
func (b *MessageBuffer) commit(n int) {
	if b.n < msgBufSmall {
		b.small = b.small[:len(b.small)+n]
	}
	b.n += int64(n)
}

// Write appends p.
func (b *MessageBuffer) Write(p []byte) (int, error) {
	if err := b.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	written := 0
	for written < len(p) {
		s, err := b.space(len(p) - written)
		if err != nil {
			return written, err
		}
		k := copy(s, p[written:])
		b.commit(k)
		written += k
	}
	return written, nil
}

// ReadFrom reads r to its end straight into the buffer (io.Copy uses it).
func (b *MessageBuffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		s, err := b.space(msgBufStep)
		if err != nil {
			return total, err
		}
		k, rerr := r.Read(s)
		if err := b.reserve(int64(k)); err != nil {
			return total, err
		}
		b.commit(k)
		total += int64(k)
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Bytes returns the message as one slice of Go memory; the buffer keeps no
// other copy once it returned. It may be called more than once; no write
// may follow it.
func (b *MessageBuffer) Bytes() []byte {
	if b.built {
		return b.whole
	}
	b.built = true
	if len(b.chunks) == 0 {
		b.whole = b.small[:len(b.small):len(b.small)]
		b.small = nil
		return b.whole
	}
	whole := make([]byte, b.n)
	off := copy(whole, b.small)
	b.small = nil
	for i, c := range b.chunks {
		off += copy(whole[off:], c[:min(int64(len(c)), b.n-int64(off))])
		freeChunk(c)
		b.chunks[i] = nil
	}
	b.chunks = nil
	b.whole = whole
	return whole
}

// Release frees what the buffer holds outside the Go heap and gives its
// bytes back to the budget. The slice Bytes returned stays valid (it is
// Go memory), but the budget no longer counts it.
func (b *MessageBuffer) Release() {
	for i, c := range b.chunks {
		freeChunk(c)
		b.chunks[i] = nil
	}
	b.chunks, b.small = nil, nil
	if b.budget != nil {
		b.budget.Release(b.held)
	}
	b.held = 0
}
