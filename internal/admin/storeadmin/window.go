package storeadmin

import (
	"context"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/limiter/store"
)

// window is t's first-contact window for its status; nil without one.
func (v tenantsView) window(ctx context.Context, t *gateway.Tenant) (*admin.Window, error) {
	w := t.Limits.FirstContactWindow
	if !w.On() {
		return nil, nil
	}
	out := &admin.Window{Active: t.WindowActive(), Min: w.Min, Max: w.Max}
	ws, ok := v.st.(store.WindowStore)
	switch {
	case !ok:
		out.Active, out.Off = false, "the store has no first-contact window"
		return out, nil
	case !out.Active:
		out.Off = admin.WindowOffNoDeliveries
	}
	st, err := ws.FirstContactWindow(ctx, t.ID, w)
	if err != nil {
		return nil, err
	}
	out.Window, out.Outstanding, out.Held, out.Deliveries, out.Expired = st.Window, st.Outstanding, st.Held, st.Deliveries, st.Expired
	out.NoDeliveries = out.Active && st.Expired > 0 && st.Deliveries == 0
	return out, nil
}
