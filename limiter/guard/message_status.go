package guard

import (
	"context"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/store"
)

// StatusStore keeps each message's events for its app (GET
// /v1/messages/{id}); both stores implement it.
type StatusStore interface {
	RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error
}

// statusTimeout bounds the status write of one event: it never holds up
// the intake longer.
const statusTimeout = time.Second

// eventTypes names SES's event types as the status API does.
var eventTypes = map[feedback.EventType]string{
	feedback.TypeSend: "send", feedback.TypeDelivery: "delivery", feedback.TypeBounce: "bounce",
	feedback.TypeComplaint: "complaint", feedback.TypeReject: "reject", feedback.TypeDeliveryDelay: "delivery_delay",
	feedback.TypeRenderingFailure: "rendering_failure",
}

// recordStatus adds an attributed event to its message's status record;
// a failure is logged, never the event's.
func (g *Guard) recordStatus(ctx context.Context, ev *feedback.Event) {
	typ, ok := eventTypes[ev.Type]
	if g.status == nil || !ok || ev.GatewayID == "" {
		return
	}
	me := store.MessageEvent{GatewayID: ev.GatewayID, Tenant: ev.Tenant, Type: typ, At: ev.EventTime.UTC(),
		SESMessageID: ev.SESMessageID, Recipients: ev.Addresses(), Detail: detail(ev)}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	if err := g.status.RecordMessageEvents(ctx, []store.MessageEvent{me}, g.statusTTL); err != nil {
		g.m.events.WithLabelValues(string(ev.Type), "status_not_recorded").Inc()
		g.log.Warn("message status not recorded", "tenant", ev.Tenant, "id", ev.GatewayID, "err", err.Error())
	}
}

func detail(ev *feedback.Event) string {
	switch ev.Type {
	case feedback.TypeBounce:
		return ev.BounceType + "/" + ev.BounceSubType
	case feedback.TypeComplaint:
		return strings.Trim(ev.ComplaintFeedbackType+"/"+ev.ComplaintSubType, "/")
	}
	return ev.Reason
}
