package redisstore

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/internal/redistest"
)

// TestViewMetrics: the metrics read the view at each scrape: ready 0 with
// the view off, 1 once built; entries and rebuilds counted; a killed
// subscription counted as lost.
func TestViewMetrics(t *testing.T) {
	srv := redistest.Start(t)
	conn := ConnOptions{URL: "redis://" + srv.Addr}
	seed, _ := viewStore(t, conn, ViewOptions{Off: true})
	suppress(t, seed, "acme", "a@x.example")
	suppress(t, seed, "", "g@x.example")

	off := prometheus.NewRegistry()
	if err := seed.RegisterViewMetrics(off); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, off, "sesgate_store_view_ready"); got != 0 {
		t.Fatalf("view off: ready %v, want 0", got)
	}

	s, _ := viewStore(t, conn, ViewOptions{})
	reg := prometheus.NewRegistry()
	if err := s.RegisterViewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the view ready", ready(s))
	for name, want := range map[string]float64{"sesgate_store_view_ready": 1, "sesgate_store_view_entries": 2, "sesgate_store_view_rebuilds_total": 1} {
		if got := metricValue(t, reg, name); got < want || (name != "sesgate_store_view_rebuilds_total" && got != want) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
	killPubSub(t, srv)
	waitFor(t, "the lost subscription counted", func() bool {
		return metricValue(t, reg, "sesgate_store_view_subscriptions_lost_total") >= 1
	})
}

// metricValue gathers reg and returns the value of the one gauge or
// counter named name.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}
