package redisstore

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/internal/redistest"
)

// TestInstrument: commands are timed by name, failures counted by kind,
// redis.Nil is not a failure.
func TestInstrument(t *testing.T) {
	srv := redistest.Start(t)
	c, err := NewClient(ConnOptions{URL: "redis://" + srv.Addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	if err := Instrument(c, reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Set(ctx, "k", "text", 0)
	c.Get(ctx, "missing") // redis.Nil: not an error
	c.Incr(ctx, "k")      // not an integer: an error of kind other

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]uint64{}
	errs := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "sesgate_redis_latency_seconds":
				ops[labels["op"]] = m.GetHistogram().GetSampleCount()
			case "sesgate_redis_errors_total":
				errs[labels["op"]+"/"+labels["kind"]] = m.GetCounter().GetValue()
			}
		}
	}
	if ops["set"] != 1 || ops["get"] != 1 || ops["incr"] != 1 {
		t.Fatalf("latency samples by op %v, want set, get and incr once", ops)
	}
	if len(errs) != 1 || errs["incr/other"] != 1 {
		t.Fatalf("errors %v, want incr/other 1", errs)
	}
}
