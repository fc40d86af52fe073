package sestest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults and SES limits.
const (
	DefaultAccessKeyID     = "AKIASESTEST000000000"
	DefaultSecretAccessKey = "sestest/secret/access/key/000000000000000"
	DefaultRegion          = "us-east-1"
	DefaultMaxBodyBytes    = 60 << 20  // a 40 MiB message is ~54 MiB of base64 JSON
	DefaultMaxMessageBytes = 40 << 20  // SES v2 raw message limit
	DefaultMaxMessages     = 10000     // recorded messages kept
	DefaultMaxStoredBytes  = 256 << 20 // raw bytes of recorded messages kept
	MaxRecipients          = 50        // To + Cc + Bcc, SES hard limit
	MaxTagLength           = 256       // tag name or value
	maxTags                = 50
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// The key pair requests must be signed with; DefaultAccessKeyID and
	// DefaultSecretAccessKey when empty.
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must arrive as a signed X-Amz-Security-Token.
	SessionToken string
	Region       string // default us-east-1
	Logger       *slog.Logger
	Now          func() time.Time

	MaxBodyBytes    int64 // request body; default DefaultMaxBodyBytes
	MaxMessageBytes int64 // decoded raw message; default DefaultMaxMessageBytes
	MaxMessages     int   // recorded messages kept; default DefaultMaxMessages
	MaxStoredBytes  int64 // raw bytes of recorded messages kept; default DefaultMaxStoredBytes

	// Identities, when not empty, are the verified identities (addresses or
	// bare domains): any other From is MessageRejected "not verified".
	Identities []string
	// ConfigurationSets, when not empty, are the existing configuration
	// sets: naming another is NotFoundException.
	ConfigurationSets []string
	// Templates, when not empty, are the stored templates: Template content
	// naming another is NotFoundException.
	Templates []string
	// Quota is reported by GET /v2/email/account and enforced: MaxSendRate
	// as with SetMaxSendRate, Max24HourSend over a rolling day. Zero means
	// unlimited (reported as -1 for Max24HourSend).
	Quota Quota

	// EnableControl mounts the /_sestest/ control endpoints.
	EnableControl bool
	// Addr is where Start listens; default 127.0.0.1:0.
	Addr string
}

// Quota is the account's sending quota, in recipients.
type Quota struct {
	Max24HourSend float64
	MaxSendRate   float64
}

// Template is the Template content of a SendEmail request, as received
// (SES would render it; sestest only records it).
type Template struct {
	TemplateName    string
	TemplateData    string
	TemplateContent *struct{ Subject, Text, Html string } //nolint:revive // SES's spelling
	Headers         []struct{ Name, Value string }
}

// Message is one accepted SendEmail request.
type Message struct {
	ID               string
	From             string // FromEmailAddress, or the From header address when empty
	To, Cc, Bcc      []string
	ReplyTo          []string
	Raw              []byte    // decoded Content.Raw.Data; nil if over MaxStoredBytes
	Template         *Template // Content.Template; nil for Raw content
	Size             int       // length of the raw message as received
	Tags             map[string]string
	ConfigurationSet string
	TenantName       string
	// ListManagement is the request's ListManagementOptions; nil without.
	ListManagement *ListManagement
	Received       time.Time
}

// ListManagement is SES's ListManagementOptions as a request carried it.
type ListManagement struct {
	ContactListName string `json:"contact_list_name"`
	TopicName       string `json:"topic_name,omitempty"`
}

// Recipients returns To, Cc and Bcc in that order.
func (m *Message) Recipients() []string {
	out := make([]string, 0, len(m.To)+len(m.Cc)+len(m.Bcc))
	out = append(out, m.To...)
	out = append(out, m.Cc...)
	return append(out, m.Bcc...)
}

// Server is a local SES v2 endpoint. It is safe for concurrent use.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	mux    *http.ServeMux
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	ring     []Message // recorded messages, oldest at head
	head, n  int
	stored   int64 // raw bytes in ring
	requests int64 // API requests received
	accepted int64 // messages accepted
	day      [24]hourCount
	f        faults

	ev events // SNS event publishing, off until SetEvents
}

type hourCount struct {
	hour       int64 // unix hour
	recipients float64
}

// New returns a Server with opts, defaults filled in.
func New(opts Options) *Server {
	if opts.AccessKeyID == "" {
		opts.AccessKeyID = DefaultAccessKeyID
	}
	if opts.SecretAccessKey == "" {
		opts.SecretAccessKey = DefaultSecretAccessKey
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	if opts.MaxStoredBytes <= 0 {
		opts.MaxStoredBytes = DefaultMaxStoredBytes
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, closed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ClearFaults() // applies Quota.MaxSendRate
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v2/email/outbound-emails", s.api("SendEmail", s.sendEmail))
	s.mux.HandleFunc("GET /v2/email/account", s.api("GetAccount", s.getAccount))
	if opts.EnableControl {
		s.mountControl()
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Type: "UnknownOperationException", Status: http.StatusNotFound, Message: "Unknown operation"})
	})
	return s
}

// Start serves a new Server on opts.Addr (default 127.0.0.1:0) and returns
// it with its base URL (for BaseEndpoint) and a function that stops it.
func Start(opts Options) (srv *Server, url string, stop func(), err error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, err
	}
	srv = New(opts)
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(srv.log.Handler(), slog.LevelWarn),
	}
	go func() { _ = hs.Serve(ln) }()
	stop = func() {
		srv.Close()
		_ = hs.Close()
	}
	return srv, "http://" + ln.Addr().String(), stop, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Close releases the requests held by latency or a hang, and from then on
// injected latency and hangs end at once (without an answer). It stops
// event publishing (pending notifications are dropped). Closing the
// listener is the caller's job; Start's stop function does both.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	// A SetEvents that saw the server open has started its publisher by
	// the time the lock is free; later ones see it closed.
	s.ev.mu.Lock()
	started := s.ev.queue != nil
	s.ev.mu.Unlock()
	if started {
		s.ev.worker.Wait()
	}
}

// Sent returns a copy of the recorded messages, oldest first.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, s.n)
	for i := range out {
		out[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	return out
}

// Message returns the recorded message with id, if it is still kept.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < s.n; i++ {
		if m := s.ring[(s.head+i)%len(s.ring)]; m.ID == id {
			return m, true
		}
	}
	return Message{}, false
}

// Accepted returns how many messages were accepted since New or Reset,
// including those no longer kept.
func (s *Server) Accepted() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Requests returns how many API requests arrived since New or Reset,
// whatever their outcome.
func (s *Server) Requests() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Reset forgets recorded messages and counters and clears every fault (see
// ClearFaults).
func (s *Server) Reset() {
	s.ClearFaults()
	s.mu.Lock()
	s.ring, s.head, s.n, s.stored = nil, 0, 0, 0
	s.requests, s.accepted = 0, 0
	s.day = [24]hourCount{}
	s.mu.Unlock()
}

// handlerFunc handles an authenticated API request whose body was read.
type handlerFunc func(r *http.Request, body []byte) (any, *apiError)

// api wraps an operation: counting, injected delay, body limit, SigV4,
// injected errors, then the operation and its JSON answer.
func (s *Server) api(op string, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		now := s.now()
		w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
		w.Header().Set("X-Amzn-Requestid", newUUID())
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.answer(w, op, nil, &apiError{Type: "RequestEntityTooLargeException", Status: http.StatusRequestEntityTooLarge, Message: "Request body too large."})
				return
			}
			s.answer(w, op, nil, &apiError{Type: string(BadRequest), Status: http.StatusBadRequest, Message: "Could not read the request body."})
			return
		}
		// Wait after reading the body: only then does the server notice a
		// client that hangs up.
		if !s.delay(r.Context()) {
			s.log.Debug("sestest request abandoned", "op", op)
			return
		}
		now = s.now()
		if aerr := s.verifySigV4(r, body, now); aerr != nil {
			s.answer(w, op, nil, aerr)
			return
		}
		if aerr := s.injected(); aerr != nil {
			s.answer(w, op, nil, aerr)
			return
		}
		out, aerr := h(r, body)
		s.answer(w, op, out, aerr)
	}
}

func (s *Server) answer(w http.ResponseWriter, op string, out any, aerr *apiError) {
	if aerr != nil {
		s.log.Debug("sestest request refused", "op", op, "status", aerr.Status, "type", aerr.Type)
		writeError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// sendEmailInput is the JSON body the SDK sends for SendEmail.
type sendEmailInput struct {
	FromEmailAddress string
	Destination      *struct {
		ToAddresses  []string
		CcAddresses  []string
		BccAddresses []string
	}
	ReplyToAddresses []string
	Content          *struct {
		Raw *struct {
			Data []byte // base64 in the JSON
		}
		Simple   json.RawMessage
		Template *Template
	}
	EmailTags []struct {
		Name  string
		Value string
	}
	ConfigurationSetName  string
	TenantName            string
	ListManagementOptions *struct {
		ContactListName string
		TopicName       string
	}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{Type: string(BadRequest), Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func (s *Server) sendEmail(r *http.Request, body []byte) (any, *apiError) {
	var in sendEmailInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, badRequest("Could not parse the request body as JSON.")
	}
	if in.Content == nil {
		return nil, badRequest("Content is required.")
	}
	if in.Content.Template != nil && in.Content.Raw == nil && in.Content.Simple == nil {
		return s.sendTemplate(&in)
	}
	if in.Content.Raw == nil {
		if in.Content.Simple != nil {
			return nil, badRequest("sestest accepts only Raw and Template content.")
		}
		return nil, badRequest("Content must contain Raw, Simple or Template.")
	}
	raw := in.Content.Raw.Data
	if len(raw) == 0 {
		return nil, badRequest("Raw message data is required.")
	}
	if int64(len(raw)) > s.opts.MaxMessageBytes {
		return nil, &apiError{Type: string(MessageRejected), Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Message length is more than %d bytes long: '%d'.", s.opts.MaxMessageBytes, len(raw))}
	}
	hdr, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, &apiError{Type: string(MessageRejected), Status: http.StatusBadRequest, Message: "Illegal header."}
	}

	m := Message{ConfigurationSet: in.ConfigurationSetName, TenantName: in.TenantName, Raw: raw, Size: len(raw)}
	if lm := in.ListManagementOptions; lm != nil {
		if lm.ContactListName == "" {
			return nil, badRequest("ListManagementOptions: ContactListName is required.")
		}
		m.ListManagement = &ListManagement{ContactListName: lm.ContactListName, TopicName: lm.TopicName}
	}
	if in.Destination != nil {
		m.To, m.Cc, m.Bcc = in.Destination.ToAddresses, in.Destination.CcAddresses, in.Destination.BccAddresses
	}
	if len(m.To)+len(m.Cc)+len(m.Bcc) == 0 {
		// Without a Destination, SES takes the recipients from the headers.
		m.To, m.Cc, m.Bcc = headerAddrs(hdr.Header, "To"), headerAddrs(hdr.Header, "Cc"), headerAddrs(hdr.Header, "Bcc")
	}
	m.From = in.FromEmailAddress
	if m.From == "" {
		if from := headerAddrs(hdr.Header, "From"); len(from) > 0 {
			m.From = from[0]
		} else {
			return nil, &apiError{Type: string(MessageRejected), Status: http.StatusBadRequest, Message: "Missing required header 'From'."}
		}
	}
	return s.accept(&in, m)
}

// sendTemplate checks and records Template content: a stored template
// (Options.Templates) or inline content, and FromEmailAddress, required.
func (s *Server) sendTemplate(in *sendEmailInput) (any, *apiError) {
	tpl := in.Content.Template
	switch {
	case in.FromEmailAddress == "":
		return nil, badRequest("FromEmailAddress is required with Template content.")
	case (tpl.TemplateName == "") == (tpl.TemplateContent == nil):
		return nil, badRequest("Template needs exactly one of TemplateName and TemplateContent.")
	case tpl.TemplateName != "" && len(s.opts.Templates) > 0 && !slices.Contains(s.opts.Templates, tpl.TemplateName):
		return nil, &apiError{Type: string(NotFound), Status: http.StatusNotFound, Message: "Template " + tpl.TemplateName + " does not exist."}
	}
	if tpl.TemplateData != "" && !json.Valid([]byte(tpl.TemplateData)) {
		return nil, badRequest("TemplateData is not valid JSON.")
	}
	m := Message{ConfigurationSet: in.ConfigurationSetName, TenantName: in.TenantName, Template: tpl, Size: len(tpl.TemplateData), From: in.FromEmailAddress}
	if in.Destination != nil {
		m.To, m.Cc, m.Bcc = in.Destination.ToAddresses, in.Destination.CcAddresses, in.Destination.BccAddresses
	}
	return s.accept(in, m)
}

// accept checks and records m, whose content was checked.
func (s *Server) accept(in *sendEmailInput, m Message) (any, *apiError) {
	n := len(m.To) + len(m.Cc) + len(m.Bcc)
	if n == 0 {
		return nil, badRequest("Missing final '@domain'")
	}
	if n > MaxRecipients {
		return nil, badRequest("Recipient count exceeds %d.", MaxRecipients)
	}
	for _, list := range [][]string{m.To, m.Cc, m.Bcc, in.ReplyToAddresses} {
		for _, a := range list {
			if !validAddress(a) {
				return nil, badRequest("Illegal address")
			}
		}
	}
	m.ReplyTo = in.ReplyToAddresses

	// SES takes a mailbox with a display name in FromEmailAddress; the
	// record keeps its address.
	if a, err := mail.ParseAddress(m.From); err == nil {
		m.From = a.Address
	}
	if !validAddress(m.From) {
		return nil, badRequest("Illegal address")
	}
	if !s.verified(m.From) {
		return nil, &apiError{Type: string(MessageRejected), Status: http.StatusBadRequest,
			Message: "Email address is not verified. The following identities failed the check in region " +
				strings.ToUpper(s.opts.Region) + ": " + m.From}
	}
	if m.ConfigurationSet != "" && len(s.opts.ConfigurationSets) > 0 && !slices.Contains(s.opts.ConfigurationSets, m.ConfigurationSet) {
		return nil, &apiError{Type: string(NotFound), Status: http.StatusNotFound,
			Message: "Configuration set <" + m.ConfigurationSet + "> does not exist."}
	}
	if len(in.EmailTags) > maxTags {
		return nil, badRequest("Too many tags.")
	}
	if len(in.EmailTags) > 0 {
		m.Tags = make(map[string]string, len(in.EmailTags))
	}
	for _, t := range in.EmailTags {
		if t.Name == "" || !validTag(t.Name) {
			return nil, badRequest("Invalid tag name <%s>: only alphanumeric ASCII characters, '_', and '-' are allowed, up to %d.", t.Name, MaxTagLength)
		}
		if !validTag(t.Value) {
			return nil, badRequest("Invalid tag value <%s>: only alphanumeric ASCII characters, '_', and '-' are allowed, up to %d.", t.Value, MaxTagLength)
		}
		if _, dup := m.Tags[t.Name]; dup {
			return nil, badRequest("Duplicate tag name <%s>.", t.Name)
		}
		m.Tags[t.Name] = t.Value
	}

	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.admitRate(now, n) {
		return nil, &apiError{Type: string(TooManyRequests), Status: http.StatusTooManyRequests, Message: "Maximum sending rate exceeded."}
	}
	if !s.admitDay(now, n) {
		return nil, &apiError{Type: string(TooManyRequests), Status: http.StatusTooManyRequests, Message: "Daily message quota exceeded."}
	}
	m.ID = newMessageID(now)
	m.Received = now
	s.record(m)
	s.queueEvents(m, now)
	return map[string]string{"MessageId": m.ID}, nil
}

// record keeps m within the count and byte bounds. Called with s.mu held.
func (s *Server) record(m Message) {
	s.accepted++
	if s.ring == nil {
		s.ring = make([]Message, s.opts.MaxMessages)
	}
	if int64(len(m.Raw)) > s.opts.MaxStoredBytes {
		m.Raw = nil // counted and listed, kept without its body
	}
	for s.n > 0 && (s.n == len(s.ring) || s.stored+int64(len(m.Raw)) > s.opts.MaxStoredBytes) {
		s.stored -= int64(len(s.ring[s.head].Raw))
		s.ring[s.head] = Message{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
	s.ring[(s.head+s.n)%len(s.ring)] = m
	s.n++
	s.stored += int64(len(m.Raw))
}

// admitDay counts recipients over a rolling day in hourly buckets and
// reports false when Max24HourSend would be exceeded. Called with s.mu held.
func (s *Server) admitDay(now time.Time, recipients int) bool {
	hour := now.Unix() / 3600
	b := &s.day[hour%24]
	if b.hour != hour {
		*b = hourCount{hour: hour}
	}
	if q := s.opts.Quota.Max24HourSend; q > 0 && s.sentLastDay(hour)+float64(recipients) > q {
		return false
	}
	b.recipients += float64(recipients)
	return true
}

// sentLastDay sums the buckets of the 24 hours ending with hour.
func (s *Server) sentLastDay(hour int64) float64 {
	var sum float64
	for _, b := range s.day {
		if b.hour > hour-24 && b.hour <= hour {
			sum += b.recipients
		}
	}
	return sum
}

func (s *Server) getAccount(r *http.Request, _ []byte) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	max24 := s.opts.Quota.Max24HourSend
	if max24 <= 0 {
		max24 = -1
	}
	return map[string]any{
		"SendQuota": map[string]float64{
			"Max24HourSend":   max24,
			"MaxSendRate":     s.f.rate,
			"SentLast24Hours": s.sentLastDay(s.now().Unix() / 3600),
		},
		"SendingEnabled":          true,
		"ProductionAccessEnabled": true,
		"EnforcementStatus":       "HEALTHY",
	}, nil
}

// verified reports whether from is one of the configured identities.
func (s *Server) verified(from string) bool {
	if len(s.opts.Identities) == 0 {
		return true
	}
	from = strings.ToLower(from)
	domain := from[strings.LastIndexByte(from, '@')+1:]
	for _, id := range s.opts.Identities {
		id = strings.ToLower(id)
		if id == from || id == domain {
			return true
		}
	}
	return false
}

// validAddress accepts a bare ASCII address with a local part and a domain.
func validAddress(a string) bool {
	if len(a) > 320 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] >= 0x80 || a[i] <= ' ' {
			return false
		}
	}
	p, err := mail.ParseAddress(a)
	if err != nil {
		return false
	}
	at := strings.LastIndexByte(p.Address, '@')
	return at > 0 && at < len(p.Address)-1
}

// validTag accepts [A-Za-z0-9_-]{0,256}.
func validTag(v string) bool {
	if len(v) > MaxTagLength {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func headerAddrs(h mail.Header, name string) []string {
	list, err := h.AddressList(name)
	if err != nil {
		return nil
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out
}

// newMessageID returns an id shaped like SES's:
// 0100 + 12 hex digits of milliseconds, a UUID, then -000000.
func newMessageID(now time.Time) string {
	return fmt.Sprintf("0100%012x-%s-000000", now.UnixMilli()&0xffffffffffff, newUUID())
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
