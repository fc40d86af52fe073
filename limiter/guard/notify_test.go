package guard

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/webhook"
)

// TestNotifierGetsEventsAndBreakerMoves: with the webhook dispatcher as
// its Notifier, the guard's bounce (then the suppression it made) and an
// operator's force-open and reset reach the tenant's webhook, verified by
// the Standard Webhooks library, in order; the account guard's record and
// other tenants send nothing.
func TestNotifierGetsEventsAndBreakerMoves(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	wh, _ := standardwebhooks.NewWebhook(secret)
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("verify: %v", err)
			return
		}
		var p struct {
			Type string `json:"type"`
			Data struct {
				Tenant  string `json:"tenant"`
				Breaker *struct {
					State string `json:"state"`
				} `json:"breaker"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &p)
		s := p.Data.Tenant + ":" + p.Type
		if p.Data.Breaker != nil {
			s += ":" + p.Data.Breaker.State
		}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}))
	defer rcv.Close()

	e := newEnv(t, Options{SuppressionScope: ScopeTenant}, map[string]breaker.Config{"acme": breaker.TenantDefaults(), "quiet": breaker.TenantDefaults()})
	d, err := webhook.New(webhook.Options{Store: e.st, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := webhook.ParseSecrets(secret)
	d.SetEndpoints(map[string][]webhook.Endpoint{"acme": {{URL: rcv.URL, Keys: keys, AllowHTTP: true,
		Allow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Events: []string{"bounce", "suppressed", "breaker_opened", "breaker_closed"}}}})
	e.g.notify = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	ev := &feedback.Event{Type: feedback.TypeBounce, Tenant: "acme", GatewayID: "g1", SESMessageID: "s1", BounceType: feedback.BouncePermanent,
		BounceSubType: "General", MailTime: e.clock.Now(), EventTime: e.clock.Now(), Recipients: []feedback.Recipient{{Address: "gone@example.net"}}}
	if err := e.g.ProcessEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := e.g.ProcessEvent(ctx, &feedback.Event{Type: feedback.TypeDelivery, Tenant: "quiet", GatewayID: "g2", SESMessageID: "s2",
		MailTime: e.clock.Now(), EventTime: e.clock.Now(), Recipients: []feedback.Recipient{{Address: "a@example.net"}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.g.ForceOpen(ctx, "acme", "leaked token"); err != nil {
		t.Fatal(err)
	}
	if err := e.g.Reset(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	want := []string{"acme:bounce", "acme:suppressed", "acme:breaker_opened:forced_open", "acme:breaker_closed:closed"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	// The message's events in order; the breaker's in order (two chains).
	msg := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return strings.Contains(s, "breaker") })
	brk := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return !strings.Contains(s, "breaker") })
	if !slices.Equal(msg, want[:2]) || !slices.Equal(brk, want[2:]) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}
