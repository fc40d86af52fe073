package load

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws one line on stderr while a phase runs, only when stderr is
// a terminal.
type progress struct {
	stopc chan struct{}
	done  chan struct{}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func startProgress(w io.Writer, name string, total int64, cap time.Duration, n *atomic.Int64) *progress {
	p := &progress{stopc: make(chan struct{}), done: make(chan struct{})}
	if !isTerminal(w) {
		close(p.done)
		return p
	}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stopc:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
			}
			el := time.Since(start)
			done := n.Load()
			// The bar shows whichever bound is nearer.
			frac := 0.0
			if total > 0 {
				frac = float64(done) / float64(total)
			}
			if cap > 0 {
				frac = max(frac, el.Seconds()/cap.Seconds())
			}
			frac = min(frac, 1)
			const width = 30
			fill := int(frac * width)
			fmt.Fprintf(w, "\r%-12s [%s%s] %d msgs  %.0f/s  %.1fs", name,
				strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, float64(done)/el.Seconds(), el.Seconds())
		}
	}()
	return p
}

func (p *progress) stop() {
	select {
	case <-p.done:
	default:
		close(p.stopc)
		<-p.done
	}
}
