package smtpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/logthrottle"
)

// smtpReply is the wire form of a gateway.Code.
type smtpReply struct {
	code int
	enh  smtp.EnhancedCode
}

// codeReply is the one table from gateway.Code to SMTP reply. ok is false for
// a code without a row (the table test fails on one).
func codeReply(c gateway.Code) (r smtpReply, ok bool) {
	switch c {
	case gateway.CodeInternal:
		return smtpReply{451, smtp.EnhancedCode{4, 3, 0}}, true
	case gateway.CodeMalformed:
		return smtpReply{501, smtp.EnhancedCode{5, 5, 4}}, true
	case gateway.CodeAuthRequired:
		return smtpReply{530, smtp.EnhancedCode{5, 7, 0}}, true
	case gateway.CodeBadCredentials:
		return smtpReply{535, smtp.EnhancedCode{5, 7, 8}}, true
	case gateway.CodeAuthThrottled:
		return smtpReply{454, smtp.EnhancedCode{4, 7, 0}}, true
	case gateway.CodeTLSRequired:
		return smtpReply{530, smtp.EnhancedCode{5, 7, 0}}, true
	case gateway.CodeSourceNotAllowed:
		return smtpReply{550, smtp.EnhancedCode{5, 7, 1}}, true
	case gateway.CodeSenderNotAllowed:
		return smtpReply{550, smtp.EnhancedCode{5, 7, 1}}, true
	case gateway.CodeRecipientNotAllowed:
		return smtpReply{550, smtp.EnhancedCode{5, 7, 1}}, true
	case gateway.CodeInvalidAddress:
		return smtpReply{553, smtp.EnhancedCode{5, 1, 3}}, true
	case gateway.CodeTooManyRecipients:
		return smtpReply{452, smtp.EnhancedCode{4, 5, 3}}, true
	case gateway.CodeNoRecipients:
		return smtpReply{554, smtp.EnhancedCode{5, 5, 1}}, true
	case gateway.CodeTooLarge:
		return smtpReply{552, smtp.EnhancedCode{5, 3, 4}}, true
	case gateway.CodeBadContent:
		return smtpReply{554, smtp.EnhancedCode{5, 6, 0}}, true
	case gateway.CodeBadParameter:
		return smtpReply{554, smtp.EnhancedCode{5, 7, 1}}, true
	case gateway.CodeTemplateNotFound:
		return smtpReply{554, smtp.EnhancedCode{5, 6, 0}}, true
	case gateway.CodeRateLimited:
		return smtpReply{451, smtp.EnhancedCode{4, 7, 1}}, true
	case gateway.CodeFrozen:
		return smtpReply{451, smtp.EnhancedCode{4, 7, 1}}, true
	case gateway.CodeUpstreamThrottled:
		return smtpReply{451, smtp.EnhancedCode{4, 4, 5}}, true
	case gateway.CodeUpstreamQuota:
		return smtpReply{452, smtp.EnhancedCode{4, 3, 1}}, true
	case gateway.CodeUpstreamPaused:
		return smtpReply{451, smtp.EnhancedCode{4, 3, 2}}, true
	case gateway.CodeUpstreamRejected:
		return smtpReply{554, smtp.EnhancedCode{5, 6, 0}}, true
	case gateway.CodeUpstreamNotAuthorized:
		return smtpReply{550, smtp.EnhancedCode{5, 7, 1}}, true
	case gateway.CodeUpstreamSenderUnverified:
		return smtpReply{550, smtp.EnhancedCode{5, 1, 8}}, true
	case gateway.CodeUpstreamBadRequest:
		return smtpReply{554, smtp.EnhancedCode{5, 6, 0}}, true
	case gateway.CodeUpstreamMisconfigured:
		return smtpReply{451, smtp.EnhancedCode{4, 3, 0}}, true
	case gateway.CodeUpstreamUnavailable:
		return smtpReply{451, smtp.EnhancedCode{4, 4, 1}}, true
	case gateway.CodeShuttingDown:
		return smtpReply{421, smtp.EnhancedCode{4, 3, 2}}, true
	case gateway.CodeBreakerOpen:
		return smtpReply{451, smtp.EnhancedCode{4, 7, 1}}, true
	case gateway.CodeQuotaExceeded:
		return smtpReply{452, smtp.EnhancedCode{4, 7, 1}}, true
	case gateway.CodeFirstContactLimited:
		return smtpReply{451, smtp.EnhancedCode{4, 7, 1}}, true
	case gateway.CodeSuppressed:
		return smtpReply{550, smtp.EnhancedCode{5, 7, 1}}, true
	case gateway.CodeSuppressedBounce:
		return smtpReply{550, smtp.EnhancedCode{5, 1, 1}}, true
	case gateway.CodeStoreUnavailable:
		return smtpReply{451, smtp.EnhancedCode{4, 3, 0}}, true
	case gateway.CodeIdempotencyInFlight:
		return smtpReply{451, smtp.EnhancedCode{4, 3, 0}}, true
	case gateway.CodeIdempotencyKeyReused:
		return smtpReply{554, smtp.EnhancedCode{5, 5, 0}}, true
	}
	return smtpReply{451, smtp.EnhancedCode{4, 3, 0}}, false
}

// errClientGone marks a DATA read that failed because of the client (timeout,
// disconnect, abort): logged as a warning, not as an internal error.
var errClientGone = errors.New("client stopped sending message data")

// maxReplyText bounds the text of one reply line.
const maxReplyText = 400

// reply turns any error into the SMTP reply the client sees, counts the
// refusal (once: Submit counted its own) and logs the cause through the
// pipeline's refusal throttle, keyed by tenant (or client address before
// AUTH) and code. It is the only place where errors become replies. The
// text is the safe Error.Msg, plus the retry delay when there is one.
func (s *session) reply(err error) *smtp.SMTPError {
	ge := gateway.AsError(err)
	r, known := codeReply(ge.Code)
	msg := replyText(ge)

	attrs := []slog.Attr{
		slog.String("session", s.id),
		slog.String("remote", s.remote.String()),
		slog.String("code", ge.Code.String()),
		slog.String("reply", fmt.Sprintf("%d %d.%d.%d", r.code, r.enh[0], r.enh[1], r.enh[2])),
		slog.String("error", ge.Error()),
	}
	t := s.currentTenant()
	who := logthrottle.Source(gateway.SourceKey(s.remote))
	if t != nil {
		attrs = append(attrs, slog.String("tenant", t.ID))
		who = t.ID
	}
	if !errors.Is(ge, errClientGone) { // a client that left was not refused
		s.srv.pipeline.Refused(t, ge)
	}
	level := slog.LevelWarn
	switch {
	case !known:
		level = slog.LevelError
	case ge.Code == gateway.CodeInternal && !errors.Is(ge, errClientGone),
		ge.Code == gateway.CodeUpstreamPaused, ge.Code == gateway.CodeUpstreamMisconfigured:
		level = slog.LevelError
	}
	s.srv.pipeline.Refusals().Log(context.Background(), s.srv.log, level, who, ge.Code.String(), "smtp refused", attrs...)

	return &smtp.SMTPError{Code: r.code, EnhancedCode: r.enh, Message: msg}
}

// replyText is the client-visible text of ge: one line, bounded, with
// "retry after Ns" when RetryAfter is set.
func replyText(ge *gateway.Error) string {
	msg := strings.Map(func(r rune) rune {
		switch {
		case r < ' ' || r == 0x7f:
			return ' '
		case r > 0x7f: // replies are ASCII (no SMTPUTF8)
			return '?'
		}
		return r
	}, ge.Msg)
	msg = strings.TrimSpace(msg)
	if msg == "" {
		msg = ge.Code.String()
	}
	if len(msg) > maxReplyText {
		msg = msg[:maxReplyText]
	}
	if ge.RetryAfter > 0 {
		secs := int64((ge.RetryAfter + time.Second - 1) / time.Second)
		msg += fmt.Sprintf(", retry after %ds", secs)
	}
	return msg
}
