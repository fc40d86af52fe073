package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bounds of the relay.
const (
	MaxEvents         = 200_000
	maxNotification   = 256 << 10
	relayPostTimeout  = 10 * time.Second
	tenantTag         = "sesgate-tenant"
	eventTypeBounce   = "Bounce"
	eventTypeComplain = "Complaint"
)

// Event is one SES event the relay passed to the gateway.
type Event struct {
	At         time.Time // when the gateway answered it
	Type       string    // Bounce, Complaint, Delivery, ...
	Tenant     string    // the sesgate-tenant tag, "" without one
	Recipients []string  // bounced or complained recipients
	MailTime   time.Time // when SES accepted the mail
	Status     int       // the gateway's HTTP answer, 0 if none
}

// Relay is an http.Handler that records SNS notifications of SES events and
// passes them on, unchanged, to the gateway's SNS endpoint, answering with
// the gateway's status.
type Relay struct {
	target string
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	events  []Event
	dropped int64
}

// RelayOptions configure a Relay.
type RelayOptions struct {
	Target string // the gateway's SNS URL
	Client *http.Client
	Logger *slog.Logger
	Now    func() time.Time
}

// NewRelay returns a Relay to o.Target.
func NewRelay(o RelayOptions) *Relay {
	r := &Relay{target: o.Target, client: o.Client, log: o.Logger, now: o.Now}
	if r.client == nil {
		r.client = &http.Client{Timeout: relayPostTimeout}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// ServeHTTP implements http.Handler.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxNotification+1))
	if err != nil || len(body) > maxNotification {
		http.Error(w, "bad notification", http.StatusBadRequest)
		return
	}
	ev := parseNotification(body)
	ctx, cancel := context.WithTimeout(req.Context(), relayPostTimeout)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, r.target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range req.Header {
		if k == "Content-Type" || k == "User-Agent" || strings.HasPrefix(k, "X-Amz-Sns-") {
			out.Header[k] = v
		}
	}
	resp, err := r.client.Do(out)
	if err != nil {
		r.log.Warn("drill relay: gateway did not answer", "error", err)
		r.record(ev)
		http.Error(w, "gateway unreachable", http.StatusBadGateway)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ev.Status = resp.StatusCode
	r.record(ev)
	w.WriteHeader(resp.StatusCode)
}

func (r *Relay) record(ev Event) {
	ev.At = r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) >= MaxEvents {
		r.dropped++
		return
	}
	r.events = append(r.events, ev)
}

// Events returns the recorded events and the number dropped over MaxEvents.
func (r *Relay) Events() ([]Event, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...), r.dropped
}

// parseNotification reads what the drill needs from an SNS notification of
// an SES event; what it cannot read stays empty (the gateway judges it).
func parseNotification(body []byte) Event {
	var n struct {
		Type    string `json:"Type"`
		Message string `json:"Message"`
	}
	if json.Unmarshal(body, &n) != nil || n.Type != "Notification" {
		return Event{Type: "unreadable"}
	}
	var m struct {
		EventType        string `json:"eventType"`
		NotificationType string `json:"notificationType"`
		Mail             struct {
			Timestamp time.Time           `json:"timestamp"`
			Tags      map[string][]string `json:"tags"`
		} `json:"mail"`
		Bounce struct {
			BounceType        string `json:"bounceType"`
			BouncedRecipients []struct {
				EmailAddress string `json:"emailAddress"`
			} `json:"bouncedRecipients"`
		} `json:"bounce"`
		Complaint struct {
			ComplainedRecipients []struct {
				EmailAddress string `json:"emailAddress"`
			} `json:"complainedRecipients"`
		} `json:"complaint"`
	}
	if json.Unmarshal([]byte(n.Message), &m) != nil {
		return Event{Type: "unreadable"}
	}
	ev := Event{Type: m.EventType, MailTime: m.Mail.Timestamp}
	if ev.Type == "" {
		ev.Type = m.NotificationType
	}
	if t := m.Mail.Tags[tenantTag]; len(t) > 0 {
		ev.Tenant = t[0]
	}
	switch ev.Type {
	case eventTypeBounce:
		if m.Bounce.BounceType != "Permanent" {
			ev.Type = "TransientBounce"
		}
		for _, r := range m.Bounce.BouncedRecipients {
			ev.Recipients = append(ev.Recipients, r.EmailAddress)
		}
	case eventTypeComplain:
		for _, r := range m.Complaint.ComplainedRecipients {
			ev.Recipients = append(ev.Recipients, r.EmailAddress)
		}
	}
	return ev
}
