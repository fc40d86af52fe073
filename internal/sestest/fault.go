package sestest

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"time"
)

// ErrorType is an SES error code as sent in the x-amzn-ErrorType header.
type ErrorType string

// The errors SendEmail can answer with, plus InternalServiceErrorException.
const (
	TooManyRequests           ErrorType = "TooManyRequestsException"
	LimitExceeded             ErrorType = "LimitExceededException"
	MessageRejected           ErrorType = "MessageRejected"
	MailFromDomainNotVerified ErrorType = "MailFromDomainNotVerifiedException"
	SendingPaused             ErrorType = "SendingPausedException"
	AccountSuspended          ErrorType = "AccountSuspendedException"
	NotFound                  ErrorType = "NotFoundException"
	BadRequest                ErrorType = "BadRequestException"
	InternalServiceError      ErrorType = "InternalServiceErrorException"
)

// Status returns the HTTP status SES uses for t: 429, 404 or 500 for the
// types that have one, 400 otherwise.
func (t ErrorType) Status() int {
	switch t {
	case TooManyRequests:
		return http.StatusTooManyRequests
	case NotFound:
		return http.StatusNotFound
	case InternalServiceError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// DefaultMessage returns a message like the one SES sends with t.
func (t ErrorType) DefaultMessage() string {
	switch t {
	case TooManyRequests:
		return "Maximum sending rate exceeded."
	case LimitExceeded:
		return "Maximum sending rate exceeded."
	case MessageRejected:
		return "Email address is not verified. The following identities failed the check in region US-EAST-1: sender@example.com"
	case MailFromDomainNotVerified:
		return "The MAIL FROM domain is not verified."
	case SendingPaused:
		return "Sending is paused for this account."
	case AccountSuspended:
		return "Your account has been suspended from sending email."
	case NotFound:
		return "Configuration set does not exist."
	case BadRequest:
		return "Invalid request."
	case InternalServiceError:
		return "Internal service error."
	}
	return string(t)
}

// Fault is an error to answer with instead of sending. Status defaults to
// Type.Status() and Message to Type.DefaultMessage(), so any code, known to
// the SDK or not, can be injected.
type Fault struct {
	Type    ErrorType
	Status  int
	Message string
}

func (f Fault) apiError() *apiError {
	e := &apiError{Type: string(f.Type), Status: f.Status, Message: f.Message}
	if e.Status == 0 {
		e.Status = f.Type.Status()
	}
	if e.Message == "" {
		e.Message = f.Type.DefaultMessage()
	}
	return e
}

// apiError is an answer in the rest-json error shape.
type apiError struct {
	Type    string
	Status  int
	Message string
}

func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Errortype", e.Type)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.Message})
}

// faults is the injected behaviour; guarded by Server.mu.
type faults struct {
	failNext  int
	nextErr   *apiError
	fraction  float64
	fracErr   *apiError
	latency   time.Duration
	hang      chan struct{} // non-nil while hanging; closed to release
	rate      float64       // recipients per second; 0 = unlimited
	tokens    float64
	refreshed time.Time
}

// FailNext makes the next n API requests that pass authentication fail with f.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.failNext, s.f.nextErr = n, f.apiError()
}

// FailFraction makes each API request that passes authentication fail with f
// with probability p (0 to 1). FailNext, when set, is used first.
func (s *Server) FailFraction(p float64, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.fraction, s.f.fracErr = min(max(p, 0), 1), f.apiError()
}

// SetLatency delays every API request by d before it is handled. A client
// that gives up earlier gets no answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.latency = max(d, 0)
}

// SetHang makes API requests wait without an answer until the client gives
// up, SetHang(false) is called or the server is closed.
func (s *Server) SetHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.f.hang == nil:
		s.f.hang = make(chan struct{})
	case !on && s.f.hang != nil:
		close(s.f.hang)
		s.f.hang = nil
	}
}

// SetMaxSendRate limits sends to r recipients per second, like SES's maximum
// send rate: a token bucket of one second's worth, where a message is let
// through while a token remains and then takes one token per recipient (so a
// large message can drive the bucket below zero). Over the rate, SES answers
// 429 TooManyRequestsException "Maximum sending rate exceeded.". r <= 0
// removes the limit.
func (s *Server) SetMaxSendRate(r float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.rate = max(r, 0)
	s.f.tokens = max(1, s.f.rate)
	s.f.refreshed = s.now()
}

// ClearFaults removes every injected error, latency and hang, and puts the
// send rate back to Options.Quota.MaxSendRate.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f.hang != nil {
		close(s.f.hang)
	}
	s.f = faults{}
	if r := s.opts.Quota.MaxSendRate; r > 0 {
		s.f.rate, s.f.tokens, s.f.refreshed = r, max(1, r), s.now()
	}
}

// delay applies the injected latency and hang. It reports false when the
// request ended (client gave up or server closed) while waiting.
func (s *Server) delay(ctx context.Context) bool {
	s.mu.Lock()
	latency, hang := s.f.latency, s.f.hang
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		case <-s.closed:
			return false
		}
	}
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return false
		case <-s.closed:
			return false
		}
	}
	return true
}

// injected returns the error to answer with, if any, consuming one FailNext.
func (s *Server) injected() *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f.failNext > 0 {
		s.f.failNext--
		return s.f.nextErr
	}
	if s.f.fraction > 0 && rand.Float64() < s.f.fraction {
		return s.f.fracErr
	}
	return nil
}

// admitRate spends recipient tokens; it reports false when over the rate.
// Called with s.mu held.
func (s *Server) admitRate(now time.Time, recipients int) bool {
	if s.f.rate <= 0 {
		return true
	}
	burst := max(1, s.f.rate)
	if el := now.Sub(s.f.refreshed).Seconds(); el > 0 {
		s.f.tokens = min(burst, s.f.tokens+el*s.f.rate)
	}
	s.f.refreshed = now
	if s.f.tokens < 1 {
		return false
	}
	s.f.tokens -= float64(recipients)
	return true
}
