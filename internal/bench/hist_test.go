package bench

import (
	"math"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		q       []float64
		want    []time.Duration
		tol     float64 // relative
	}{
		{name: "empty", q: []float64{0.5, 0.99}, want: []time.Duration{0, 0}},
		{name: "one sample", samples: []time.Duration{3 * time.Millisecond}, q: []float64{0, 0.5, 1}, want: []time.Duration{3 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond}},
		{name: "small values exact", samples: []time.Duration{1, 2, 3, 4, 100}, q: []float64{0.2, 0.4, 0.6, 0.8, 1}, want: []time.Duration{1, 2, 3, 4, 100}},
		{name: "negative counts as zero", samples: []time.Duration{-5, 10}, q: []float64{0.5, 1}, want: []time.Duration{0, 10}},
		{name: "uniform 1..1000 us", samples: uniform(1000, time.Microsecond), q: []float64{0.5, 0.9, 0.99, 0.999},
			want: []time.Duration{500 * time.Microsecond, 900 * time.Microsecond, 990 * time.Microsecond, 999 * time.Microsecond}, tol: 1.0 / 128},
		{name: "tail", samples: append(uniform(999, time.Microsecond), time.Second), q: []float64{0.999, 1},
			want: []time.Duration{999 * time.Microsecond, time.Second}, tol: 1.0 / 128},
		{name: "over the range clamps", samples: []time.Duration{time.Hour}, q: []float64{1}, want: []time.Duration{maxValue}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, s := range tt.samples {
				h.Record(s)
			}
			if h.Count() != uint64(len(tt.samples)) {
				t.Fatalf("Count = %d, want %d", h.Count(), len(tt.samples))
			}
			for i, q := range tt.q {
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - tt.want[i])); diff > tt.tol*float64(tt.want[i]) {
					t.Errorf("Quantile(%v) = %v, want %v (tolerance %.2f%%)", q, got, tt.want[i], tt.tol*100)
				}
			}
		})
	}
}

func uniform(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

func TestBucketPrecision(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 999_999_999, maxValue} {
		mid := uint64(bucketMid(bucketOf(v)))
		if math.Abs(float64(mid)-float64(v)) > float64(v)/128 {
			t.Errorf("value %d: bucket %d has middle %d, off by more than 1/128", v, bucketOf(v), mid)
		}
	}
	if got := bucketOf(maxValue); got != numBuckets-1 {
		t.Errorf("bucketOf(maxValue) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestHistogramMergeAndSummary(t *testing.T) {
	var a, b, all Histogram
	for i := 1; i <= 100; i++ {
		d := time.Duration(i) * time.Millisecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // empty: no change
	if m.Summary() != all.Summary() {
		t.Fatalf("merged summary %+v, want %+v", m.Summary(), all.Summary())
	}
	s := all.Summary()
	if s.Count != 100 || s.Min != 1 || s.Max != 100 || s.Mean != 50.5 {
		t.Errorf("summary count/min/max/mean = %d/%v/%v/%v, want 100/1/100/50.5", s.Count, s.Min, s.Max, s.Mean)
	}
	if !(s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Errorf("percentiles out of order: %+v", s)
	}
}
