package ses

import (
	"context"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/sestest"
)

// TestObserve: Options.Observe sees every SendEmail call with "" on success
// and the gateway code of a failure.
func TestObserve(t *testing.T) {
	srv, url := startSES(t, sestest.Options{})
	type call struct {
		took    time.Duration
		errType string
	}
	var calls []call
	sink := newSink(t, url, ClientOptions{}, Options{MaxAttempts: 1, Observe: func(d time.Duration, e string) { calls = append(calls, call{d, e}) }})
	tests := []struct {
		name  string
		fault sestest.Fault
		want  string
	}{
		{"ok", sestest.Fault{}, ""},
		{"throttled", sestest.Fault{Type: sestest.TooManyRequests}, "ses_throttled"},
		{"rejected", sestest.Fault{Type: sestest.MessageRejected, Message: "Illegal header."}, "ses_message_rejected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls = nil
			if tc.fault.Type != "" {
				srv.FailNext(1, tc.fault)
			}
			sink.Send(context.Background(), envelope(&gateway.Tenant{ID: "t"}, "a@example.net"))
			if len(calls) != 1 || calls[0].errType != tc.want || calls[0].took <= 0 {
				t.Fatalf("calls %+v, want one with %q", calls, tc.want)
			}
		})
	}
}
