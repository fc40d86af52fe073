package gateway

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/iotest"
)

// genReader yields n pseudo-random bytes without holding them.
type genReader struct {
	rng  *rand.Rand
	left int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	for i := range p {
		p[i] = byte(g.rng.Uint32())
	}
	g.left -= int64(len(p))
	return len(p), nil
}

func gen(seed uint64, n int64) *genReader {
	return &genReader{rng: rand.New(rand.NewPCG(seed, 1)), left: n}
}

func TestMessageBufferHoldsWhatWasWritten(t *testing.T) {
	sizes := []int64{0, 1, 4095, 4096, 4097, msgBufSmall - 1, msgBufSmall, msgBufSmall + 1,
		msgBufSmall + msgBufChunk, msgBufSmall + msgBufChunk + 1, 3*msgBufChunk + 12345}
	for _, n := range sizes {
		want, _ := io.ReadAll(gen(uint64(n), n))
		budget, _ := NewMemBudget(64 << 20)
		for name, fill := range map[string]func(*MessageBuffer) error{
			"ReadFrom": func(b *MessageBuffer) error { _, err := io.Copy(b, gen(uint64(n), n)); return err },
			"ReadFrom one byte at a time": func(b *MessageBuffer) error {
				if n > 2*msgBufSmall {
					_, err := b.ReadFrom(iotest.HalfReader(gen(uint64(n), n)))
					return err
				}
				_, err := b.ReadFrom(iotest.OneByteReader(gen(uint64(n), n)))
				return err
			},
			"Write in odd pieces": func(b *MessageBuffer) error {
				for p := want; len(p) > 0; {
					k := min(len(p), 1+len(p)%70001)
					if _, err := b.Write(p[:k]); err != nil {
						return err
					}
					p = p[k:]
				}
				return nil
			},
		} {
			b := NewMessageBuffer(budget)
			if err := fill(b); err != nil {
				t.Fatalf("%d bytes, %s: %v", n, name, err)
			}
			if b.Len() != n || !bytes.Equal(b.Bytes(), want) || !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("%d bytes, %s: got %d bytes, not the ones written", n, name, len(b.Bytes()))
			}
			if held := budget.InUse(); held < n || held > n+msgBufStep {
				t.Fatalf("%d bytes, %s: budget holds %d", n, name, held)
			}
			if _, err := b.Write([]byte("x")); err == nil {
				t.Fatal("write after Bytes accepted")
			}
			b.Release()
			if budget.InUse() != 0 {
				t.Fatalf("%d bytes, %s: %d left in the budget after Release", n, name, budget.InUse())
			}
		}
	}
}

func TestMessageBufferStopsAtTheBudget(t *testing.T) {
	budget, _ := NewMemBudget(3 << 20)
	other := NewMessageBuffer(budget)
	if _, err := io.Copy(other, gen(1, 1<<20)); err != nil { // another message holds 1 MiB
		t.Fatal(err)
	}
	b := NewMessageBuffer(budget)
	_, err := io.Copy(b, gen(2, 4<<20))
	if !errors.Is(err, ErrBudgetFull) {
		t.Fatalf("got %v, want ErrBudgetFull", err)
	}
	if budget.InUse() > budget.Limit() {
		t.Fatalf("budget over its limit: %d", budget.InUse())
	}
	b.Release() // chunks unmapped without Bytes
	other.Release()
	if budget.InUse() != 0 {
		t.Fatalf("%d left in the budget", budget.InUse())
	}
}

// TestMessageBufferHoldsALargeMessageOnce counts the Go heap a 40 MiB body
// costs: the message once (Bytes' slice) plus the first MiB grown by
// doubling; a bytes.Buffer grown by doubling allocates about twice more.
func TestMessageBufferHoldsALargeMessageOnce(t *testing.T) {
	const size = DefaultMaxMessageBytes
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := NewMessageBuffer(nil)
	if _, err := io.Copy(b, io.LimitReader(gen(3, size+1), size+1)); err != nil {
		t.Fatal(err)
	}
	whole := b.Bytes()
	runtime.ReadMemStats(&after)
	b.Release()
	if len(whole) != size+1 {
		t.Fatalf("%d bytes", len(whole))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes read, %d allocated (%.3fx)", size+1, alloc, float64(alloc)/size)
	if alloc > size+size/10 {
		t.Fatalf("reading %d bytes allocated %d", size, alloc)
	}
}
