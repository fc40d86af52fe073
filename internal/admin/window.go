package admin

// Window is a tenant's first-contact window in its status (absent when the
// policy gives it none): Active when its configuration set is declared to
// publish Delivery events, else Off says why the static first-contact
// budget applies alone. The figures are the store's, fleet-wide.
type Window struct {
	Active      bool    `json:"active"`
	Off         string  `json:"off,omitempty"`
	Min         int64   `json:"min"`
	Max         int64   `json:"max"`
	Window      float64 `json:"window"`
	Outstanding int64   `json:"outstanding"`
	// Held: messages refused by the window; Deliveries: Delivery event
	// recipients seen; Expired: outstanding first contacts no event settled.
	Held       int64 `json:"held"`
	Deliveries int64 `json:"deliveries"`
	Expired    int64 `json:"expired"`
	// NoDeliveries: first contacts expired and no Delivery event was ever
	// seen: the configuration set probably does not publish them.
	NoDeliveries bool `json:"no_deliveries,omitempty"`
}

// WindowOffNoDeliveries is Window.Off for a tenant whose configuration set
// is not declared to publish Delivery events.
const WindowOffNoDeliveries = "ses.delivery_events is not set: without Delivery events the window cannot open, the static first-contact budget applies"
