package admin

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// The dashboard's fleet-wide views (issue 16), read from the shared store
// (store.DashboardStore, Options.Dashboard):
//
//	GET /v1/recipients/{address}/messages?tenant=   RecipientSearch: the messages to an address, newest first, with their journeys
//	GET /v1/tenants/{id}/refusals?span=             RefusalSeries: refusals per minute by reason, all replicas
//	GET /v1/refusals?span=                          Refusals: per tenant, by reason and per minute, all replicas
//	GET /v1/tenants/{id}/series?span=, GET /v1/account?span=   the span of the per-minute series
//
// span is one of Spans ("1h" when absent); anything else is a 400 with
// spanError's message.

// Spans are the spans the dashboard's charts offer.
var Spans = []string{"1h", "3h", "6h"}

const spanError = `span: want 1h, 3h or 6h`

// span reads the span query parameter (default one hour).
func span(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("span")
	if s == "" {
		return time.Hour, nil
	}
	if !slices.Contains(Spans, s) {
		return 0, badRequest("%s, got %q", spanError, truncate(s, 20))
	}
	d, _ := time.ParseDuration(s)
	return d, nil
}

// spanName is how a span is written: "1h", "3h", "6h".
func spanName(d time.Duration) string { return strings.TrimSuffix(d.String(), "0m0s") }

// SpanSeries is implemented by a Tenants backend that serves series over
// more than the last hour (storeadmin's does, up to store.SeriesSpan).
type SpanSeries interface {
	SeriesSpan(ctx context.Context, id string, span time.Duration) ([]Point, error)
}

// series returns a tenant's points over span: SeriesSpan when the backend
// has it, else the hour of Series.
func (h *Handler) series(ctx context.Context, id string, span time.Duration) ([]Point, error) {
	if ss, ok := h.tenants.(SpanSeries); ok {
		return ss.SeriesSpan(ctx, id, span)
	}
	return h.tenants.Series(ctx, id)
}

// RecipientSearch answers a search by recipient.
type RecipientSearch struct {
	Address  string           `json:"address"`
	Messages []MessageJourney `json:"messages"` // newest first
	// Kept says how much the index keeps.
	Kept string `json:"kept"`
}

func (h *Handler) recipientMessages(r *http.Request) (any, error) {
	ctx := r.Context()
	raw := r.PathValue("address")
	if len(raw) > 254 {
		return nil, badRequest("address: longer than 254 bytes")
	}
	addr, err := gateway.ParseAddress(raw)
	if err != nil || addr == "" {
		return nil, badRequest("address: want an email address, got %q", truncate(raw, 70))
	}
	tenant := r.URL.Query().Get("tenant")
	if tenant != "" && !tenantIDRE.MatchString(tenant) {
		return nil, badRequest("tenant: invalid id %q", truncate(tenant, 70))
	}
	hits, err := h.dash.MessagesTo(ctx, addr)
	if err != nil {
		return nil, err
	}
	out := RecipientSearch{Address: addr, Messages: []MessageJourney{},
		Kept: "the last 20 messages to each address, for the message memory's TTL"}
	for _, m := range hits {
		if tenant != "" && m.Tenant != tenant {
			continue
		}
		evs, err := h.messages.MessageEvents(ctx, m.GatewayID)
		if err != nil {
			return nil, err
		}
		j := journey(m.GatewayID, evs)
		j.Tenant = cmp.Or(j.Tenant, m.Tenant)
		out.Messages = append(out.Messages, j)
	}
	return out, nil
}

// RefusalPoint is one minute of a tenant's refusals, by reason.
type RefusalPoint struct {
	At      time.Time        `json:"at"`
	Total   int64            `json:"total"`
	Reasons map[string]int64 `json:"reasons,omitempty"`
}

// RefusalSeries is a tenant's refusals per minute over a span, counted by
// every replica.
type RefusalSeries struct {
	Tenant  string           `json:"tenant"`
	Span    string           `json:"span"`
	Points  []RefusalPoint   `json:"points"` // oldest first, zeros included
	Reasons map[string]int64 `json:"reasons"`
}

// refusalWindow is the unix minutes of the span ending now.
func (h *Handler) refusalWindow(d time.Duration) (from, to int64, n int) {
	n = int(d / time.Minute)
	to = h.now().UTC().Unix() / 60
	return to - int64(n) + 1, to, n
}

func (h *Handler) tenantRefusals(r *http.Request) (any, error) {
	id, err := tenantID(r, "id")
	if err != nil {
		return nil, err
	}
	d, err := span(r)
	if err != nil {
		return nil, err
	}
	if _, err := h.tenants.Status(r.Context(), id); err != nil {
		return nil, err
	}
	from, to, n := h.refusalWindow(d)
	counts, err := h.dash.Refusals(r.Context(), []string{id}, from, to)
	if err != nil {
		return nil, err
	}
	out := RefusalSeries{Tenant: id, Span: spanName(d), Points: make([]RefusalPoint, n), Reasons: map[string]int64{}}
	for i := range out.Points {
		out.Points[i].At = time.Unix((from+int64(i))*60, 0).UTC()
	}
	for _, c := range counts {
		p := &out.Points[c.Minute-from]
		if p.Reasons == nil {
			p.Reasons = map[string]int64{}
		}
		p.Reasons[c.Reason] += c.N
		p.Total += c.N
		out.Reasons[c.Reason] += c.N
	}
	return out, nil
}

// sharedRefusals is GET /v1/refusals from the shared counters: per tenant
// (at most MaxAccountTenants), by reason, and the per-minute totals.
func (h *Handler) sharedRefusals(r *http.Request, d time.Duration) (any, error) {
	ctx := r.Context()
	ids, err := h.tenantIDs(ctx)
	if err != nil {
		return nil, err
	}
	from, to, n := h.refusalWindow(d)
	counts, err := h.dash.Refusals(ctx, ids, from, to)
	if err != nil {
		return nil, err
	}
	out := Refusals{Since: "all replicas, the last " + spanName(d), Span: spanName(d), Tenants: map[string]map[string]int64{},
		Minutes: map[string][]int64{}}
	for _, c := range counts {
		if out.Tenants[c.Tenant] == nil {
			out.Tenants[c.Tenant] = map[string]int64{}
			out.Minutes[c.Tenant] = make([]int64, n)
		}
		out.Tenants[c.Tenant][c.Reason] += c.N
		out.Minutes[c.Tenant][c.Minute-from] += c.N
	}
	return out, nil
}

// ttlCache holds one value for a short time: the feed's and the
// refusals' reads of whole tables (tokens, tenants, breaker trips), so a
// dashboard refreshing every 10 s in several tabs reads each at most once
// per feedCacheTTL whatever the number of requests.
type ttlCache[T any] struct {
	mu  sync.Mutex
	val T
	at  time.Time
	ok  bool
}

// feedCacheTTL is how long a cached table read is served.
const feedCacheTTL = 5 * time.Second

// get returns the cached value, or load's (cached when it succeeds).
func (c *ttlCache[T]) get(now time.Time, load func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && now.Sub(c.at) < feedCacheTTL && !now.Before(c.at) {
		return c.val, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.val, c.at, c.ok = v, now, true
	return v, nil
}

// caches are the Handler's short-lived table reads.
type caches struct {
	tokenTenant ttlCache[map[string]string]
	tenantIDs   ttlCache[[]string]
	trips       ttlCache[[]FeedItem]
}

// tenantIDs returns the tenants' ids, at most MaxAccountTenants (cached).
func (h *Handler) tenantIDs(ctx context.Context) ([]string, error) {
	return h.cache.tenantIDs.get(h.now(), func() ([]string, error) {
		ts, err := h.tenants.List(ctx)
		if err != nil {
			return nil, err
		}
		ids := make([]string, 0, min(len(ts), MaxAccountTenants))
		for i, t := range ts {
			if i == MaxAccountTenants {
				break
			}
			ids = append(ids, t.ID)
		}
		return ids, nil
	})
}

// sharedRoutes mounts the fleet-wide views when the store keeps them.
func (h *Handler) sharedRoutes(m *http.ServeMux) {
	if h.dash == nil {
		return
	}
	if h.messages != nil {
		m.Handle("GET /v1/recipients/{address}/messages", h.read(h.recipientMessages))
	}
	m.Handle("GET /v1/tenants/{id}/refusals", h.read(h.tenantRefusals))
}

// journey orders a message's events: the acceptance first (SES's event
// times can be a moment before sesgate's clock read the answer, and an
// event can be recorded before it), then the events in time order.
func journey(id string, evs []store.MessageEvent) MessageJourney {
	slices.SortStableFunc(evs, func(a, b store.MessageEvent) int {
		return cmp.Or(boolRank(b.Type == "accepted")-boolRank(a.Type == "accepted"), a.At.Compare(b.At))
	})
	j := MessageJourney{ID: id, Events: evs}
	if j.Events == nil {
		j.Events = []store.MessageEvent{}
	}
	for _, e := range evs {
		j.Tenant = cmp.Or(j.Tenant, e.Tenant)
		j.SESMessageID = cmp.Or(j.SESMessageID, e.SESMessageID)
	}
	return j
}
