package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// The first-contact window (gateway.FirstContactWindow), step 4b of
// admission: after the first-contact budget, when AdmitRequest.Limits has a
// window (Max > 0) and the message has new recipients, the tenant's
// outstanding first contacts (admitted, not yet settled by an SES event,
// not expired) plus the message's new ones must fit in the window, else
// ReasonFirstWindow (RetryAfter: WindowRetry at most, sooner when the
// oldest outstanding entry expires sooner; CacheFor 0: known recipients
// still pass). A message finding nothing outstanding passes whatever its
// size, so a message with more new recipients than the window never
// deadlocks: outstanding never exceeds max(window, recipients per
// message). On commit each new recipient is outstanding until
// OutstandingTimeout. Expired entries are dropped (and counted in
// WindowStatus.Expired) without changing the window.
//
// SettleFirstContacts is the event processor's call: it settles the
// outstanding entries of an event's recipients and moves the window.
// Delivery settles and grows (+1 per settled recipient below the
// threshold, +1/window above, up to Max). Bounce (a hard bounce) settles.
// Bounces shrink by rate, not one by one: the settled Deliveries and
// Bounces of the tenant's current epoch are counted
// (WindowStatus.EpochDelivered, EpochBounced), and when they reach the
// window's SampleSize the epoch ends (EndEpoch): the window halves
// (threshold = window = max(floor(window/2), Min)) when more than
// BounceRate of them bounced, and a new epoch starts either way. Only
// settled entries count, so a duplicate event counts nothing. Complaint
// halves the window at once, once per event, at most once per (tenant,
// recipient) within SettleMemory, so a duplicate complaint changes
// nothing: complaints are rare and serious. Neutral (a soft bounce, a
// reject) only settles. Deliveries are counted (WindowStatus.Deliveries)
// whether or not they settle anything: the gateway's evidence that the
// tenant's configuration set publishes them.

// ReasonFirstWindow is the refusal of a message whose new recipients do not
// fit in the tenant's first-contact window.
const ReasonFirstWindow Reason = gateway.LimitFirstContactWindow

// WindowRetry caps the RetryAfter of a ReasonFirstWindow refusal: Delivery
// events usually free slots within seconds.
const WindowRetry = 2 * time.Second

// SettleMemory is how long a shrink is remembered per (tenant, recipient).
const SettleMemory = time.Hour

// Settle is what an SES event does to the window.
type Settle string

// Settle outcomes.
const (
	SettleDelivery  Settle = "delivery"
	SettleBounce    Settle = "bounce"    // a hard bounce: counted in the epoch
	SettleComplaint Settle = "complaint" // halves at once
	SettleNeutral   Settle = "neutral"
)

// MaxSettleRecipients bounds one SettleFirstContacts call.
const MaxSettleRecipients = 100

// SettleRequest is one SES event's effect on a tenant's window.
type SettleRequest struct {
	Tenant     string
	Outcome    Settle
	Recipients []string // addresses; compared lowercased (the HMAC of the known memory)
	Window     gateway.FirstContactWindow
}

// Validate checks the request bounds.
func (r *SettleRequest) Validate() error {
	switch {
	case r.Tenant == "" || len(r.Tenant) > 64 || strings.ContainsAny(r.Tenant, "{}\x00"):
		return errors.New("store: invalid tenant id")
	case len(r.Recipients) > MaxSettleRecipients:
		return fmt.Errorf("store: %d recipients to settle (want at most %d)", len(r.Recipients), MaxSettleRecipients)
	case !r.Window.On():
		return errors.New("store: settle without a window")
	}
	switch r.Outcome {
	case SettleDelivery, SettleBounce, SettleComplaint, SettleNeutral:
		return nil
	}
	return fmt.Errorf("store: settle outcome %q", r.Outcome)
}

// SettleResult is what a SettleFirstContacts call did.
type SettleResult struct {
	Settled int          // outstanding entries removed
	Shrunk  bool         // the window halved (a complaint, or a bad epoch)
	Status  WindowStatus // after the call
}

// WindowStatus is a tenant's first-contact window as the store holds it.
type WindowStatus struct {
	Window      float64 // the current window (Initial before any event)
	Threshold   int64   // slow start below it
	Outstanding int64   // live outstanding first contacts
	Held        int64   // messages refused by the window (counted, never limiting)
	Deliveries  int64   // Delivery events' recipients seen
	Expired     int64   // outstanding entries that expired without an event
	// The current epoch's settled first contacts: delivered, hard-bounced.
	EpochDelivered, EpochBounced int64
}

// WindowStore is the first-contact window's part of a store; both stores
// implement it.
type WindowStore interface {
	SettleFirstContacts(ctx context.Context, req SettleRequest) (SettleResult, error)
	// FirstContactWindow reads the tenant's window under w (the initial
	// values when the tenant has no state yet).
	FirstContactWindow(ctx context.Context, tenant string, w gateway.FirstContactWindow) (WindowStatus, error)
}

// WindowStart is the window of a tenant without state: Initial clamped to
// Min..Max, Threshold (at least the window).
func WindowStart(w gateway.FirstContactWindow) (float64, int64) {
	return ClampWindow(float64(w.Initial), w), w.Threshold
}

// ClampWindow bounds v to w's Min..Max.
func ClampWindow(v float64, w gateway.FirstContactWindow) float64 {
	return min(max(v, float64(max(w.Min, 1))), float64(w.Max))
}

// GrowWindow is the window after settled Deliveries: +1 each below the
// threshold, +1/window each at or above it, up to Max.
func GrowWindow(cwnd float64, thresh int64, settled int, w gateway.FirstContactWindow) float64 {
	for range settled {
		if cwnd < float64(thresh) {
			cwnd++
		} else {
			cwnd += 1 / cwnd
		}
	}
	return ClampWindow(cwnd, w)
}

// EndEpoch ends the epoch when its settled first contacts (delivered d,
// bounced b) reach w's SampleSize: the window halves when b/(d+b) exceeds
// w's BounceRate (shrunk true, even at the floor), and the counts restart
// at 0. Otherwise it returns its arguments unchanged. A bad epoch keeps
// the threshold (unlike a complaint, ShrinkWindow): Deliveries then double
// the window again up to it, so a tenant whose bounces only now and then
// cross the rate by chance (2% bounces, a sample of 20 with two) recovers
// within a few event latencies, while one that bounces badly epoch after
// epoch is halved every sample.
func EndEpoch(cwnd float64, thresh, d, b int64, w gateway.FirstContactWindow) (_ float64, _, _, _ int64, shrunk bool) {
	if d+b < w.SampleSize() {
		return cwnd, thresh, d, b, false
	}
	if float64(b)/float64(d+b) > w.BounceRate() {
		cwnd, _ = ShrinkWindow(cwnd, w)
		shrunk = true
	}
	return cwnd, thresh, 0, 0, shrunk
}

// ShrinkWindow is the window and threshold after a complaint (a bad epoch
// keeps the threshold: EndEpoch).
func ShrinkWindow(cwnd float64, w gateway.FirstContactWindow) (float64, int64) {
	v := ClampWindow(float64(int64(cwnd/2)), w)
	return v, int64(v)
}
