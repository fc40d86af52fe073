package guard

import (
	"context"
	"time"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
)

// Notifier tells the apps what happened (package limiter/webhook queues
// their webhooks). Its calls must not fail the event: each is one cheap
// store write whose failure the Notifier counts and logs itself.
type Notifier interface {
	// Event: an attributed SES event was processed.
	Event(ctx context.Context, ev *feedback.Event)
	// Suppressed: addrs went on a suppression list because of ev.
	Suppressed(ctx context.Context, ev *feedback.Event, addrs []string, reason, scope string)
	// BreakerChanged: the tenant's breaker moved to state.
	BreakerChanged(ctx context.Context, tenant string, state store.BreakerState, reason string, openUntil, at time.Time)
}

// notifyChanges tells the Notifier of a tenant's state moves (not of
// warnings, nor of the account guard's record).
func (g *Guard) notifyChanges(ctx context.Context, tenant string, changes []breaker.Change) {
	if g.notify == nil || tenant == AccountID {
		return
	}
	for _, c := range changes {
		if c.From != c.To {
			g.notify.BreakerChanged(ctx, tenant, c.To, c.Reason, c.OpenUntil, c.At)
		}
	}
}
