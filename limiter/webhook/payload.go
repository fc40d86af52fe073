package webhook

import (
	"time"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
)

// Event types an app may subscribe to: SES's, then sesgate's own.
const (
	EventSend             = "send"
	EventDelivery         = "delivery"
	EventBounce           = "bounce"
	EventComplaint        = "complaint"
	EventReject           = "reject"
	EventDeliveryDelay    = "delivery_delay"
	EventRenderingFailure = "rendering_failure"
	EventRefusedByBreaker = "refused_by_breaker"
	EventBreakerOpened    = "breaker_opened"
	EventBreakerClosed    = "breaker_closed"
	EventSuppressed       = "suppressed"
)

// EventTypes lists every event type, in the documentation's order.
func EventTypes() []string {
	return []string{EventSend, EventDelivery, EventBounce, EventComplaint, EventReject, EventDeliveryDelay,
		EventRenderingFailure, EventRefusedByBreaker, EventBreakerOpened, EventBreakerClosed, EventSuppressed}
}

// sesTypes maps SES event types to webhook types; the others (Open, Click,
// Subscription) are not offered.
var sesTypes = map[feedback.EventType]string{
	feedback.TypeSend: EventSend, feedback.TypeDelivery: EventDelivery, feedback.TypeBounce: EventBounce,
	feedback.TypeComplaint: EventComplaint, feedback.TypeReject: EventReject,
	feedback.TypeDeliveryDelay: EventDeliveryDelay, feedback.TypeRenderingFailure: EventRenderingFailure,
}

// Payload is the JSON body of a delivery, in the Standard Webhooks shape:
// type, timestamp, data.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"` // when it happened (the SES event's time)
	Data      Data      `json:"data"`
}

// Data is what happened. Fields that do not apply to the type are left out.
type Data struct {
	Tenant       string `json:"tenant"`
	MessageID    string `json:"message_id,omitempty"`     // sesgate's id of the message
	SESMessageID string `json:"ses_message_id,omitempty"` // SES's MessageId
	// Recipients the event is about.
	Recipients []Recipient       `json:"recipients,omitempty"`
	Bounce     *Bounce           `json:"bounce,omitempty"`
	Complaint  *Complaint        `json:"complaint,omitempty"`
	Reason     string            `json:"reason,omitempty"`  // reject reason, delay type, rendering error, breaker or suppression reason
	Tags       map[string]string `json:"tags,omitempty"`    // the message's own tags
	Subject    string            `json:"subject,omitempty"` // only with include_subject
	Breaker    *Breaker          `json:"breaker,omitempty"`
}

// Recipient is one recipient concerned, with the DSN details SES had.
type Recipient struct {
	Address        string `json:"address"`
	Status         string `json:"status,omitempty"` // enhanced status, e.g. 5.1.1
	Action         string `json:"action,omitempty"`
	DiagnosticCode string `json:"diagnostic_code,omitempty"`
}

// Bounce is a bounce's classification.
type Bounce struct {
	Type    string `json:"type"`    // Permanent, Transient, Undetermined
	SubType string `json:"subtype"` // General, NoEmail, Suppressed, ...
}

// Complaint is a complaint's classification.
type Complaint struct {
	FeedbackType string `json:"feedback_type,omitempty"` // abuse, fraud, not-spam, ...
	SubType      string `json:"subtype,omitempty"`       // OnAccountSuppressionList or empty
}

// Breaker is the tenant's breaker after a change.
type Breaker struct {
	State     string     `json:"state"` // open, half_open, closed, forced_open
	OpenUntil *time.Time `json:"open_until,omitempty"`
}

// fromEvent builds the payload of an SES event; ok is false for a type
// not offered.
func fromEvent(ev *feedback.Event, subject bool) (Payload, bool) {
	typ, ok := sesTypes[ev.Type]
	if !ok {
		return Payload{}, false
	}
	d := Data{Tenant: ev.Tenant, MessageID: ev.GatewayID, SESMessageID: ev.SESMessageID, Tags: ev.Tags, Reason: ev.Reason}
	for _, r := range ev.Recipients {
		d.Recipients = append(d.Recipients, Recipient{Address: r.Address, Status: r.Status, Action: r.Action, DiagnosticCode: r.DiagnosticCode})
	}
	switch ev.Type {
	case feedback.TypeBounce:
		d.Bounce = &Bounce{Type: ev.BounceType, SubType: ev.BounceSubType}
	case feedback.TypeComplaint:
		d.Complaint = &Complaint{FeedbackType: ev.ComplaintFeedbackType, SubType: ev.ComplaintSubType}
	}
	if subject {
		d.Subject = ev.Subject
	}
	return Payload{Type: typ, Timestamp: ev.EventTime.UTC(), Data: d}, true
}
