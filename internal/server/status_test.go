package server

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/sestest"
)

func getJSON(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStatusAPI: an app reads its message's state and events, and whether
// an address is suppressed for it, with its own token on the HTTP
// listener; another tenant's token gets the unknown id's 404 (no existence
// oracle) and sees no tenant-scoped suppression; nothing can be changed
// there.
func TestStatusAPI(t *testing.T) {
	dir := t.TempDir()
	hs := newHookStack(t, dir, "", "      - {url: \"https://hooks.evil.example/x\", events: [delivery], secret_file: SECRET}\n")
	hs.receiver.setDown(false)
	srv, s := startHookGateway(t, dir, hs.policy)
	defer srv.close()
	if err := hs.ses.SetEvents(&sestest.EventOptions{URL: "http://" + s.HTTPAddr + DefaultSNSPath, Deliveries: true}); err != nil {
		t.Fatal(err)
	}
	id, sesID := sendMail(t, s.HTTPAddr, hs.token, "shop@app.example", "bounce1@example.net", "ok1@example.net")
	base := "http://" + s.HTTPAddr

	var st MessageStatus
	waitFor(t, "the bounce and delivery in the status", 30*time.Second, func() bool {
		code, body := getJSON(t, "GET", base+"/v1/messages/"+id, hs.token)
		st = MessageStatus{}
		return code == 200 && json.Unmarshal([]byte(body), &st) == nil && len(st.Events) == 3
	})
	var types []string
	for _, ev := range st.Events {
		types = append(types, ev.Type)
	}
	slices.Sort(types)
	if st.State != "bounced" || st.SESMessageID != sesID || st.ID != id || !slices.Equal(types, []string{"accepted", "bounce", "delivery"}) {
		t.Fatalf("status %+v", st)
	}

	codeOther, bodyOther := getJSON(t, "GET", base+"/v1/messages/"+id, hs.evil)
	codeUnknown, bodyUnknown := getJSON(t, "GET", base+"/v1/messages/0000000000000000", hs.evil)
	if codeOther != 404 || codeUnknown != 404 || bodyOther != bodyUnknown {
		t.Fatalf("another tenant's id: %d %s; unknown: %d %s", codeOther, bodyOther, codeUnknown, bodyUnknown)
	}
	if code, _ := getJSON(t, "GET", base+"/v1/messages/"+id, ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}

	var sup SuppressionStatus
	code, body := getJSON(t, "GET", base+"/v1/suppressions/Bounce1@example.net", hs.token)
	if code != 200 || json.Unmarshal([]byte(body), &sup) != nil || !sup.Suppressed || len(sup.Entries) != 1 ||
		sup.Entries[0].Scope != "tenant" || sup.Entries[0].Reason != "hard-bounce" || sup.Entries[0].Since.IsZero() {
		t.Fatalf("app's suppression: %d %s", code, body)
	}
	code, body = getJSON(t, "GET", base+"/v1/suppressions/bounce1@example.net", hs.evil)
	if code != 200 || json.Unmarshal([]byte(body), &sup) != nil || sup.Suppressed {
		t.Fatalf("other tenant sees the app's suppression: %d %s", code, body)
	}
	for _, m := range []string{"DELETE", "POST", "PUT"} {
		if code, _ := getJSON(t, m, base+"/v1/suppressions/bounce1@example.net", hs.token); code != 405 {
			t.Fatalf("%s suppression: %d, want 405", m, code)
		}
	}
	code, body = getJSON(t, "GET", base+"/v1/suppressions/bounce1@example.net", hs.token)
	if code != 200 || json.Unmarshal([]byte(body), &sup) != nil || !sup.Suppressed {
		t.Fatalf("suppression gone after the refused calls: %d %s", code, body)
	}
}
