package admin

import (
	"sync"
	"time"
)

// flusher calls flush every interval from one goroutine, and once more
// when closed: the write loop of the batched shared-store writers
// (FeedWriter, RefusalCounter).
type flusher struct {
	stop, done chan struct{}
	once       sync.Once
}

func startFlusher(every time.Duration, flush func()) *flusher {
	f := &flusher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				flush()
			case <-f.stop:
				flush()
				return
			}
		}
	}()
	return f
}

// close runs the last flush and waits for it; later calls just wait.
func (f *flusher) close() {
	f.once.Do(func() { close(f.stop) })
	<-f.done
}
