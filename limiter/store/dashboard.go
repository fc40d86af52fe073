package store

import (
	"context"
	"time"
)

// The incident dashboard's shared state (issue 16): what every replica
// writes in batches, off the send path, so every replica's dashboard shows
// the same. Both stores implement DashboardStore; storetest.RunDashboard
// holds them to the same semantics.

// SeriesSpan is the longest span the dashboard charts (its 1 h / 3 h / 6 h
// choice): the per-minute series that back it (refusals, and the bounces
// the guard keeps by send minute) are kept this long.
const SeriesSpan = 6 * time.Hour

// MaxRecipientMessages caps the messages remembered per recipient (the
// newest stay).
const MaxRecipientMessages = 20

// MaxFeedEvents caps the shared feed (the newest stay).
const MaxFeedEvents = 500

// AcceptedMessage is a message SES accepted: its "accepted" status event
// and the recipients to index it under (hashed by the store's Keyer, never
// stored in clear).
type AcceptedMessage struct {
	Event      MessageEvent
	Recipients []string
}

// Accepted returns the accepted messages of refs (those with a gateway id).
func Accepted(refs []MessageRef) []AcceptedMessage {
	out := make([]AcceptedMessage, 0, len(refs))
	for _, r := range refs {
		if r.GatewayID != "" {
			out = append(out, AcceptedMessage{Event: MessageEvent{GatewayID: r.GatewayID, Tenant: r.Tenant, Type: "accepted",
				At: r.At, SESMessageID: r.SESMessageID}, Recipients: r.Recipients})
		}
	}
	return out
}

// RecipientMessage is one entry of a recipient's index: a message sent to
// the address, by whom and when SES accepted it.
type RecipientMessage struct {
	Tenant    string    `json:"t"`
	GatewayID string    `json:"id"`
	At        time.Time `json:"at"`
}

// RefusalCount is a number of refusals of one tenant, for one reason, in
// one unix minute.
type RefusalCount struct {
	Tenant string
	Reason string
	Minute int64 // unix minute
	N      int64
}

// FeedEvent is one thing that happened somewhere in the fleet, for the
// dashboard's live feed.
type FeedEvent struct {
	At      time.Time `json:"at"`
	Replica string    `json:"replica,omitempty"`
	Kind    string    `json:"kind"`
	Tenant  string    `json:"tenant,omitempty"`
	Level   string    `json:"level"`
	Text    string    `json:"text"`
}

// DashboardStore is the dashboard's shared state. Each write is one round
// trip (one pipeline, one transaction) whatever its size.
type DashboardStore interface {
	// RecordAccepted records each message's status event (as
	// RecordMessageEvents) and adds it to the index of each of its
	// recipients, capped at MaxRecipientMessages per recipient, kept ttl
	// (the message status's TTL); one round trip.
	RecordAccepted(ctx context.Context, msgs []AcceptedMessage, ttl time.Duration) error
	// MessagesTo returns the messages indexed under addr (compared
	// case-insensitively), newest first.
	MessagesTo(ctx context.Context, addr string) ([]RecipientMessage, error)

	// AddRefusals adds the counts to the tenants' per-minute refusal
	// counters, kept SeriesSpan past their minute; one round trip.
	AddRefusals(ctx context.Context, counts []RefusalCount) error
	// Refusals returns the counts of the tenants' refusals in the minutes
	// from..to (unix minutes, inclusive), as RefusalCount records in no
	// particular order, zero counts left out; one round trip.
	Refusals(ctx context.Context, tenants []string, from, to int64) ([]RefusalCount, error)

	// AppendFeed adds events to the shared feed, capped at MaxFeedEvents;
	// one round trip.
	AppendFeed(ctx context.Context, evs []FeedEvent) error
	// Feed returns the newest limit events, newest first.
	Feed(ctx context.Context, limit int) ([]FeedEvent, error)
}
