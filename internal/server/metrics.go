package server

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sesgate/sesgate/gateway"
)

// DefaultMaxTenantLabels bounds the tenant label without
// metrics.max_tenant_labels in the policy.
const DefaultMaxTenantLabels = 100

// metrics are the process's own series, on the one registry every part of
// serve registers on.
type metrics struct {
	reg        *registry
	accepted   *prometheus.CounterVec
	refused    *prometheus.CounterVec
	sesLatency prometheus.Histogram
	sesErrors  *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	labels     *tenantLabels
}

// newMetrics creates the registry with the process's series and the Go and
// process collectors. maxTenantLabels <= 0 is DefaultMaxTenantLabels.
func newMetrics(maxTenantLabels int) (*metrics, error) {
	if maxTenantLabels <= 0 {
		maxTenantLabels = DefaultMaxTenantLabels
	}
	m := &metrics{
		reg:    &registry{Registry: prometheus.NewRegistry()},
		labels: newTenantLabels(maxTenantLabels),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_messages_accepted_total", Help: "Messages accepted by SES through the gateway, by tenant.",
		}, []string{"tenant"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_messages_refused_total", Help: "Messages refused by the gateway, by tenant and reason (the error code); failed authentications count under tenant \"unauthenticated\".",
		}, []string{"tenant", "reason"}),
		sesLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sesgate_ses_send_seconds", Help: "Duration of SES SendEmail calls, retries included.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		sesErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_ses_errors_total", Help: "Failed SES SendEmail calls, by type (the gateway code the error maps to).",
		}, []string{"type"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesgate_policy_reloads_total", Help: "Policy reloads, by result (ok, invalid, unchanged).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{
		m.accepted, m.refused, m.sesLatency, m.sesErrors, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observed is the pipeline's per-message hook.
func (m *metrics) observed(tenant string, err *gateway.Error) {
	l := m.labels.of(tenant)
	if err == nil {
		m.accepted.WithLabelValues(l).Inc()
		return
	}
	m.refused.WithLabelValues(l, err.Code.String()).Inc()
}

// authFailed counts a failed authentication under tenant "unauthenticated".
func (m *metrics) authFailed(err error) {
	m.refused.WithLabelValues(m.labels.of(""), gateway.AsError(err).Code.String()).Inc()
}

// sesObserved is the SES sink's per-call hook.
func (m *metrics) sesObserved(took time.Duration, errType string) {
	m.sesLatency.Observe(took.Seconds())
	if errType != "" {
		m.sesErrors.WithLabelValues(errType).Inc()
	}
}

// registry is the process's Prometheus registry; it remembers the names of
// what was registered (logged at debug level at start; a test checks each
// is in the README).
type registry struct {
	*prometheus.Registry
	mu    sync.Mutex
	names []string
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// Register registers c and remembers its metric names.
func (r *registry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range ch {
		if sm := fqNameRE.FindStringSubmatch(d.String()); sm != nil && strings.HasPrefix(sm[1], "sesgate_") {
			r.names = append(r.names, sm[1])
		}
	}
	return nil
}

// MustRegister registers cs or panics.
func (r *registry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Names returns the sesgate_ metric names registered so far, sorted.
func (r *registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.names)
	slices.Sort(out)
	return slices.Compact(out)
}

// tenantLabels bounds the tenant label: the first max tenants seen keep
// their id, the others are counted as "other".
type tenantLabels struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newTenantLabels(max int) *tenantLabels {
	return &tenantLabels{max: max, seen: map[string]struct{}{}}
}

func (t *tenantLabels) of(id string) string {
	if id == "" {
		return "unauthenticated"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[id]; ok {
		return id
	}
	if len(t.seen) >= t.max {
		return "other"
	}
	t.seen[id] = struct{}{}
	return id
}
