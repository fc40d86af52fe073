package sestest

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// receiver records the SNS notifications posted to it.
type receiver struct {
	mu   sync.Mutex
	got  []map[string]string
	hdrs []http.Header
	ch   chan struct{}
}

func startReceiver(t *testing.T) (*receiver, string) {
	r := &receiver{ch: make(chan struct{}, 1000)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var m map[string]string
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, m)
		r.hdrs = append(r.hdrs, req.Header.Clone())
		r.mu.Unlock()
		r.ch <- struct{}{}
	}))
	t.Cleanup(ts.Close)
	return r, ts.URL
}

func (r *receiver) wait(t *testing.T, n int) []map[string]string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("got %d of %d notifications", len(r.got), n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]string(nil), r.got...)
}

// verify checks m's signature against the server's certificate with an
// independent string-to-sign.
func verify(t *testing.T, srv *Server, m map[string]string) {
	t.Helper()
	p, err := srv.SNSCertificatePEM()
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(p)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s := "Message\n" + m["Message"] + "\nMessageId\n" + m["MessageId"] + "\nTimestamp\n" + m["Timestamp"] +
		"\nTopicArn\n" + m["TopicArn"] + "\nType\n" + m["Type"] + "\n"
	sig, _ := base64.StdEncoding.DecodeString(m["Signature"])
	pub := cert.PublicKey.(*rsa.PublicKey)
	if m["SignatureVersion"] == "1" {
		d := sha1.Sum([]byte(s))
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA1, d[:], sig)
	} else {
		d := sha256.Sum256([]byte(s))
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
	}
	if err != nil {
		t.Fatalf("signature of %s does not verify: %v", m["MessageId"], err)
	}
	if m["SigningCertURL"] != SNSCertURL {
		t.Fatalf("SigningCertURL %q", m["SigningCertURL"])
	}
}

func TestEventsPublished(t *testing.T) {
	tests := []struct {
		name    string
		opts    EventOptions
		to      []string
		want    map[string]int // event type -> notifications
		tags    bool
		version string
	}{
		{"bounce and delivery, event format", EventOptions{Deliveries: true}, []string{"bounce1@example.net", "ok@example.net", "Bounce.two@example.net"},
			map[string]int{"Bounce": 2, "Delivery": 1}, true, "2"},
		{"complaint, notification format, v1", EventOptions{Format: FormatNotification, SignatureVersion: "1"}, []string{"complaint@example.net", "ok@example.net"},
			map[string]int{"Complaint": 1}, false, "1"},
		{"transient bounce", EventOptions{BounceType: "Transient", BounceSubType: "MailboxFull"}, []string{"bounce@example.net"},
			map[string]int{"Bounce": 1}, true, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := start(t, Options{})
			rcv, rurl := startReceiver(t)
			tc.opts.URL = rurl
			tc.opts.Delay = 20 * time.Millisecond
			if err := srv.SetEvents(&tc.opts); err != nil {
				t.Fatal(err)
			}
			in := rawInput(tc.to...)
			in.ConfigurationSetName = aws.String("events")
			in.EmailTags = []types.MessageTag{{Name: aws.String("sesgate-tenant"), Value: aws.String("t1")}}
			out, err := client(url).SendEmail(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range tc.want {
				n += c
			}
			got := rcv.wait(t, n)
			counts := map[string]int{}
			for i, m := range got {
				verify(t, srv, m)
				if rcv.hdrs[i].Get("x-amz-sns-message-type") != "Notification" || m["TopicArn"] != DefaultTopicArn || m["SignatureVersion"] != tc.version {
					t.Fatalf("envelope %v headers %v", m, rcv.hdrs[i])
				}
				var ev struct {
					EventType, NotificationType string
					Mail                        struct {
						MessageID string `json:"messageId"`
						Timestamp string
						Tags      map[string][]string
					}
					Bounce struct {
						BounceType, BounceSubType string
						BouncedRecipients         []struct{ EmailAddress, Status string }
					}
				}
				if err := json.Unmarshal([]byte(m["Message"]), &ev); err != nil {
					t.Fatal(err)
				}
				typ := ev.EventType + ev.NotificationType
				counts[typ]++
				if ev.Mail.MessageID != *out.MessageId {
					t.Fatalf("mail.messageId %q; want %q", ev.Mail.MessageID, *out.MessageId)
				}
				sent, _ := srv.Message(*out.MessageId)
				if ev.Mail.Timestamp != sent.Received.UTC().Format("2006-01-02T15:04:05.000Z") {
					t.Fatalf("mail.timestamp %q; want the send time %v", ev.Mail.Timestamp, sent.Received)
				}
				if hasTag := len(ev.Mail.Tags["sesgate-tenant"]) == 1 && ev.Mail.Tags["sesgate-tenant"][0] == "t1"; hasTag != tc.tags {
					t.Fatalf("tags %v; want tenant tag %v", ev.Mail.Tags, tc.tags)
				}
				if tc.tags && (tc.opts.Format == FormatNotification) == (ev.EventType != "") {
					t.Fatal("wrong format key")
				}
				if typ == "Bounce" {
					wantType, wantSub := "Permanent", "General"
					if tc.opts.BounceType != "" {
						wantType, wantSub = tc.opts.BounceType, tc.opts.BounceSubType
					}
					if ev.Bounce.BounceType != wantType || ev.Bounce.BounceSubType != wantSub || len(ev.Bounce.BouncedRecipients) != 1 ||
						!strings.HasPrefix(strings.ToLower(ev.Bounce.BouncedRecipients[0].EmailAddress), "bounce") {
						t.Fatalf("bounce %+v", ev.Bounce)
					}
				}
			}
			if fmt.Sprint(counts) != fmt.Sprint(tc.want) {
				t.Fatalf("notifications %v; want %v", counts, tc.want)
			}
			waitPublished(t, srv, int64(n))
		})
	}
}

func TestBounceFractionDeterministic(t *testing.T) {
	count := func(seed uint64) (int, string) {
		n := 0
		var picks strings.Builder
		for i := range 2000 {
			if chosen(seed, fmt.Sprintf("user%d@example.net", i), 0.3) {
				n++
				fmt.Fprint(&picks, i, ",")
			}
		}
		return n, picks.String()
	}
	n1, p1 := count(7)
	n2, p2 := count(7)
	_, p3 := count(8)
	if n1 != n2 || p1 != p2 {
		t.Fatal("same seed, different picks")
	}
	if p1 == p3 {
		t.Fatal("different seeds, same picks")
	}
	if n1 < 520 || n1 > 680 {
		t.Fatalf("picked %d of 2000 at 30%%", n1)
	}
	if chosen(7, "USER1@example.net", 0.3) != chosen(7, "user1@example.net", 0.3) {
		t.Fatal("case changes the pick")
	}
}

func TestEventsQueueBoundedAndClose(t *testing.T) {
	srv, url, stop, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := srv.SetEvents(&EventOptions{URL: "http://127.0.0.1:1/", Delay: time.Hour, QueueSize: 2}); err != nil {
		t.Fatal(err)
	}
	c := client(url)
	for range 5 {
		if _, err := c.SendEmail(context.Background(), rawInput("bounce@example.net")); err != nil {
			t.Fatal(err)
		}
	}
	// The publisher holds two (waiting for their due time), the queue
	// two: one dropped at least.
	if st := srv.EventStats(); st.Dropped < 1 {
		t.Fatalf("stats %+v; want drops", st)
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the publisher")
	}
}

func TestEventsOptionsChecked(t *testing.T) {
	srv := New(Options{})
	defer srv.Close()
	for _, o := range []EventOptions{
		{},
		{URL: "ftp://x"},
		{URL: "http://x", Delay: 2 * time.Hour},
		{URL: "http://x", Format: "xml"},
		{URL: "http://x", SignatureVersion: "3"},
		{URL: "http://x", BounceFraction: 1.5},
		{URL: "http://x", BounceType: "Soft"},
	} {
		if err := srv.SetEvents(&o); err == nil {
			t.Errorf("SetEvents(%+v) accepted", o)
		}
	}
}

func TestEventsControlAPI(t *testing.T) {
	srv, url := start(t, Options{EnableControl: true})
	rcv, rurl := startReceiver(t)
	resp, err := http.Post(url+"/_sestest/events", "application/json",
		strings.NewReader(`{"url":"`+rurl+`","delay":"10ms","bounce_fraction":1,"seed":3}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST events: %d", resp.StatusCode)
	}
	if _, err := client(url).SendEmail(context.Background(), rawInput("anyone@example.net")); err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 1)
	verify(t, srv, got[0])
	resp, err = http.Get(url + "/_sestest/sns-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := srv.SNSCertificatePEM()
	if string(body) != string(want) {
		t.Fatal("served certificate differs")
	}
	resp, err = http.Post(url+"/_sestest/events", "application/json", strings.NewReader(`{"url":"`+rurl+`","bogus":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", resp.StatusCode)
	}
	resp, err = http.Post(url+"/_sestest/events", "application/json", strings.NewReader(`{"disable":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := client(url).SendEmail(context.Background(), rawInput("anyone@example.net")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	waitPublished(t, srv, 1)
}

// waitPublished waits until the publisher counted n notifications, and
// checks that no more were counted.
func waitPublished(t *testing.T, srv *Server, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); srv.EventStats().Published < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if st := srv.EventStats(); st.Published != n || st.Dropped != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v; want %d published", st, n)
	}
}
