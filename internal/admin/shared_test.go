package admin_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/ses/feedback"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// sharedStore is what the shared views need of a store; both stores are
// one.
type sharedStore interface {
	storeadmin.Store
	store.DashboardStore
	guard.Store
	guard.MessageStore
	RecordMessageEvents(ctx context.Context, evs []store.MessageEvent, ttl time.Duration) error
	MessageEvents(ctx context.Context, gatewayID string) ([]store.MessageEvent, error)
}

var testRecipientKey = []byte("0123456789abcdef0123")

// stores are the two stores the shared views are tested on.
var stores = []struct {
	name string
	open func(t *testing.T, now func() time.Time) sharedStore
}{
	{"bolt", func(t *testing.T, now func() time.Time) sharedStore {
		st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testRecipientKey, Now: now})
		must(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"redis", func(t *testing.T, now func() time.Time) sharedStore {
		srv := redistest.Start(t)
		st, err := redisstore.Dial(context.Background(), redisstore.ConnOptions{URL: "redis://" + srv.Addr}, redisstore.Options{RecipientKey: testRecipientKey, Now: now})
		must(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// sharedEnv is one replica's admin API on a shared store.
type sharedEnv struct {
	*env
	ss sharedStore
	g  *guard.Guard
}

func newSharedEnv(t *testing.T, ss sharedStore, c *clock, mod func(*admin.Options)) *sharedEnv {
	t.Helper()
	tenants := []*gateway.Tenant{{ID: "alpha"}, {ID: "beta"}, {ID: "gamma"}}
	g, err := guard.New(guard.Options{Store: ss, Now: c.Now, Config: func(id string) (breaker.Config, bool) {
		return breaker.TenantDefaults(), slices.ContainsFunc(tenants, func(t *gateway.Tenant) bool { return t.ID == id })
	}})
	must(t, err)
	be, err := storeadmin.New(storeadmin.Options{Store: ss, Breakers: g, Now: c.Now}, &storeadmin.Policy{Tenants: tenants})
	must(t, err)
	adm := auth.NewToken("ops")
	opts := admin.Options{
		Tokens: be.Tokens(), Tenants: be.Tenants(), Breakers: g, Suppressions: be.Suppressions(), Audit: be.Audit(),
		AdminTokens: []admin.AdminToken{{KeyID: adm.Record.KeyID, Hash: adm.Record.Hash, Name: "ops"}},
		Messages:    ss, Dashboard: ss, Now: c.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	h, err := admin.New(opts)
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &sharedEnv{env: &env{srv: srv, be: be, guard: g, tenants: tenants, clock: c, token: adm.Token, kid: adm.Record.KeyID}, ss: ss, g: g}
}

type okSink struct{ n atomic.Int64 }

func (s *okSink) Send(context.Context, *gateway.Envelope) (string, error) {
	return fmt.Sprint("ses-", s.n.Add(1)), nil
}

// TestSharedViews runs on both stores, with two replicas (two admin APIs,
// two feed writers, two refusal counters) on one store: the feed shows
// both replicas' events newest first with their names; refusals are
// summed across replicas per minute and reason; a recipient's messages
// are found newest first with their journeys; the series spans 1 h / 3 h /
// 6 h, and a bad span is refused with its exact message everywhere.
func TestSharedViews(t *testing.T) {
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			c := &clock{t: time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)}
			ss := sc.open(t, c.Now)
			r1, r2 := newSharedEnv(t, ss, c, nil), newSharedEnv(t, ss, c, nil)

			// The feed: each replica's logged warnings and errors.
			for i, name := range []string{"r1", "r2"} {
				ev := admin.NewEventLog(0)
				fw, err := admin.NewFeedWriter(admin.FeedWriterOptions{Store: ss, Replica: name, Every: time.Hour})
				must(t, err)
				ev.Forward(fw.Add)
				log := slog.New(ev)
				c.Add(time.Second)
				log.Warn("SES throttled", "tenant", "alpha", "n", i)
				c.Add(time.Second)
				log.Error("breaker trip", "tenant", "beta", "reason", "test")
				log.Info("not kept")
				fw.Close()
			}
			for _, r := range []*sharedEnv{r1, r2} {
				var feed struct{ Items []admin.FeedItem }
				r.call(t, "GET", "/v1/feed?limit=10", "").json(t, &feed)
				var got []string
				for _, it := range feed.Items {
					got = append(got, it.Replica+" "+it.Kind+" "+it.Tenant)
				}
				want := []string{"r2 breaker.trip beta", "r2 log alpha", "r1 breaker.trip beta", "r1 log alpha"}
				if !slices.Equal(got, want) {
					t.Fatalf("feed %q; want %q", got, want)
				}
			}

			// Refusals per minute, from two replicas' counters.
			for _, n := range []int{3, 2} {
				rc, err := admin.NewRefusalCounter(admin.RefusalCounterOptions{Store: ss, Every: time.Hour, Now: c.Now})
				must(t, err)
				for range n {
					rc.Add("alpha", "rate_limited")
				}
				rc.Add("beta", "frozen")
				rc.Add("", "bad_credentials") // no tenant: not counted
				rc.Close()
			}
			var rf admin.Refusals
			r1.call(t, "GET", "/v1/refusals?span=1h", "").json(t, &rf)
			if rf.Tenants["alpha"]["rate_limited"] != 5 || rf.Tenants["beta"]["frozen"] != 2 || len(rf.Minutes["alpha"]) != 60 ||
				rf.Minutes["alpha"][59] != 5 || rf.Span != "1h" || rf.Since != "all replicas, the last 1h" || len(rf.Tenants) != 2 {
				t.Fatalf("refusals: %+v", rf)
			}
			var rs admin.RefusalSeries
			r2.call(t, "GET", "/v1/tenants/alpha/refusals?span=3h", "").json(t, &rs)
			if len(rs.Points) != 180 || rs.Points[179].Total != 5 || rs.Points[179].Reasons["rate_limited"] != 5 || rs.Reasons["rate_limited"] != 5 ||
				!rs.Points[179].At.Equal(c.Now().Truncate(time.Minute)) {
				t.Fatalf("alpha refusals: %d points, last %+v, %+v", len(rs.Points), rs.Points[len(rs.Points)-1], rs.Reasons)
			}

			// A recipient's messages, indexed when the batch recorded them
			// as accepted, then a bounce of one of them.
			rem, err := guard.NewRemember(guard.RememberOptions{Store: ss, Status: ss, Every: time.Hour})
			must(t, err)
			sink := rem.Sink(&okSink{})
			for i, tn := range []string{"alpha", "beta", "alpha"} {
				env := &gateway.Envelope{ID: fmt.Sprint("gw-", i), Tenant: &gateway.Tenant{ID: tn}, Recipients: []string{"ann@example.com", fmt.Sprint("x", i, "@example.com")}}
				_, err := sink.Send(ctx, env)
				must(t, err)
			}
			rem.Close()
			must(t, ss.RecordMessageEvents(ctx, []store.MessageEvent{{GatewayID: "gw-0", Tenant: "alpha", Type: "bounce", At: c.Now().Add(time.Minute),
				Recipients: []string{"ann@example.com"}, Detail: "Permanent/General"}}, time.Hour))
			var found admin.RecipientSearch
			a := r2.call(t, "GET", "/v1/recipients/Ann@Example.com/messages", "")
			a.json(t, &found)
			var ids []string
			for _, m := range found.Messages {
				ids = append(ids, m.ID+"/"+m.Tenant+"/"+fmt.Sprint(len(m.Events)))
			}
			// Accepted within the same instant: newest first by the
			// order they were indexed.
			if a.status != 200 || found.Address != "Ann@example.com" || len(ids) != 3 || !slices.Contains(ids, "gw-0/alpha/2") {
				t.Fatalf("ann: %d %s", a.status, a.body)
			}
			for _, m := range found.Messages {
				if m.ID == "gw-0" && (m.Events[0].Type != "accepted" || m.Events[1].Type != "bounce" || m.Events[1].Detail != "Permanent/General") {
					t.Fatalf("gw-0 journey: %+v", m.Events)
				}
			}
			r1.call(t, "GET", "/v1/recipients/ann@example.com/messages?tenant=beta", "").json(t, &found)
			if len(found.Messages) != 1 || found.Messages[0].ID != "gw-1" || found.Messages[0].SESMessageID == "" {
				t.Fatalf("ann at beta: %+v", found)
			}
			r1.call(t, "GET", "/v1/recipients/nobody@example.com/messages", "").json(t, &found)
			if len(found.Messages) != 0 {
				t.Fatalf("nobody: %+v", found)
			}

			// Series over several hours: 100 sent 150 minutes ago, and a
			// bounce of that mail.
			then := c.Now().Add(-150 * time.Minute)
			now := c.Now()
			c.Set(then)
			d, err := ss.Admit(ctx, store.AdmitRequest{Tenant: "gamma", Recipients: addrs("g", 50)})
			if err != nil || !d.Admitted {
				t.Fatalf("admit: %+v %v", d, err)
			}
			c.Set(now)
			must(t, r1.g.ProcessEvent(ctx, &feedback.Event{Type: feedback.TypeBounce, Tenant: "gamma", SESMessageID: "m1", MailTime: then, EventTime: then.Add(time.Minute),
				BounceType: feedback.BouncePermanent, BounceSubType: "General", Recipients: []feedback.Recipient{{Address: "g1@example.net"}}}))
			for span, want := range map[string][3]int64{"": {60, 0, 0}, "1h": {60, 0, 0}, "3h": {180, 50, 1}, "6h": {360, 50, 1}} {
				var s struct{ Points []admin.Point }
				r2.call(t, "GET", "/v1/tenants/gamma/series?span="+span, "").json(t, &s)
				var sent, bounces int64
				for _, p := range s.Points {
					sent += p.Sent
					bounces += p.Bounces
				}
				if int64(len(s.Points)) != want[0] || sent != want[1] || bounces != want[2] {
					t.Errorf("span %q: %d points, %d sent, %d bounces; want %v", span, len(s.Points), sent, bounces, want)
				}
				var acct admin.AccountView
				r1.call(t, "GET", "/v1/account?span="+span, "").json(t, &acct)
				if int64(len(acct.Points)) != want[0] {
					t.Errorf("account span %q: %d points", span, len(acct.Points))
				}
			}
			for _, path := range []string{"/v1/account", "/v1/tenants/gamma/series", "/v1/refusals", "/v1/tenants/gamma/refusals"} {
				for _, bad := range []string{"2h", "1H", "60m", "x"} {
					a := r1.call(t, "GET", path+"?span="+bad, "")
					var e struct{ Error struct{ Message string } }
					a.json(t, &e)
					if want := `span: want 1h, 3h or 6h, got "` + bad + `"`; a.status != 400 || e.Error.Message != want {
						t.Errorf("%s?span=%s: %d %q; want 400 %q", path, bad, a.status, e.Error.Message, want)
					}
				}
			}
			for path, want := range map[string]string{
				"/v1/recipients/not-an-address/messages":            "400 invalid",
				"/v1/recipients/ann@example.com/messages?tenant=X!": "400 invalid",
				"/v1/tenants/nobody/refusals":                       "404 not_found",
				"/v1/messages/ann@example.com":                      "400 invalid",
			} {
				if a := r1.call(t, "GET", path, ""); fmt.Sprintf("%d %s", a.status, a.errCode(t)) != want {
					t.Errorf("%s: %d %s; want %s", path, a.status, a.body, want)
				}
			}
		})
	}
}
