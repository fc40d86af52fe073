package guard

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// metrics of the guard. Tenant labels are bounded by the configured
// tenants (events for unknown tenants never reach the guard) plus
// AccountID.
type metrics struct {
	state      *prometheus.GaugeVec
	trips      *prometheus.CounterVec
	bounce     *prometheus.GaugeVec
	complaint  *prometheus.GaugeVec
	events     *prometheus.CounterVec
	remembered *prometheus.CounterVec
}

// StateValue is the value of sesgate_breaker_state for a state.
func StateValue(s store.BreakerState) float64 {
	switch s {
	case store.HalfOpen:
		return 1
	case store.Open:
		return 2
	case store.ForcedOpen:
		return 3
	}
	return 0
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_breaker_state",
			Help: "Breaker state per tenant: 0 closed, 1 half_open, 2 open, 3 forced_open (tenant _account: the account guard)."}, []string{"tenant"}),
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesgate_breaker_trips_total",
			Help: "Breaker trips (open or forced open) decided on this replica."}, []string{"tenant"}),
		bounce: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_breaker_bounce_rate",
			Help: "Hard bounce rate over the breaker window, as of the last update on this replica."}, []string{"tenant"}),
		complaint: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_breaker_complaint_rate",
			Help: "Complaint rate over the complaint window, as of the last update on this replica."}, []string{"tenant"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesgate_feedback_events_total",
			Help: "SES events processed by type and outcome (suppressed, counted, error, unknown_tenant)."}, []string{"type", "outcome"}),
		remembered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesgate_feedback_attribution_writes_total",
			Help: "SES MessageId attribution records by outcome (written, dropped, failed)."}, []string{"outcome"}),
	}
	if r != nil {
		for _, c := range []prometheus.Collector{m.state, m.trips, m.bounce, m.complaint, m.events, m.remembered} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) set(tenant string, r store.BreakerRecord, st breaker.Stats) {
	m.state.WithLabelValues(tenant).Set(StateValue(r.State))
	m.bounce.WithLabelValues(tenant).Set(st.BounceRate)
	m.complaint.WithLabelValues(tenant).Set(st.ComplaintRate)
}
