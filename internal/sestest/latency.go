package sestest

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Latency is how long after the send an event is published: Fixed, or a
// log-normal distribution with the given Median and Sigma (the standard
// deviation of the logarithm: 1 puts about 16% of the events beyond 2.7
// times the median), clamped to Min..Max. Draws are seeded by
// EventOptions.Seed, the message id and the event type, so a run is
// repeatable. In JSON the durations are Go duration strings
// ({"median": "2s", "sigma": 1, "max": "90s"}).
type Latency struct {
	Fixed  time.Duration
	Median time.Duration
	Sigma  float64
	Min    time.Duration
	Max    time.Duration
}

// MaxLatencySigma bounds Latency.Sigma.
const MaxLatencySigma = 5

// Check validates l.
func (l *Latency) Check() error {
	switch {
	case l.Fixed < 0 || l.Fixed > MaxEventDelay:
		return fmt.Errorf("sestest: latency fixed %v outside [0, %v]", l.Fixed, MaxEventDelay)
	case l.Fixed > 0 && (l.Median != 0 || l.Sigma != 0 || l.Min != 0 || l.Max != 0):
		return errors.New("sestest: latency: fixed excludes median, sigma, min and max")
	case l.Median < 0 || l.Median > MaxEventDelay:
		return fmt.Errorf("sestest: latency median %v outside [0, %v]", l.Median, MaxEventDelay)
	case math.IsNaN(l.Sigma) || l.Sigma < 0 || l.Sigma > MaxLatencySigma:
		return fmt.Errorf("sestest: latency sigma %v outside [0, %d]", l.Sigma, MaxLatencySigma)
	case l.Min < 0 || l.Max < 0 || l.Max > MaxEventDelay:
		return fmt.Errorf("sestest: latency min %v, max %v outside [0, %v]", l.Min, l.Max, MaxEventDelay)
	case l.Max > 0 && l.Min > l.Max:
		return fmt.Errorf("sestest: latency min %v above max %v", l.Min, l.Max)
	case l.Median > 0 && (l.Median < l.Min || (l.Max > 0 && l.Median > l.Max)):
		return fmt.Errorf("sestest: latency median %v outside [min, max]", l.Median)
	}
	return nil
}

// Sample draws the latency of one event: deterministic in (seed, id, kind).
func (l *Latency) Sample(seed uint64, id, kind string) time.Duration {
	if l.Fixed > 0 || l.Median == 0 {
		return l.Fixed
	}
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	r := rand.New(rand.NewPCG(h.Sum64(), seed))
	d := time.Duration(float64(l.Median) * math.Exp(l.Sigma*r.NormFloat64()))
	maxD := l.Max
	if maxD == 0 {
		maxD = MaxEventDelay
	}
	return min(max(d, l.Min), maxD)
}

type latencyJSON struct {
	Fixed  string  `json:"fixed,omitempty"`
	Median string  `json:"median,omitempty"`
	Sigma  float64 `json:"sigma,omitempty"`
	Min    string  `json:"min,omitempty"`
	Max    string  `json:"max,omitempty"`
}

// MarshalJSON writes the durations as Go duration strings.
func (l Latency) MarshalJSON() ([]byte, error) {
	s := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return json.Marshal(latencyJSON{Fixed: s(l.Fixed), Median: s(l.Median), Sigma: l.Sigma, Min: s(l.Min), Max: s(l.Max)})
}

// UnmarshalJSON reads Go duration strings; unknown keys are errors.
func (l *Latency) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	var out Latency
	for _, f := range []struct {
		name string
		s    string
		d    *time.Duration
	}{{"fixed", j.Fixed, &out.Fixed}, {"median", j.Median, &out.Median}, {"min", j.Min, &out.Min}, {"max", j.Max, &out.Max}} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil {
			return fmt.Errorf("latency %s: %q is not a duration like 2s or 1m30s", f.name, f.s)
		}
		*f.d = d
	}
	out.Sigma = j.Sigma
	*l = out
	return nil
}

// latencyFor is the latency of events of kind under o (nil: o.Delay).
func (o *EventOptions) latencyFor(kind string) *Latency {
	var per *Latency
	switch kind {
	case kindBounce:
		per = o.BounceLatency
	case kindComplaint:
		per = o.ComplaintLatency
	case kindDelivery:
		per = o.DeliveryLatency
	}
	if per != nil {
		return per
	}
	return o.Latency
}

// hasLatency reports whether any latency distribution is set.
func (o *EventOptions) hasLatency() bool {
	return o.Latency != nil || o.BounceLatency != nil || o.ComplaintLatency != nil || o.DeliveryLatency != nil
}

// checkLatencies validates every distribution set.
func (o *EventOptions) checkLatencies() error {
	for _, l := range []*Latency{o.Latency, o.BounceLatency, o.ComplaintLatency, o.DeliveryLatency} {
		if l != nil {
			if err := l.Check(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Event kinds a pendingEvent may be limited to ("": every kind).
const (
	kindBounce    = "bounce"
	kindComplaint = "complaint"
	kindDelivery  = "delivery"
)

// dueHeap orders pending events by due time.
type dueHeap []pendingEvent

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(pendingEvent)) }
func (h *dueHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

var _ heap.Interface = (*dueHeap)(nil)

// Floor is the shortest latency l can draw.
func (l *Latency) Floor() time.Duration {
	if l.Fixed > 0 || l.Median == 0 {
		return l.Fixed
	}
	return l.Min
}
