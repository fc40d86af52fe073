package server

import (
	"log/slog"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/limiter/store"
)

// dashboardSide is this replica's share of the dashboard's fleet-wide
// state (issue 16), when the store keeps it (both stores do): its logged
// warnings and errors go to the shared feed (admin.FeedWriter, one store
// write every 2 s), and its refusals to the shared per-minute counters
// (admin.RefusalCounter, one store write every 5 s). Neither writes on the
// send path: the pipeline's observe hook only increments a map.
type dashboardSide struct {
	store    store.DashboardStore // nil: the store keeps none
	feed     *admin.FeedWriter
	refusals *admin.RefusalCounter
}

// newDashboard starts the writers on st when it is a store.DashboardStore
// and tees events into the shared feed.
func newDashboard(st any, replica string, events *admin.EventLog, log *slog.Logger) (*dashboardSide, error) {
	d := &dashboardSide{}
	ds, ok := st.(store.DashboardStore)
	if !ok {
		return d, nil
	}
	d.store = ds
	var err error
	if d.feed, err = admin.NewFeedWriter(admin.FeedWriterOptions{Store: ds, Replica: replica, Logger: log}); err != nil {
		return nil, err
	}
	events.Forward(d.feed.Add)
	if d.refusals, err = admin.NewRefusalCounter(admin.RefusalCounterOptions{Store: ds, Logger: log}); err != nil {
		d.feed.Close()
		return nil, err
	}
	return d, nil
}

// observe counts each refusal (by tenant and error code, as the
// sesgate_messages_refused_total metric) for the shared counters, then
// calls next.
func (d *dashboardSide) observe(next func(string, *gateway.Error)) func(string, *gateway.Error) {
	if d.refusals == nil {
		return next
	}
	return func(tenant string, err *gateway.Error) {
		next(tenant, err)
		if err != nil {
			d.refusals.Add(tenant, err.Code.String())
		}
	}
}

// close flushes and stops the writers.
func (d *dashboardSide) close() {
	if d.refusals != nil {
		d.refusals.Close()
	}
	if d.feed != nil {
		d.feed.Close()
	}
}
