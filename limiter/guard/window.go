package guard

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/store"
)

// The first-contact window's side of the event processor: every Delivery,
// Bounce, Complaint and Reject of a tenant whose window is active settles
// the event's recipients in the store (store.WindowStore), which moves the
// window; a periodic check mirrors each window into the gauges and warns
// when a tenant's first contacts expire while no Delivery event was ever
// seen for it (its configuration set does not publish them).

// WindowFunc returns a tenant's first-contact window and whether it is
// active (configured, and the tenant's configuration set declared to
// publish Delivery events: gateway.Tenant.WindowActive).
type WindowFunc func(tenant string) (w gateway.FirstContactWindow, active bool)

// windows is the guard's window state.
type windows struct {
	st     store.WindowStore // nil: the store has no window
	of     WindowFunc
	size   *prometheus.GaugeVec
	out    *prometheus.GaugeVec
	mu     sync.Mutex
	warned map[string]bool // tenants warned about missing Delivery events
}

func newWindows(st Store, of WindowFunc, r prometheus.Registerer) (*windows, error) {
	w := &windows{of: of, warned: map[string]bool{},
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_first_contact_window",
			Help: "The tenant's first-contact window: how many first contacts may await an SES event."}, []string{"tenant"}),
		out: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sesgate_first_contact_outstanding",
			Help: "The tenant's first contacts sent and not yet settled by an SES event."}, []string{"tenant"}),
	}
	w.st, _ = st.(store.WindowStore)
	if r != nil {
		for _, c := range []prometheus.Collector{w.size, w.out} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// settleOutcome is what an event does to the window; ok false: nothing.
func settleOutcome(ev *feedback.Event) (store.Settle, bool) {
	switch {
	case ev.Type == feedback.TypeDelivery:
		return store.SettleDelivery, true
	case ev.Complaints() > 0:
		return store.SettleComplaint, true
	case ev.HardBounces() > 0:
		return store.SettleBounce, true
	case ev.Type == feedback.TypeBounce || ev.Type == feedback.TypeComplaint || ev.Type == feedback.TypeReject:
		return store.SettleNeutral, true
	}
	return "", false
}

// settle applies ev to its tenant's window. A failure is logged, not
// returned: the breaker has already counted the event, and an unsettled
// entry expires on its own.
func (g *Guard) settle(ctx context.Context, ev *feedback.Event) {
	ws := g.win
	if ws.st == nil || ws.of == nil {
		return
	}
	w, active := ws.of(ev.Tenant)
	outcome, ok := settleOutcome(ev)
	if !active || !ok {
		return
	}
	addrs := ev.Addresses()
	if len(addrs) > store.MaxSettleRecipients {
		addrs = addrs[:store.MaxSettleRecipients]
	}
	res, err := ws.st.SettleFirstContacts(ctx, store.SettleRequest{Tenant: ev.Tenant, Outcome: outcome, Recipients: addrs, Window: w})
	if err != nil {
		g.m.events.WithLabelValues(string(ev.Type), "window_error").Inc()
		g.log.Warn("first-contact window not settled; its entries expire", "tenant", ev.Tenant, "event", string(ev.Type), "err", err.Error())
		return
	}
	ws.set(ev.Tenant, res.Status)
	if res.Shrunk {
		g.log.Info("first-contact window shrunk", "tenant", ev.Tenant, "window", int64(res.Status.Window), "outstanding", res.Status.Outstanding)
	}
}

func (ws *windows) set(tenant string, st store.WindowStatus) {
	ws.size.WithLabelValues(tenant).Set(st.Window)
	ws.out.WithLabelValues(tenant).Set(float64(st.Outstanding))
}

// WindowStatus is a tenant's first-contact window as an operator sees it.
type WindowStatus struct {
	Configured bool // the policy gives the tenant a window
	Active     bool // configured and Delivery events declared
	// Off says why the window does not apply (empty when Active).
	Off    string
	Policy gateway.FirstContactWindow
	store.WindowStatus
	// NoDeliveries: first contacts expired and no Delivery event was ever
	// seen: the configuration set probably does not publish them.
	NoDeliveries bool
}

// Window returns tenant's first-contact window.
func (g *Guard) Window(ctx context.Context, tenant string) (WindowStatus, error) {
	if _, err := g.config(tenant); err != nil {
		return WindowStatus{}, err
	}
	ws := g.win
	var out WindowStatus
	if ws.of == nil {
		out.Off = "not configured"
		return out, nil
	}
	w, active := ws.of(tenant)
	out.Configured, out.Active, out.Policy = w.On(), active, w
	switch {
	case !w.On():
		out.Off = "not configured"
		return out, nil
	case !active:
		out.Off = "the tenant's configuration set is not declared to publish Delivery events (ses.delivery_events): the static first-contact budget applies"
		return out, nil
	case ws.st == nil:
		out.Off = "the store has no first-contact window"
		return out, nil
	}
	st, err := ws.st.FirstContactWindow(ctx, tenant, w)
	if err != nil {
		return WindowStatus{}, err
	}
	out.WindowStatus = st
	out.NoDeliveries = st.Expired > 0 && st.Deliveries == 0
	ws.set(tenant, st)
	return out, nil
}

// CheckWindows reads every active window (the gauges) and warns, once per
// tenant until its first Delivery, when first contacts expire without any
// Delivery event ever seen. Start runs it every EvalEvery.
func (g *Guard) CheckWindows(ctx context.Context) {
	if g.win.of == nil || g.win.st == nil {
		return
	}
	for _, tenant := range *g.tenants.Load() {
		if _, active := g.win.of(tenant); !active {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := g.Window(cctx, tenant)
		cancel()
		if err != nil {
			g.log.Debug("first-contact window not read", "tenant", tenant, "err", err.Error())
			continue
		}
		g.win.mu.Lock()
		warn := st.NoDeliveries && !g.win.warned[tenant]
		g.win.warned[tenant] = st.NoDeliveries
		g.win.mu.Unlock()
		if warn {
			g.log.Log(ctx, slog.LevelWarn, "first contacts expire and no SES Delivery event was ever seen: does the tenant's configuration set publish Delivery events to the gateway?",
				"tenant", tenant, "expired", st.Expired, "window", int64(st.Window))
		}
	}
}
