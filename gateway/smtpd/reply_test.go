package smtpd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sesgate/sesgate/gateway"
)

func TestCodeReplyCoversEveryCode(t *testing.T) {
	want := map[gateway.Code]string{
		gateway.CodeInternal:                 "451 4.3.0",
		gateway.CodeMalformed:                "501 5.5.4",
		gateway.CodeAuthRequired:             "530 5.7.0",
		gateway.CodeBadCredentials:           "535 5.7.8",
		gateway.CodeAuthThrottled:            "454 4.7.0",
		gateway.CodeTLSRequired:              "530 5.7.0",
		gateway.CodeSourceNotAllowed:         "550 5.7.1",
		gateway.CodeSenderNotAllowed:         "550 5.7.1",
		gateway.CodeRecipientNotAllowed:      "550 5.7.1",
		gateway.CodeInvalidAddress:           "553 5.1.3",
		gateway.CodeTooManyRecipients:        "452 4.5.3",
		gateway.CodeNoRecipients:             "554 5.5.1",
		gateway.CodeTooLarge:                 "552 5.3.4",
		gateway.CodeBadContent:               "554 5.6.0",
		gateway.CodeBadParameter:             "554 5.7.1",
		gateway.CodeTemplateNotFound:         "554 5.6.0",
		gateway.CodeRateLimited:              "451 4.7.1",
		gateway.CodeFrozen:                   "451 4.7.1",
		gateway.CodeUpstreamThrottled:        "451 4.4.5",
		gateway.CodeUpstreamQuota:            "452 4.3.1",
		gateway.CodeUpstreamPaused:           "451 4.3.2",
		gateway.CodeUpstreamRejected:         "554 5.6.0",
		gateway.CodeUpstreamNotAuthorized:    "550 5.7.1",
		gateway.CodeUpstreamSenderUnverified: "550 5.1.8",
		gateway.CodeUpstreamBadRequest:       "554 5.6.0",
		gateway.CodeUpstreamMisconfigured:    "451 4.3.0",
		gateway.CodeUpstreamUnavailable:      "451 4.4.1",
		gateway.CodeShuttingDown:             "421 4.3.2",
		gateway.CodeBreakerOpen:              "451 4.7.1",
		gateway.CodeQuotaExceeded:            "452 4.7.1",
		gateway.CodeFirstContactLimited:      "451 4.7.1",
		gateway.CodeSuppressed:               "550 5.7.1",
		gateway.CodeSuppressedBounce:         "550 5.1.1",
		gateway.CodeStoreUnavailable:         "451 4.3.0",
		gateway.CodeIdempotencyInFlight:      "451 4.3.0",
		gateway.CodeIdempotencyKeyReused:     "554 5.5.0",
	}
	for _, code := range gateway.Codes() {
		t.Run(code.String(), func(t *testing.T) {
			r, ok := codeReply(code)
			if !ok {
				t.Fatalf("code %s has no row in codeReply", code)
			}
			got := fmt.Sprintf("%d %d.%d.%d", r.code, r.enh[0], r.enh[1], r.enh[2])
			w, listed := want[code]
			if !listed {
				t.Fatalf("code %s has no expected reply in this test", code)
			}
			if got != w {
				t.Errorf("reply = %s, want %s", got, w)
			}
			// The class of the reply agrees with the code's Temporary.
			if temp := r.code/100 == 4; temp != code.Temporary() {
				t.Errorf("reply class %d but Temporary() = %v", r.code, code.Temporary())
			}
		})
	}
	if len(want) != len(gateway.Codes()) {
		t.Errorf("test lists %d codes, gateway has %d", len(want), len(gateway.Codes()))
	}
	if _, ok := codeReply(gateway.Code(len(gateway.Codes()))); ok {
		t.Error("an unknown code has a row")
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantEnh  smtp.EnhancedCode
		wantMsg  string
		wantLog  []string
	}{
		{
			name:     "gateway error uses Msg",
			err:      gateway.Errorf(gateway.CodeSenderNotAllowed, "sender not allowed for this tenant"),
			wantCode: 550, wantEnh: smtp.EnhancedCode{5, 7, 1},
			wantMsg: "sender not allowed for this tenant",
			wantLog: []string{"level=WARN", "code=sender_not_allowed", `reply="550 5.7.1"`, "tenant=acme", "session=s1"},
		},
		{
			name:     "retry after is rounded up to seconds",
			err:      &gateway.Error{Code: gateway.CodeRateLimited, Msg: "rate limit exceeded", RetryAfter: 1500 * time.Millisecond},
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 7, 1},
			wantMsg: "rate limit exceeded, retry after 2s",
		},
		{
			name:     "cause is logged, not sent",
			err:      gateway.Wrap(gateway.CodeUpstreamUnavailable, errors.New("dial tcp 10.1.2.3:443: refused"), "upstream unavailable"),
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 4, 1},
			wantMsg: "upstream unavailable",
			wantLog: []string{"dial tcp 10.1.2.3:443: refused"},
		},
		{
			name:     "plain error becomes internal",
			err:      errors.New("boom at 0xdeadbeef"),
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 3, 0},
			wantMsg: "internal error",
			wantLog: []string{"level=ERROR", "boom at 0xdeadbeef"},
		},
		{
			name:     "wrapped gateway error keeps its code",
			err:      fmt.Errorf("context: %w", gateway.Errorf(gateway.CodeFrozen, "tenant frozen")),
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 7, 1},
			wantMsg: "tenant frozen",
		},
		{
			name:     "control characters never reach the wire",
			err:      gateway.Errorf(gateway.CodeMalformed, "bad\r\n250 ok\x00é"),
			wantCode: 501, wantEnh: smtp.EnhancedCode{5, 5, 4},
			wantMsg: "bad  250 ok ?",
		},
		{
			name:     "unknown code is internal and logged as error",
			err:      &gateway.Error{Code: gateway.Code(999), Msg: "odd"},
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 3, 0},
			wantMsg: "odd",
			wantLog: []string{"level=ERROR"},
		},
		{
			name:     "client that went away is a warning",
			err:      gateway.Wrap(gateway.CodeInternal, fmt.Errorf("%w: %w", errClientGone, errors.New("i/o timeout")), "message data not received"),
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 3, 0},
			wantMsg: "message data not received",
			wantLog: []string{"level=WARN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			s := &session{
				srv:    &Server{log: slog.New(slog.NewTextHandler(logs, nil))},
				id:     "s1",
				remote: netip.MustParseAddr("192.0.2.7"),
				tenant: &gateway.Tenant{ID: "acme"},
			}
			got := s.reply(tt.err)
			if got.Code != tt.wantCode || got.EnhancedCode != tt.wantEnh || got.Message != tt.wantMsg {
				t.Errorf("reply = %d %v %q, want %d %v %q", got.Code, got.EnhancedCode, got.Message, tt.wantCode, tt.wantEnh, tt.wantMsg)
			}
			for _, w := range tt.wantLog {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log %q lacks %q", logs.String(), w)
				}
			}
		})
	}
}

func TestReplyID(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ses id kept", "010001890abc-1234-5678-0000", "010001890abc-1234-5678-0000"},
		{"spaces and newlines dropped", "a b\r\nc", "abc"},
		{"empty", "", "-"},
		{"long cut", strings.Repeat("x", 300), strings.Repeat("x", 256)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replyID(tt.in); got != tt.want {
				t.Errorf("replyID(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
