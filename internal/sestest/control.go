package sestest

import (
	"encoding/json"
	"net/http"
	"time"
)

// Control endpoints, mounted only with Options.EnableControl, for a test
// that drives a separate process (the gateway binary) against this server:
//
//	POST /_sestest/fault          JSON faultRequest: set or clear faults
//	POST /_sestest/reset          forget messages and counters, clear faults
//	GET  /_sestest/messages       JSON list of recorded messages (no bodies)
//	GET  /_sestest/messages/{id}  the raw message, as message/rfc822
//	POST /_sestest/events         JSON EventOptions: publish SNS events
//	                              ({"disable": true} turns them off)
//	GET  /_sestest/events         JSON EventStats
//	GET  /_sestest/sns-cert.pem   the certificate that signs the events
//
// They need no signature: never enable them on a shared network.

const maxControlBody = 64 << 10

// faultRequest is the body of POST /_sestest/fault. Absent fields leave the
// current setting alone; Clear runs first.
type faultRequest struct {
	Clear       bool      `json:"clear,omitempty"`
	Error       ErrorType `json:"error,omitempty"`    // e.g. "TooManyRequestsException"
	Status      int       `json:"status,omitempty"`   // default: the type's status
	Message     string    `json:"message,omitempty"`  // default: the type's message
	Count       int       `json:"count,omitempty"`    // next Count requests; default 1
	Fraction    float64   `json:"fraction,omitempty"` // instead of Count: this share of requests
	Latency     *string   `json:"latency,omitempty"`  // Go duration, "0s" to remove
	Hang        *bool     `json:"hang,omitempty"`
	MaxSendRate *float64  `json:"max_send_rate,omitempty"` // recipients/s, 0 to remove
}

// MessageInfo is one recorded message as GET /_sestest/messages lists it.
type MessageInfo struct {
	ID               string            `json:"id"`
	From             string            `json:"from"`
	To               []string          `json:"to,omitempty"`
	Cc               []string          `json:"cc,omitempty"`
	Bcc              []string          `json:"bcc,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	ConfigurationSet string            `json:"configuration_set,omitempty"`
	TenantName       string            `json:"tenant_name,omitempty"`
	ListManagement   *ListManagement   `json:"list_management,omitempty"`
	Size             int               `json:"size"`
	Received         time.Time         `json:"received"`
}

// MessageList is the body of GET /_sestest/messages.
type MessageList struct {
	Accepted int64         `json:"accepted"` // all accepted, including those no longer kept
	Requests int64         `json:"requests"` // all API requests
	Messages []MessageInfo `json:"messages"` // kept messages, oldest first
}

func (s *Server) mountControl() {
	s.mux.HandleFunc("POST /_sestest/fault", s.controlFault)
	s.mux.HandleFunc("POST /_sestest/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("GET /_sestest/messages", s.controlMessages)
	s.mux.HandleFunc("POST /_sestest/events", s.controlEvents)
	s.mux.HandleFunc("GET /_sestest/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.EventStats())
	})
	s.mux.HandleFunc("GET /_sestest/sns-cert.pem", func(w http.ResponseWriter, r *http.Request) {
		pem, err := s.SNSCertificatePEM()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pem)
	})
	s.mux.HandleFunc("GET /_sestest/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := s.Message(r.PathValue("id"))
		if !ok {
			http.Error(w, "no such message", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "message/rfc822")
		_, _ = w.Write(m.Raw)
	})
}

func (s *Server) controlFault(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad fault request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var latency time.Duration
	if req.Latency != nil {
		d, err := time.ParseDuration(*req.Latency)
		if err != nil || d < 0 || d > time.Hour {
			http.Error(w, "bad latency", http.StatusBadRequest)
			return
		}
		latency = d
	}
	if req.Count < 0 || req.Fraction < 0 || req.Fraction > 1 {
		http.Error(w, "count must be >= 0 and fraction within [0, 1]", http.StatusBadRequest)
		return
	}
	if req.Clear {
		s.ClearFaults()
	}
	if req.Error != "" {
		f := Fault{Type: req.Error, Status: req.Status, Message: req.Message}
		if req.Fraction > 0 {
			s.FailFraction(req.Fraction, f)
		} else {
			s.FailNext(max(req.Count, 1), f)
		}
	}
	if req.Latency != nil {
		s.SetLatency(latency)
	}
	if req.Hang != nil {
		s.SetHang(*req.Hang)
	}
	if req.MaxSendRate != nil {
		s.SetMaxSendRate(*req.MaxSendRate)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) controlMessages(w http.ResponseWriter, r *http.Request) {
	sent := s.Sent()
	list := MessageList{Accepted: s.Accepted(), Requests: s.Requests(), Messages: make([]MessageInfo, len(sent))}
	for i, m := range sent {
		list.Messages[i] = MessageInfo{
			ID: m.ID, From: m.From, To: m.To, Cc: m.Cc, Bcc: m.Bcc, Tags: m.Tags,
			ConfigurationSet: m.ConfigurationSet, TenantName: m.TenantName, ListManagement: m.ListManagement,
			Size: m.Size, Received: m.Received,
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// eventsRequest is the body of POST /_sestest/events.
type eventsRequest struct {
	EventOptions
	Delay   string `json:"delay,omitempty"` // Go duration
	Disable bool   `json:"disable,omitempty"`
}

func (s *Server) controlEvents(w http.ResponseWriter, r *http.Request) {
	var req eventsRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad events request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Disable {
		_ = s.SetEvents(nil)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	opts := req.EventOptions
	if req.Delay != "" {
		d, err := time.ParseDuration(req.Delay)
		if err != nil {
			http.Error(w, "bad delay", http.StatusBadRequest)
			return
		}
		opts.Delay = d
	}
	if err := s.SetEvents(&opts); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
