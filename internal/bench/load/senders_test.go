package load

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sesgate/sesgate/internal/sestest"
)

// smtpServer is a scripted SMTP server: AUTH PLAIN with user "dev" and
// password "tok"; every message whose number (from 1, over all
// connections) is a multiple of refuseEvery gets 451 at DATA's end; a
// recipient containing refuseRcpt gets 550 at RCPT (and DATA then 554).
type smtpServer struct {
	ln          net.Listener
	refuseEvery int
	refuseRcpt  string
	conns       atomic.Int64
	msgs        atomic.Int64
	mu          sync.Mutex
	rcpts       []string
	wg          sync.WaitGroup
}

func startSMTP(t *testing.T, refuseEvery int) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, refuseEvery: refuseEvery}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	say("220 test ESMTP")
	authed, rcpts := false, 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(cmd, "EHLO "):
			say("250-test\r\n250-PIPELINING\r\n250 AUTH PLAIN")
		case strings.HasPrefix(cmd, "AUTH PLAIN "):
			want := base64.StdEncoding.EncodeToString([]byte("\x00dev\x00tok"))
			if strings.TrimPrefix(cmd, "AUTH PLAIN ") != want {
				say("535 5.7.8 bad credentials")
				continue
			}
			authed = true
			say("235 2.7.0 ok")
		case !authed && cmd != "QUIT":
			say("530 5.7.0 auth first")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:") && s.refuseRcpt != "" && strings.Contains(cmd, s.refuseRcpt):
			say("550 5.1.1 no such user")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			rcpts++
			s.mu.Lock()
			s.rcpts = append(s.rcpts, cmd[len("RCPT TO:"):])
			s.mu.Unlock()
			say("250 ok")
		case cmd == "DATA" && rcpts == 0:
			say("554 5.5.1 no valid recipients")
		case cmd == "DATA":
			rcpts = 0
			say("354 go on")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			n := s.msgs.Add(1)
			if s.refuseEvery > 0 && n%int64(s.refuseEvery) == 0 {
				say("451 4.7.1 over the rate")
				continue
			}
			say(fmt.Sprintf("250 2.0.0 Ok: queued as gw%d ses=ses-%d", n, n))
		case cmd == "RSET":
			rcpts = 0
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("500 what")
		}
	}
}

func TestSMTPSender(t *testing.T) {
	tests := []struct {
		name        string
		token       string
		perConn     int
		refuseEvery int
		refuseRcpt  string
		pipelining  bool
		sends       int
		wantCodes   map[string]int64
		wantConns   int64
	}{
		{name: "one connection reused", token: "tok", sends: 5, wantCodes: map[string]int64{"250": 5}, wantConns: 1},
		{name: "two messages per connection", token: "tok", perConn: 2, sends: 5, wantCodes: map[string]int64{"250": 5}, wantConns: 3},
		{name: "refusal then RSET on the same connection", token: "tok", refuseEvery: 2, sends: 4, wantCodes: map[string]int64{"250": 2, "451": 2}, wantConns: 1},
		{name: "bad token", token: "nope", sends: 2, wantCodes: map[string]int64{"535": 2}, wantConns: 2},
		{name: "pipelined", token: "tok", pipelining: true, sends: 5, wantCodes: map[string]int64{"250": 5}, wantConns: 1},
		{name: "pipelined, refused at DATA's end", token: "tok", pipelining: true, refuseEvery: 2, sends: 4, wantCodes: map[string]int64{"250": 2, "451": 2}, wantConns: 1},
		{name: "pipelined, refused at RCPT: replies stay in step", token: "tok", pipelining: true, refuseRcpt: "rcpt1@", sends: 6,
			wantCodes: map[string]int64{"250": 4, "550": 2}, wantConns: 1},
		{name: "refused at RCPT", token: "tok", refuseRcpt: "rcpt1@", sends: 6, wantCodes: map[string]int64{"250": 4, "550": 2}, wantConns: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, tt.refuseEvery)
			srv.refuseRcpt = tt.refuseRcpt
			sm, err := NewSMTP(SMTPOptions{Addr: srv.ln.Addr().String(), User: "dev", Token: tt.token, PerConn: tt.perConn,
				Pipelining: tt.pipelining, Message: Message{Recipients: 3, Size: 500}})
			if err != nil {
				t.Fatal(err)
			}
			snd, _ := sm.NewSender(0)
			codes := map[string]int64{}
			for i := range tt.sends {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				out := snd.Send(ctx, int64(i))
				cancel()
				codes[out.Code]++
				if out.Code == "250" && !strings.HasPrefix(out.SESID, "ses-") {
					t.Errorf("send %d: SESID %q, want ses-N from the reply", i, out.SESID)
				}
				if out.Code != "250" && out.Err == nil {
					t.Errorf("send %d: code %s without a cause", i, out.Code)
				}
			}
			snd.Close()
			if fmt.Sprint(codes) != fmt.Sprint(tt.wantCodes) {
				t.Errorf("codes %v, want %v", codes, tt.wantCodes)
			}
			if got := srv.conns.Load(); got != tt.wantConns {
				t.Errorf("%d connections, want %d", got, tt.wantConns)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			switch {
			case tt.refuseRcpt != "":
				if fmt.Sprint(srv.rcpts) != "[<rcpt0@example.net> <rcpt2@example.net> <rcpt0@example.net> <rcpt2@example.net>]" {
					t.Errorf("recipients %v, want rcpt0 and rcpt2 twice, rcpt1 refused", srv.rcpts)
				}
			case tt.wantCodes["250"] > 0 && srv.rcpts[0] != "<rcpt0@example.net>" || len(srv.rcpts) > 2 && srv.rcpts[2] != "<rcpt2@example.net>":
				t.Errorf("recipients %v, want rcpt0, rcpt1, rcpt2 in turn", srv.rcpts)
			}
		})
	}
}

func TestSMTPSenderConnectionRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	sm, _ := NewSMTP(SMTPOptions{Addr: addr, User: "dev", Token: "tok"})
	snd, _ := sm.NewSender(0)
	defer snd.Close()
	if out := snd.Send(context.Background(), 0); out.Code != CodeError || out.Err == nil {
		t.Fatalf("outcome %+v, want %s with a cause", out, CodeError)
	}
}

func TestHTTPSender(t *testing.T) {
	var calls atomic.Int64
	var conns atomic.Int64
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		var req struct {
			From string   `json:"from"`
			To   []string `json:"to"`
			Text string   `json:"text"`
		}
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" || json.Unmarshal(body, &req) != nil || req.From != "bench@example.com" || len(req.To) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n%2 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprintf(w, `{"id":"gw","message_id":"ses-%d"}`, n)
	}))
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	hs.Start()
	defer hs.Close()

	h, err := NewHTTP(HTTPOptions{URL: hs.URL + "/v1/messages", Token: "tok", Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	res, err := Run(context.Background(), Options{Workers: 2, Count: 20, NewSender: h.NewSender,
		SESTime: func(id string) (time.Duration, bool) { return time.Microsecond, strings.HasPrefix(id, "ses-") }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Codes["200"] != 10 || res.Codes["429"] != 10 || res.Matched != 10 {
		t.Errorf("codes %v matched %d, want 10 of 200 (all matched) and 10 of 429", res.Codes, res.Matched)
	}
	if conns.Load() > 2 {
		t.Errorf("%d connections for 2 keep-alive workers", conns.Load())
	}

	bad, _ := NewHTTP(HTTPOptions{URL: hs.URL, Token: "wrong"})
	snd, _ := bad.NewSender(0)
	if out := snd.Send(context.Background(), 0); out.Code != "401" || out.SESID != "" {
		t.Errorf("wrong token: %+v, want 401", out)
	}
}

func TestSDKSender(t *testing.T) {
	srv, url, stop, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	sdk, err := NewSDK(SDKOptions{Endpoint: url, Region: sestest.DefaultRegion, Conns: 2,
		Credentials: credentials.NewStaticCredentialsProvider(sestest.DefaultAccessKeyID, sestest.DefaultSecretAccessKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	snd, _ := sdk.NewSender(0)
	out := snd.Send(context.Background(), 7)
	if out.Code != "200" || out.SESID == "" {
		t.Fatalf("outcome %+v, want 200 with a MessageId", out)
	}
	m, ok := srv.Message(out.SESID)
	if !ok || m.To[0] != "rcpt7@example.net" || m.Size < 900 || m.Size > 1100 {
		t.Errorf("SES got %v (ok %v), want rcpt7@example.net and about 1000 bytes", m.To, ok)
	}
	srv.FailNext(1, sestest.Fault{Type: sestest.TooManyRequests})
	if out := snd.Send(context.Background(), 0); out.Code != "TooManyRequestsException" {
		t.Errorf("throttled: code %q, want TooManyRequestsException", out.Code)
	}
	if _, err := NewSDK(SDKOptions{}); err == nil {
		t.Error("NewSDK without endpoint: no error")
	}
}
