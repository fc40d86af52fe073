package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the precision: each power of two is split into 2^subBits
// buckets, so a value is known to within 1/128 (< 0.8%).
const subBits = 7

// maxValue is the largest value kept apart (about 137 s); larger ones
// count as maxValue.
const maxValue = 1<<37 - 1

// numBuckets covers 0 to maxValue.
const numBuckets = (37-subBits)<<subBits + 1<<subBits

// Histogram records durations in a fixed log-linear array of counters, like
// HDR histograms: exact below 128 ns, relative error under 1% above, up to
// about 137 s (longer durations count as 137 s). The
// zero value is ready. It is not safe for concurrent use: give each worker
// its own and Merge them.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64 // nanoseconds
	min, max int64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	n := bits.Len64(v) // >= subBits+1
	shift := n - 1 - subBits
	mantissa := int(v>>shift) - 1<<subBits
	return (n-subBits)<<subBits + mantissa
}

// bucketMid returns the middle of bucket i.
func bucketMid(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	k, m := i>>subBits, i&(1<<subBits-1)
	lo := uint64(1<<subBits+m) << (k - 1)
	width := uint64(1) << (k - 1)
	return int64(lo + width/2)
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := min(max(int64(d), 0), maxValue)
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds the samples of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the value at quantile q (0 to 1): the smallest recorded
// value such that at least q of the samples are at or below it, to within
// the bucket precision, clamped to the exact min and max. Zero when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketMid(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Min, Max and Mean are exact.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest sample.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Summary is a histogram's figures in milliseconds, for reports.
type Summary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Min   float64 `json:"min_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summary returns the figures of h.
func (h *Histogram) Summary() Summary {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Summary{
		Count: h.n, P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Min: ms(h.Min()), Max: ms(h.Max()), Mean: ms(h.Mean()),
	}
}
