package integration

// SES parameters (X-SES-* header fields, JSON fields), idempotency keys and
// the null sender through the real front ends, the real SES sink and the
// aws-sdk-go-v2 client against sestest, on real Redis (two replicas) and
// on the embedded store.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/httpapi"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/limiter"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// shopTenant may use two configuration sets; "events" is its default.
func shopTenant() tenantSpec {
	ts := newTenant("shop", gateway.Limits{})
	ts.tenant.SES = gateway.SESOptions{ConfigurationSet: "events", ConfigurationSets: []string{"events", "marketing"}}
	return ts
}

// embedded is one gateway on the embedded store (the laptop shape).
type embedded struct {
	store            *boltstore.Store
	httpURL, smtpAdr string
}

func startEmbedded(t *testing.T, sink gateway.Sink, es []auth.Entry) *embedded {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lim, err := limiter.NewShared(limiter.SharedOptions{Store: st, Logger: log, DegradedWindow: -1, CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pipe := gateway.NewPipeline(gateway.Options{Auth: auth.NewRegistry(auth.RegistryOptions{Entries: es, Logger: log}), Limiter: lim, Sink: sink, Logger: log})
	h := httpapi.New(httpapi.Options{Pipeline: pipe, Logger: log, Idempotency: st})
	u, s := serveFrontEnds(t, pipe, h, log)
	return &embedded{store: st, httpURL: u, smtpAdr: s}
}

// post sends one request to /v1/messages and returns the status, headers
// and body as received.
func post(t *testing.T, url, token, contentType, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// sesMessage returns what sestest recorded for the SES MessageId in a 200
// JSON answer or an SMTP 250 reply ("... ses=<id>").
func sesMessage(t *testing.T, srv *sestest.Server, answer string) sestest.Message {
	t.Helper()
	id := ""
	if _, after, ok := strings.Cut(answer, "ses="); ok {
		id = strings.Fields(after)[0]
	} else {
		var a struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal([]byte(answer), &a); err != nil {
			t.Fatalf("answer %q: %v", answer, err)
		}
		id = a.MessageID
	}
	m, ok := srv.Message(id)
	if !ok {
		t.Fatalf("SES has no message %q (answer %q)", id, answer)
	}
	return m
}

// smtpSend sends one message over SMTP with the given envelope sender and
// header section lines, and returns the final reply as "code text".
func smtpSend(t *testing.T, addr, tenant, token, mailFrom, headers string) string {
	t.Helper()
	c := dialSMTP(t, addr, tenant, token)
	c.cmd(250, "MAIL FROM:<"+mailFrom+">")
	c.cmd(250, "RCPT TO:<rcpt@dest.example>")
	c.cmd(354, "DATA")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "%sTo: rcpt@dest.example\r\nSubject: t\r\n\r\nhello\r\n", headers)
	w.Close()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %s", code, msg)
}

// TestSESParamsReachSES: the X-SES-* fields of an SMTP and a raw HTTP
// message, and the JSON fields, arrive at SES as SendEmail parameters
// (ConfigurationSetName, EmailTags beside the gateway's own,
// ListManagementOptions) and not as header fields; without any, the
// tenant's default configuration set.
func TestSESParamsReachSES(t *testing.T) {
	srv, sink, _ := startSES(t)
	shop := shopTenant()
	gw := startEmbedded(t, sink, entries(shop))
	const xses = "X-SES-CONFIGURATION-SET: marketing\r\nX-SES-MESSAGE-TAGS: campaign=spring-2026, kind=receipt\r\nX-SES-LIST-MANAGEMENT-OPTIONS: news; topic=weekly\r\n"
	wantLM := sestest.ListManagement{ContactListName: "news", TopicName: "weekly"}
	check := func(t *testing.T, m sestest.Message, set string, tags map[string]string, lm *sestest.ListManagement) {
		t.Helper()
		if m.ConfigurationSet != set {
			t.Errorf("ConfigurationSet %q, want %q", m.ConfigurationSet, set)
		}
		for k, v := range tags {
			if m.Tags[k] != v {
				t.Errorf("tag %s = %q, want %q (tags %v)", k, m.Tags[k], v, m.Tags)
			}
		}
		if m.Tags["sesgate-tenant"] != "shop" {
			t.Errorf("gateway tag missing: %v", m.Tags)
		}
		if (m.ListManagement == nil) != (lm == nil) || lm != nil && *m.ListManagement != *lm {
			t.Errorf("ListManagement %+v, want %+v", m.ListManagement, lm)
		}
		if bytes.Contains(bytes.ToLower(m.Raw), []byte("x-ses-")) {
			t.Errorf("X-SES field reached SES in the message:\n%s", m.Raw)
		}
	}
	t.Run("smtp", func(t *testing.T) {
		reply := smtpSend(t, gw.smtpAdr, "shop", shop.token, "app@sender.example", "From: app@sender.example\r\n"+xses)
		if !strings.HasPrefix(reply, "250 ") {
			t.Fatalf("reply %q", reply)
		}
		check(t, sesMessage(t, srv, reply), "marketing", map[string]string{"campaign": "spring-2026", "kind": "receipt"}, &wantLM)
	})
	t.Run("raw http", func(t *testing.T) {
		status, _, body := post(t, gw.httpURL, shop.token, "message/rfc822",
			"From: app@sender.example\r\nTo: rcpt@dest.example\r\n"+xses+"Subject: t\r\n\r\nhello\r\n", nil)
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		check(t, sesMessage(t, srv, string(body)), "marketing", map[string]string{"campaign": "spring-2026", "kind": "receipt"}, &wantLM)
	})
	t.Run("json", func(t *testing.T) {
		status, _, body := post(t, gw.httpURL, shop.token, "application/json", `{"from":"app@sender.example","to":["rcpt@dest.example"],
			"subject":"s","text":"x","tags":{"campaign":"spring-2026"},"configuration_set":"marketing",
			"list_management":{"contact_list":"news","topic":"weekly"}}`, nil)
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		check(t, sesMessage(t, srv, string(body)), "marketing", map[string]string{"campaign": "spring-2026"}, &wantLM)
	})
	t.Run("defaults", func(t *testing.T) {
		reply := smtpSend(t, gw.smtpAdr, "shop", shop.token, "app@sender.example", "From: app@sender.example\r\n")
		check(t, sesMessage(t, srv, reply), "events", nil, nil)
	})
}

// TestSESParamRefusals: every refusal of an SES parameter, with its exact
// SMTP reply and HTTP answer, naming the parameter; nothing reaches SES.
func TestSESParamRefusals(t *testing.T) {
	srv, sink, _ := startSES(t)
	shop := shopTenant()
	gw := startEmbedded(t, sink, entries(shop))
	for _, tc := range []struct {
		name, headers string // X-SES fields for SMTP and raw HTTP
		json          string // JSON fields for the JSON endpoint ("" skips)
		msg           string // the refusal text on both
	}{
		{"configuration set not allowed", "X-SES-CONFIGURATION-SET: ops\r\n", `"configuration_set":"ops"`,
			`configuration set "ops" is not allowed for this tenant`},
		{"bad tag", "X-SES-MESSAGE-TAGS: kind=a.b\r\n", `"tags":{"kind":"a.b"}`,
			`message tag "kind" value: 1 to 256 characters of A-Z, a-z, 0-9, '_' and '-'`},
		{"reserved tag", "X-SES-MESSAGE-TAGS: sesgate-tenant=other\r\n", `"tags":{"sesgate-tenant":"other"}`,
			`message tag name "sesgate-tenant" is reserved (names starting "sesgate-" are sesgate's)`},
		{"source ARN", "X-SES-SOURCE-ARN: arn:aws:ses:eu-west-1:123456789012:identity/sender.example\r\n", `"headers":{"X-SES-SOURCE-ARN":"arn:x"}`,
			"X-SES-SOURCE-ARN header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
		{"return-path ARN", "X-SES-RETURN-PATH-ARN: arn:x\r\n", "",
			"X-SES-RETURN-PATH-ARN header is not allowed: identity ARNs and other SES options are set by the gateway's policy"},
		{"repeated", "X-SES-CONFIGURATION-SET: events\r\nX-SES-CONFIGURATION-SET: events\r\n", "",
			"X-SES-CONFIGURATION-SET header given more than once"},
		{"malformed tags", "X-SES-MESSAGE-TAGS: campaign\r\n", "",
			`X-SES-MESSAGE-TAGS header: want name1=value1, name2=value2, got "campaign"`},
		{"header and field differ", "", `"configuration_set":"events","headers":{"X-SES-CONFIGURATION-SET":"marketing"}`,
			`configuration set: the X-SES-CONFIGURATION-SET header ("marketing") and the request's configuration_set ("events") differ`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.headers != "" {
				if got, want := smtpSend(t, gw.smtpAdr, "shop", shop.token, "app@sender.example", "From: app@sender.example\r\n"+tc.headers), "554 5.7.1 "+tc.msg; got != want {
					t.Errorf("SMTP reply\n %q\nwant\n %q", got, want)
				}
				status, _, body := post(t, gw.httpURL, shop.token, "message/rfc822", "From: app@sender.example\r\nTo: rcpt@dest.example\r\n"+tc.headers+"\r\nx\r\n", nil)
				if want := `{"error":{"code":"bad_parameter","message":` + jsonString(tc.msg) + `}}`; status != 400 || strings.TrimSpace(string(body)) != want {
					t.Errorf("raw HTTP: %d %s\nwant 400 %s", status, body, want)
				}
			}
			if tc.json != "" {
				status, _, body := post(t, gw.httpURL, shop.token, "application/json",
					`{"from":"app@sender.example","to":["rcpt@dest.example"],"subject":"s","text":"x",`+tc.json+`}`, nil)
				if want := `{"error":{"code":"bad_parameter","message":` + jsonString(tc.msg) + `}}`; status != 400 || strings.TrimSpace(string(body)) != want {
					t.Errorf("JSON: %d %s\nwant 400 %s", status, body, want)
				}
			}
		})
	}
	if n := srv.Requests(); n != 0 {
		t.Fatalf("SES got %d requests, want 0", n)
	}
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(true)
	enc.Encode(s)
	return strings.TrimSpace(b.String())
}

// TestNullSender: MAIL FROM:<> through the real SMTP listener is sent when
// the From header is an identity of the tenant (SES takes the sender from
// it: no FromEmailAddress), and refused at the end of DATA when it is not.
func TestNullSender(t *testing.T) {
	srv, sink, _ := startSES(t)
	shop := shopTenant()
	gw := startEmbedded(t, sink, entries(shop))
	reply := smtpSend(t, gw.smtpAdr, "shop", shop.token, "", "From: Auto Reply <app@sender.example>\r\nAuto-Submitted: auto-replied\r\n")
	if !strings.HasPrefix(reply, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("reply %q", reply)
	}
	if m := sesMessage(t, srv, reply); m.From != "app@sender.example" || !bytes.Contains(m.Raw, []byte("From: Auto Reply <app@sender.example>")) {
		t.Fatalf("SES got From %q, message %q", m.From, m.Raw)
	}
	if got, want := smtpSend(t, gw.smtpAdr, "shop", shop.token, "", "From: boss@evil.example\r\n"), "550 5.7.1 From header address not allowed for this tenant"; got != want {
		t.Fatalf("foreign From: %q, want %q", got, want)
	}
	if n := srv.Accepted(); n != 1 {
		t.Fatalf("SES accepted %d, want 1", n)
	}
}

// idemGateways are two doors onto one store: two replicas on one Redis, or
// the one embedded gateway twice.
type idemGateways struct {
	a, b  string // HTTP base URLs
	token string
	ses   *sestest.Server
	// storeDown makes the store unreachable.
	storeDown func()
}

// runIdempotency: replay on the other door with the same status, body and
// SES MessageId and nothing sent; 409 while the first is in flight; 422 for
// another body or endpoint; a failed send releases the key; a store that is
// down answers 503 and sends nothing.
func runIdempotency(t *testing.T, g idemGateways) {
	const body = `{"from":"app@sender.example","to":["rcpt@dest.example"],"subject":"s","text":"order 42"}`
	key := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

	status, hdr, first := post(t, g.a, g.token, "application/json", body, key("order-42"))
	if status != 200 || hdr.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s %v", status, first, hdr)
	}
	status, hdr, again := post(t, g.b, g.token, "application/json", body, key("order-42"))
	if status != 200 || hdr.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again, first) {
		t.Fatalf("replay: %d %q (replayed %q)\nwant 200 %q", status, again, hdr.Get("Idempotent-Replayed"), first)
	}
	if n := g.ses.Accepted(); n != 1 {
		t.Fatalf("SES accepted %d, want 1", n)
	}

	status, _, got := post(t, g.b, g.token, "application/json", strings.Replace(body, "order 42", "order 43", 1), key("order-42"))
	if status != 422 || !strings.Contains(string(got), `"code":"idempotency_key_reused"`) {
		t.Fatalf("other body: %d %s", status, got)
	}
	status, _, got = post(t, g.b, g.token, "message/rfc822", "From: app@sender.example\r\nTo: rcpt@dest.example\r\n\r\nx\r\n", key("order-42"))
	if status != 422 {
		t.Fatalf("other endpoint: %d %s", status, got)
	}

	// In flight: the first holds the key while SES is slow.
	g.ses.SetLatency(3 * time.Second)
	reqs := g.ses.Requests()
	var wg sync.WaitGroup
	var slowStatus int
	var slowBody []byte
	wg.Add(1)
	go func() {
		defer wg.Done()
		slowStatus, _, slowBody = post(t, g.a, g.token, "application/json", body, key("slow-1"))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for g.ses.Requests() == reqs && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	status, hdr, got = post(t, g.b, g.token, "application/json", body, key("slow-1"))
	if status != 409 || hdr.Get("Retry-After") == "" || !strings.Contains(string(got), `"code":"idempotency_in_flight"`) {
		t.Fatalf("in flight: %d %s (Retry-After %q)", status, got, hdr.Get("Retry-After"))
	}
	wg.Wait()
	g.ses.SetLatency(0)
	if slowStatus != 200 {
		t.Fatalf("slow first: %d %s", slowStatus, slowBody)
	}
	if status, _, got = post(t, g.b, g.token, "application/json", body, key("slow-1")); status != 200 || !bytes.Equal(got, slowBody) {
		t.Fatalf("after the slow one: %d %s", status, got)
	}

	// A failed send releases the key: the retry is sent.
	g.ses.FailNext(1, sestest.Fault{Type: sestest.InternalServiceError})
	if status, _, got = post(t, g.a, g.token, "application/json", body, key("fail-1")); status != 502 || !strings.Contains(string(got), "ses_unavailable") {
		t.Fatalf("failed send: %d %s", status, got)
	}
	before := g.ses.Accepted()
	if status, hdr, got = post(t, g.b, g.token, "application/json", body, key("fail-1")); status != 200 || hdr.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after failure: %d %s", status, got)
	}
	if g.ses.Accepted() != before+1 {
		t.Fatal("retry after failure not sent")
	}

	// The store down: 503, nothing sent without the check.
	g.storeDown()
	before = g.ses.Requests()
	status, hdr, got = post(t, g.a, g.token, "application/json", body, key("down-1"))
	if status != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(string(got), `"code":"store_unavailable"`) {
		t.Fatalf("store down: %d %s", status, got)
	}
	if g.ses.Requests() != before {
		t.Fatal("sent while the store was down")
	}
}

func TestIdempotencyTwoReplicasRedis(t *testing.T) {
	srv, sink, _ := startSES(t)
	rs := redistest.Start(t)
	shop := shopTenant()
	es := entries(shop)
	conn := redisstore.ConnOptions{URL: "redis://" + rs.Addr}
	o := healthy(conn)
	o.timeout = 2 * time.Second
	r1, r2 := startReplica(t, o, sink, es), startReplica(t, o, sink, es)
	runIdempotency(t, idemGateways{a: r1.httpURL, b: r2.httpURL, token: shop.token, ses: srv, storeDown: rs.Kill})
}

func TestIdempotencyEmbedded(t *testing.T) {
	srv, sink, _ := startSES(t)
	shop := shopTenant()
	gw := startEmbedded(t, sink, entries(shop))
	runIdempotency(t, idemGateways{a: gw.httpURL, b: gw.httpURL, token: shop.token, ses: srv,
		storeDown: func() { gw.store.Close() }})
}
