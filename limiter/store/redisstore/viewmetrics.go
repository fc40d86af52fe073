package redisstore

import "github.com/prometheus/client_golang/prometheus"

// RegisterViewMetrics exposes the in-process view on reg, read at each
// scrape: sesgate_store_view_ready (1 while suppression checks and the
// global freeze are answered from memory, 0 while every check reads Redis:
// starting, rebuilding after a lost subscription, or the view off),
// sesgate_store_view_entries (addresses in the filter) and
// sesgate_store_view_rebuilds_total / _subscriptions_lost_total.
func (s *Store) RegisterViewMetrics(reg prometheus.Registerer) error {
	gauge := func(name, help string, f func(ViewStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.ViewStats()) })
	}
	counter := func(name, help string, f func(ViewStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(s.ViewStats()) })
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, c := range []prometheus.Collector{
		gauge("sesgate_store_view_ready", "1 while suppression checks and the global freeze are answered from this replica's memory; 0 while they read Redis.",
			func(st ViewStats) float64 { return b(st.Ready && st.FreezeFresh) }),
		gauge("sesgate_store_view_entries", "Suppressed addresses (tenant and global lists) in this replica's filter.",
			func(st ViewStats) float64 { return float64(st.Count) }),
		counter("sesgate_store_view_rebuilds_total", "Completed builds of the suppression filter from a scan of every list.",
			func(st ViewStats) float64 { return float64(st.Rebuilds) }),
		counter("sesgate_store_view_subscriptions_lost_total", "Times the view's pub/sub subscription was lost (checks read Redis until it is rebuilt).",
			func(st ViewStats) float64 { return float64(st.Drops) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
