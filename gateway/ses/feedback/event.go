package feedback

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses"
)

// EventType is the SES event type, as the JSON spells it.
type EventType string

// The SES event types. Open, Click and Subscription parse but carry no
// recipients here.
const (
	TypeBounce           EventType = "Bounce"
	TypeComplaint        EventType = "Complaint"
	TypeDelivery         EventType = "Delivery"
	TypeSend             EventType = "Send"
	TypeReject           EventType = "Reject"
	TypeDeliveryDelay    EventType = "DeliveryDelay"
	TypeRenderingFailure EventType = "Rendering Failure"
	TypeOpen             EventType = "Open"
	TypeClick            EventType = "Click"
	TypeSubscription     EventType = "Subscription"
)

// Bounce types.
const (
	BouncePermanent    = "Permanent"
	BounceTransient    = "Transient"
	BounceUndetermined = "Undetermined"
)

// Bounce and complaint subtypes that say SES did not send the message
// because the address was already suppressed: they do not count towards
// SES's bounce or complaint rate.
const (
	SubTypeSuppressed               = "Suppressed"
	SubTypeOnAccountSuppressionList = "OnAccountSuppressionList"
)

// Limits of ParseEvent.
const (
	MaxEventBytes      = 256 << 10 // an SES event; SNS messages are at most 256 KB
	MaxEventRecipients = 100       // SES sends to at most 50 per message
	MaxEventTags       = 50        // SES allows 50 tags per message
	maxFieldLength     = 1024      // a kept string field (addresses, codes, reasons)
)

// ErrInvalidEvent wraps every ParseEvent error.
var ErrInvalidEvent = errors.New("invalid SES event")

// Recipient is one recipient an event is about.
type Recipient struct {
	Address string
	// Bounce only: copied from the event's bounce type and subtype.
	BounceType    string
	BounceSubType string
	// From the DSN, when SES had one (bounces, delays).
	Action         string
	Status         string // enhanced status code, e.g. "5.1.1"
	DiagnosticCode string
}

// Event is one SES event, normalized from either format.
type Event struct {
	Type EventType
	// Tenant and GatewayID come from the mail.tags the sink set, or from
	// attribution (Ingester); empty after ParseEvent when the event has no
	// tags.
	Tenant       string
	GatewayID    string
	SESMessageID string    // mail.messageId
	MailTime     time.Time // mail.timestamp: when the message was sent
	EventTime    time.Time // the event's own timestamp; MailTime when it has none
	Source       string    // mail.source
	Recipients   []Recipient

	BounceType    string // Bounce
	BounceSubType string // Bounce
	// Complaint: complaintSubType (empty or OnAccountSuppressionList) and
	// complaintFeedbackType (abuse, not-spam, ...).
	ComplaintSubType      string
	ComplaintFeedbackType string
	FeedbackID            string // Bounce, Complaint
	// Reason: the reject reason, the rendering failure's error message or
	// the delivery delay's delayType.
	Reason string
	// Notification is true for the identity notification format
	// (notificationType), which carries no tags.
	Notification bool
	// Tags are the message's own tags (mail.tags with one value, except
	// SES's ses:* and the sink's reserved ones), at most MaxEventTags.
	Tags map[string]string
	// Subject is mail.commonHeaders.subject (clipped).
	Subject string
}

// HardBounces returns how many recipients bounced permanently in a way that
// counts towards the bounce rate: Permanent bounces, except those SES did
// not even try (Suppressed, OnAccountSuppressionList).
func (e *Event) HardBounces() int {
	if e.Type != TypeBounce || e.BounceType != BouncePermanent || suppressedSubType(e.BounceSubType) {
		return 0
	}
	return len(e.Recipients)
}

// Complaints returns how many recipients complained in a way that counts
// towards the complaint rate: complaints except those on the account
// suppression list and "not-spam" feedback.
func (e *Event) Complaints() int {
	if e.Type != TypeComplaint || suppressedSubType(e.ComplaintSubType) || e.ComplaintFeedbackType == "not-spam" {
		return 0
	}
	return len(e.Recipients)
}

// Suppression reasons, spelled as the store spells them.
const (
	SuppressHardBounce = "hard-bounce"
	SuppressComplaint  = "complaint"
)

// SuppressionReason returns why the event's recipients should go on a
// suppression list, or "" when they should not: SuppressHardBounce for
// Permanent bounces of every subtype (addresses SES already suppressed are
// suppressed here too, which saves the round trip), SuppressComplaint for
// complaints other than "not-spam". Transient and Undetermined bounces are
// counted elsewhere, never suppressed.
func (e *Event) SuppressionReason() string {
	switch {
	case e.Type == TypeBounce && e.BounceType == BouncePermanent:
		return SuppressHardBounce
	case e.Type == TypeComplaint && e.ComplaintFeedbackType != "not-spam":
		return SuppressComplaint
	}
	return ""
}

func suppressedSubType(s string) bool {
	return s == SubTypeSuppressed || s == SubTypeOnAccountSuppressionList
}

// Addresses returns the recipients' addresses.
func (e *Event) Addresses() []string {
	out := make([]string, len(e.Recipients))
	for i, r := range e.Recipients {
		out[i] = r.Address
	}
	return out
}

// Wire shapes. Unknown fields are ignored: SES adds fields over time.
type wireEvent struct {
	EventType        *string   `json:"eventType"`
	NotificationType *string   `json:"notificationType"`
	Mail             *wireMail `json:"mail"`
	Bounce           *struct {
		BounceType        string          `json:"bounceType"`
		BounceSubType     string          `json:"bounceSubType"`
		BouncedRecipients []wireRecipient `json:"bouncedRecipients"`
		Timestamp         string          `json:"timestamp"`
		FeedbackID        string          `json:"feedbackId"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients  []wireRecipient `json:"complainedRecipients"`
		Timestamp             string          `json:"timestamp"`
		FeedbackID            string          `json:"feedbackId"`
		ComplaintSubType      *string         `json:"complaintSubType"`
		ComplaintFeedbackType string          `json:"complaintFeedbackType"`
	} `json:"complaint"`
	Delivery *struct {
		Timestamp  string   `json:"timestamp"`
		Recipients []string `json:"recipients"`
	} `json:"delivery"`
	Send   *struct{} `json:"send"`
	Reject *struct {
		Reason string `json:"reason"`
	} `json:"reject"`
	DeliveryDelay *struct {
		Timestamp         string          `json:"timestamp"`
		DelayType         string          `json:"delayType"`
		DelayedRecipients []wireRecipient `json:"delayedRecipients"`
	} `json:"deliveryDelay"`
	Failure *struct {
		TemplateName string `json:"templateName"`
		ErrorMessage string `json:"errorMessage"`
	} `json:"failure"`
}

type wireMail struct {
	Timestamp   string              `json:"timestamp"`
	MessageID   string              `json:"messageId"`
	Source      string              `json:"source"`
	Destination []string            `json:"destination"`
	Tags        map[string][]string `json:"tags"`
	// CommonHeaders.Subject: SES includes the common headers in events.
	CommonHeaders struct {
		Subject string `json:"subject"`
	} `json:"commonHeaders"`
}

type wireRecipient struct {
	EmailAddress   string `json:"emailAddress"`
	Action         string `json:"action"`
	Status         string `json:"status"`
	DiagnosticCode string `json:"diagnosticCode"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

// ParseEvent parses one SES event in either format. It ignores fields it
// does not know and refuses an event that lacks what the gateway needs: a
// known type, mail.messageId, mail.timestamp, and for bounces, complaints,
// deliveries and delays their recipients and timestamp. Tenant and
// GatewayID are filled from the sink's tags (ses.TagTenant, ses.TagID) in
// mail.tags when present.
func ParseEvent(data []byte) (*Event, error) {
	if len(data) > MaxEventBytes {
		return nil, invalid("event larger than %d bytes", MaxEventBytes)
	}
	var w wireEvent
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, invalid("not JSON: %v", err)
	}
	ev := &Event{}
	switch {
	case w.EventType != nil && w.NotificationType != nil:
		return nil, invalid("both eventType and notificationType")
	case w.EventType != nil:
		ev.Type = EventType(*w.EventType)
	case w.NotificationType != nil:
		ev.Type = EventType(*w.NotificationType)
		ev.Notification = true
	default:
		return nil, invalid("no eventType or notificationType")
	}
	if w.Mail == nil {
		return nil, invalid("no mail object")
	}
	if err := ev.fillMail(w.Mail); err != nil {
		return nil, err
	}
	ev.EventTime = ev.MailTime
	var err error
	switch ev.Type {
	case TypeBounce:
		b := w.Bounce
		if b == nil {
			return nil, invalid("Bounce without bounce object")
		}
		switch b.BounceType {
		case BouncePermanent, BounceTransient, BounceUndetermined:
		default:
			return nil, invalid("unknown bounceType %.40q", b.BounceType)
		}
		ev.BounceType, ev.BounceSubType, ev.FeedbackID = b.BounceType, clip(b.BounceSubType), clip(b.FeedbackID)
		if ev.EventTime, err = parseTime("bounce.timestamp", b.Timestamp); err != nil {
			return nil, err
		}
		if ev.Recipients, err = recipients("bounce.bouncedRecipients", b.BouncedRecipients); err != nil {
			return nil, err
		}
		for i := range ev.Recipients {
			ev.Recipients[i].BounceType, ev.Recipients[i].BounceSubType = ev.BounceType, ev.BounceSubType
		}
	case TypeComplaint:
		c := w.Complaint
		if c == nil {
			return nil, invalid("Complaint without complaint object")
		}
		if c.ComplaintSubType != nil {
			ev.ComplaintSubType = clip(*c.ComplaintSubType)
		}
		ev.ComplaintFeedbackType, ev.FeedbackID = clip(c.ComplaintFeedbackType), clip(c.FeedbackID)
		if ev.EventTime, err = parseTime("complaint.timestamp", c.Timestamp); err != nil {
			return nil, err
		}
		if ev.Recipients, err = recipients("complaint.complainedRecipients", c.ComplainedRecipients); err != nil {
			return nil, err
		}
	case TypeDelivery:
		d := w.Delivery
		if d == nil {
			return nil, invalid("Delivery without delivery object")
		}
		if ev.EventTime, err = parseTime("delivery.timestamp", d.Timestamp); err != nil {
			return nil, err
		}
		rs := make([]wireRecipient, len(d.Recipients))
		for i, a := range d.Recipients {
			rs[i].EmailAddress = a
		}
		if ev.Recipients, err = recipients("delivery.recipients", rs); err != nil {
			return nil, err
		}
	case TypeDeliveryDelay:
		d := w.DeliveryDelay
		if d == nil {
			return nil, invalid("DeliveryDelay without deliveryDelay object")
		}
		ev.Reason = clip(d.DelayType)
		if ev.EventTime, err = parseTime("deliveryDelay.timestamp", d.Timestamp); err != nil {
			return nil, err
		}
		if ev.Recipients, err = recipients("deliveryDelay.delayedRecipients", d.DelayedRecipients); err != nil {
			return nil, err
		}
	case TypeSend:
		if w.Send == nil {
			return nil, invalid("Send without send object")
		}
		ev.Recipients = destination(w.Mail.Destination)
	case TypeReject:
		if w.Reject == nil {
			return nil, invalid("Reject without reject object")
		}
		ev.Reason = clip(w.Reject.Reason)
		ev.Recipients = destination(w.Mail.Destination)
	case TypeRenderingFailure:
		if w.Failure == nil {
			return nil, invalid("Rendering Failure without failure object")
		}
		ev.Reason = clip(w.Failure.ErrorMessage)
	case TypeOpen, TypeClick, TypeSubscription:
	default:
		return nil, invalid("unknown event type %.40q", string(ev.Type))
	}
	return ev, nil
}

func (ev *Event) fillMail(m *wireMail) error {
	if m.MessageID == "" || len(m.MessageID) > maxFieldLength {
		return invalid("mail.messageId missing or too long")
	}
	t, err := parseTime("mail.timestamp", m.Timestamp)
	if err != nil {
		return err
	}
	ev.SESMessageID, ev.MailTime, ev.Source = m.MessageID, t, clip(m.Source)
	ev.Tenant, ev.GatewayID = tag(m.Tags, ses.TagTenant), tag(m.Tags, ses.TagID)
	ev.Subject = clip(m.CommonHeaders.Subject)
	for name := range m.Tags {
		if strings.HasPrefix(name, "ses:") || strings.HasPrefix(name, gateway.ReservedTagPrefix) || len(ev.Tags) >= MaxEventTags {
			continue
		}
		if v := tag(m.Tags, name); v != "" && len(name) <= maxFieldLength {
			if ev.Tags == nil {
				ev.Tags = map[string]string{}
			}
			ev.Tags[name] = v
		}
	}
	if len(m.Destination) > MaxEventRecipients {
		return invalid("more than %d destinations", MaxEventRecipients)
	}
	return nil
}

// tag returns the single value of tag name, or "" when it is absent, empty
// or ambiguous.
func tag(tags map[string][]string, name string) string {
	v := tags[name]
	if len(v) != 1 || len(v[0]) > maxFieldLength {
		return ""
	}
	return v[0]
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, invalid("%s missing", field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("%s not an ISO 8601 time", field)
	}
	return t, nil
}

func recipients(field string, in []wireRecipient) ([]Recipient, error) {
	switch {
	case len(in) == 0:
		return nil, invalid("%s empty", field)
	case len(in) > MaxEventRecipients:
		return nil, invalid("%s has more than %d entries", field, MaxEventRecipients)
	}
	out := make([]Recipient, len(in))
	for i, r := range in {
		a := strings.TrimSpace(r.EmailAddress)
		if a == "" || len(a) > maxFieldLength || !strings.Contains(a, "@") {
			return nil, invalid("%s[%d] has no address", field, i)
		}
		out[i] = Recipient{Address: a, Action: clip(r.Action), Status: clip(r.Status), DiagnosticCode: clip(r.DiagnosticCode)}
	}
	return out, nil
}

func destination(in []string) []Recipient {
	out := make([]Recipient, 0, len(in))
	for _, a := range in {
		if a != "" && len(a) <= maxFieldLength {
			out = append(out, Recipient{Address: a})
		}
	}
	return out
}

func clip(s string) string {
	if len(s) > maxFieldLength {
		return s[:maxFieldLength]
	}
	return s
}
