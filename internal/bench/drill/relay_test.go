package drill

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func notification(t *testing.T, ses map[string]any) string {
	t.Helper()
	msg, err := json.Marshal(ses)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "m1", "Message": string(msg), "Signature": "sig"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRelay(t *testing.T) {
	mailTime := time.Date(2026, 11, 30, 0, 1, 2, 345e6, time.UTC)
	mail := map[string]any{"timestamp": mailTime.Format("2006-01-02T15:04:05.000Z"), "tags": map[string][]string{"sesgate-tenant": {"shop"}}}
	var mu sync.Mutex
	var got []string
	status := http.StatusOK
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("X-Amz-Sns-Message-Type")+" "+r.URL.Path+" "+string(b))
		st := status
		mu.Unlock()
		w.WriteHeader(st)
	}))
	defer gw.Close()
	now := time.Date(2026, 11, 30, 0, 1, 5, 0, time.UTC)
	relay := NewRelay(RelayOptions{Target: gw.URL + "/v1/events/sns", Now: func() time.Time { return now }})
	rs := httptest.NewServer(relay)
	defer rs.Close()

	tests := []struct {
		name   string
		body   string
		status int
		want   Event
	}{
		{name: "hard bounce", status: 200,
			body: notification(t, map[string]any{"eventType": "Bounce", "mail": mail, "bounce": map[string]any{"bounceType": "Permanent",
				"bouncedRecipients": []map[string]string{{"emailAddress": "bounce-1@x.example"}, {"emailAddress": "bounce-2@x.example"}}}}),
			want: Event{Type: "Bounce", Tenant: "shop", Recipients: []string{"bounce-1@x.example", "bounce-2@x.example"}, MailTime: mailTime, Status: 200}},
		{name: "transient bounce", status: 200,
			body: notification(t, map[string]any{"eventType": "Bounce", "mail": mail, "bounce": map[string]any{"bounceType": "Transient",
				"bouncedRecipients": []map[string]string{{"emailAddress": "a@x.example"}}}}),
			want: Event{Type: "TransientBounce", Tenant: "shop", Recipients: []string{"a@x.example"}, MailTime: mailTime, Status: 200}},
		{name: "complaint, refused by the gateway", status: 403,
			body: notification(t, map[string]any{"notificationType": "Complaint", "mail": mail, "complaint": map[string]any{
				"complainedRecipients": []map[string]string{{"emailAddress": "complaint-1@x.example"}}}}),
			want: Event{Type: "Complaint", Tenant: "shop", Recipients: []string{"complaint-1@x.example"}, MailTime: mailTime, Status: 403}},
		{name: "unreadable", status: 400, body: `{"Type": "Notification", "Message": "{"}`, want: Event{Type: "unreadable", Status: 400}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			status = tt.status
			mu.Unlock()
			req, _ := http.NewRequest(http.MethodPost, rs.URL, strings.NewReader(tt.body))
			req.Header.Set("x-amz-sns-message-type", "Notification")
			req.Header.Set("Authorization", "not passed on")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("relay answered %d, want the gateway's %d", resp.StatusCode, tt.status)
			}
			mu.Lock()
			last := got[len(got)-1]
			mu.Unlock()
			if last != "Notification /v1/events/sns "+tt.body {
				t.Errorf("gateway got %q", last)
			}
			evs, dropped := relay.Events()
			if len(evs) != i+1 || dropped != 0 {
				t.Fatalf("%d events, %d dropped", len(evs), dropped)
			}
			ev := evs[i]
			tt.want.At = now
			if ev.Type != tt.want.Type || ev.Tenant != tt.want.Tenant || strings.Join(ev.Recipients, ",") != strings.Join(tt.want.Recipients, ",") ||
				!ev.MailTime.Equal(tt.want.MailTime) || ev.Status != tt.want.Status || !ev.At.Equal(now) {
				t.Errorf("event %+v, want %+v", ev, tt.want)
			}
		})
	}
	// A gateway that does not answer: 502, recorded with status 0.
	gw.Close()
	resp, err := http.Post(rs.URL, "text/plain", strings.NewReader(tests[0].body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	evs, _ := relay.Events()
	if resp.StatusCode != http.StatusBadGateway || evs[len(evs)-1].Status != 0 {
		t.Errorf("gateway down: relay answered %d, recorded status %d", resp.StatusCode, evs[len(evs)-1].Status)
	}
}
