package server

import (
	"log/slog"
	"sync/atomic"

	"github.com/sesgate/sesgate/gateway"
)

// windowConfigs are the tenants' first-contact windows (the guard's
// guard.WindowFunc), swapped whole on a reload.
type windowConfigs struct {
	m atomic.Pointer[map[string]*gateway.Tenant]
}

// set takes the tenants and says, for each with a window, whether it
// applies: one line per tenant, a warning when Delivery events are not
// declared (the window cannot open; the static budget applies alone).
func (c *windowConfigs) set(tenants []*gateway.Tenant, log *slog.Logger) {
	m := make(map[string]*gateway.Tenant, len(tenants))
	for _, t := range tenants {
		m[t.ID] = t
		w := t.Limits.FirstContactWindow
		switch {
		case t.WindowActive():
			log.Info("first-contact window on", "tenant", t.ID, "initial", w.Initial, "min", w.Min, "max", w.Max,
				"threshold", w.Threshold, "outstanding_timeout", w.OutstandingTimeout.String())
		case w.On():
			log.Warn("first-contact window off: the tenant's configuration set is not declared to publish Delivery events (ses.delivery_events); the static first-contact budget applies",
				"tenant", t.ID)
		}
	}
	c.m.Store(&m)
}

// get implements guard.WindowFunc.
func (c *windowConfigs) get(id string) (gateway.FirstContactWindow, bool) {
	p := c.m.Load()
	if p == nil {
		return gateway.FirstContactWindow{}, false
	}
	t, ok := (*p)[id]
	if !ok {
		return gateway.FirstContactWindow{}, false
	}
	return t.Limits.FirstContactWindow, t.WindowActive()
}
