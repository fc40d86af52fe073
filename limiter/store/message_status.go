package store

import "time"

// MessageEvent is one step of a message's life as its app may see it
// (GET /v1/messages/{id}): accepted (SES took it), then what SES reported.
// Both stores keep a message's events under its gateway id for the
// message memory's TTL (DefaultMessageTTL, events.message_ttl), at most
// MaxMessageEvents of them (the newest), in the order they were recorded.
type MessageEvent struct {
	GatewayID    string    `json:"-"`
	Tenant       string    `json:"tenant"`
	Type         string    `json:"type"` // accepted, send, delivery, bounce, complaint, ...
	At           time.Time `json:"at"`
	SESMessageID string    `json:"ses_message_id,omitempty"`
	Recipients   []string  `json:"recipients,omitempty"`
	// Detail: the bounce type and subtype, the complaint type, a reject or
	// delay reason.
	Detail string `json:"detail,omitempty"`
}

// MaxMessageEvents bounds the events kept per message.
const MaxMessageEvents = 50
