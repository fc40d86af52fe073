package smtpd

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

var errWrongPassword = errors.New("wrong password")

// loginStep is one client response and what the server must answer.
type loginStep struct {
	response      []byte
	wantChallenge string
	wantDone      bool
	wantErr       error
}

func TestLoginServer(t *testing.T) {
	tests := []struct {
		name     string
		steps    []loginStep
		wantAuth []string // "user:pass" per authenticate call
	}{
		{
			name: "no initial response",
			steps: []loginStep{
				{response: nil, wantChallenge: "Username:"},
				{response: []byte("acme"), wantChallenge: "Password:"},
				{response: []byte("tok"), wantDone: true},
			},
			wantAuth: []string{"acme:tok"},
		},
		{
			name: "initial response is the username",
			steps: []loginStep{
				{response: []byte("acme"), wantChallenge: "Password:"},
				{response: []byte("tok"), wantDone: true},
			},
			wantAuth: []string{"acme:tok"},
		},
		{
			name: "empty initial response asks for the username",
			steps: []loginStep{
				{response: []byte{}, wantChallenge: "Username:"},
				{response: []byte("acme"), wantChallenge: "Password:"},
				{response: []byte("tok"), wantDone: true},
			},
			wantAuth: []string{"acme:tok"},
		},
		{
			name: "authenticator error is returned",
			steps: []loginStep{
				{response: []byte("acme"), wantChallenge: "Password:"},
				{response: []byte("bad"), wantDone: true, wantErr: errWrongPassword},
			},
			wantAuth: []string{"acme:bad"},
		},
		{
			name: "response after done is refused",
			steps: []loginStep{
				{response: []byte("acme"), wantChallenge: "Password:"},
				{response: []byte("tok"), wantDone: true},
				{response: []byte("more"), wantErr: sasl.ErrUnexpectedClientResponse},
			},
			wantAuth: []string{"acme:tok"},
		},
		{
			name: "over-long username is refused without authenticating",
			steps: []loginStep{
				{response: bytes.Repeat([]byte("u"), maxLoginField+1), wantErr: errLoginTooLong},
				{response: []byte("tok"), wantErr: sasl.ErrUnexpectedClientResponse},
			},
		},
		{
			name: "over-long password is refused without authenticating",
			steps: []loginStep{
				{response: nil, wantChallenge: "Username:"},
				{response: []byte("acme"), wantChallenge: "Password:"},
				{response: bytes.Repeat([]byte("p"), maxLoginField+1), wantErr: errLoginTooLong},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			srv := newLoginServer(func(u, p string) error {
				calls = append(calls, u+":"+p)
				if p == "bad" {
					return errWrongPassword
				}
				return nil
			})
			for i, st := range tt.steps {
				ch, done, err := srv.Next(st.response)
				if string(ch) != st.wantChallenge || done != st.wantDone || !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: Next = %q, %v, %v; want %q, %v, %v", i, ch, done, err, st.wantChallenge, st.wantDone, st.wantErr)
				}
			}
			if strings.Join(calls, ",") != strings.Join(tt.wantAuth, ",") {
				t.Errorf("authenticate calls %q, want %q", calls, tt.wantAuth)
			}
		})
	}
}

// FuzzLoginServer feeds arbitrary response sequences: the server must never
// report done without calling authenticate exactly once, never call it
// twice, and never accept a response after it finished.
func FuzzLoginServer(f *testing.F) {
	f.Add([]byte("acme\x00tok"), true)
	f.Add([]byte("\x00\x00\x00"), false)
	f.Add([]byte(""), true)
	f.Add(bytes.Repeat([]byte("x"), 2*maxLoginField), false)
	f.Fuzz(func(t *testing.T, seq []byte, initial bool) {
		calls := 0
		srv := newLoginServer(func(u, p string) error {
			calls++
			if len(u) > maxLoginField || len(p) > maxLoginField {
				t.Fatalf("authenticate got a field over the bound: %d, %d", len(u), len(p))
			}
			return nil
		})
		parts := bytes.Split(seq, []byte{0})
		if !initial {
			parts = append([][]byte{nil}, parts...)
		}
		finished := false
		for _, p := range parts {
			ch, done, err := srv.Next(p)
			if finished && err == nil {
				t.Fatalf("response accepted after the exchange ended")
			}
			if done && calls != 1 {
				t.Fatalf("done after %d authenticate calls", calls)
			}
			if !done && err == nil && string(ch) != "Username:" && string(ch) != "Password:" {
				t.Fatalf("unexpected challenge %q", ch)
			}
			if done || err != nil {
				finished = true
			}
		}
		if calls > 1 {
			t.Fatalf("authenticate called %d times", calls)
		}
	})
}
