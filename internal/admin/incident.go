package admin

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
)

// The incident views of the dashboard (issue 16), read only:
//
//	GET /v1/account?span=  AccountView: the account as SES judges it
//	GET /v1/feed?limit=    {"items":[FeedItem]} newest first: what just happened
//	GET /v1/messages/{id}  MessageJourney by sesgate id or SES MessageId
//
// and the fleet-wide views of shared.go.

// SES's lines for an account (the SES developer guide's reputation
// metrics): at these bounce and complaint rates an account is put under
// review, and at the higher ones sending may be paused.
const (
	SESBounceReview    = 0.05
	SESBouncePause     = 0.10
	SESComplaintReview = 0.001
	SESComplaintPause  = 0.005
)

// Lines are the rates a chart of the account is drawn against. The
// guard's are 0 when no account guard runs.
type Lines struct {
	SESBounceReview    float64 `json:"ses_bounce_review"`
	SESBouncePause     float64 `json:"ses_bounce_pause"`
	SESComplaintReview float64 `json:"ses_complaint_review"`
	SESComplaintPause  float64 `json:"ses_complaint_pause"`
	GuardBounceWarn    float64 `json:"guard_bounce_warn"`
	GuardBounceTrip    float64 `json:"guard_bounce_trip"`
	GuardComplaintWarn float64 `json:"guard_complaint_warn"`
	GuardComplaintTrip float64 `json:"guard_complaint_trip"`
}

// SESQuota is the SES account's sending quota as GetAccount reported it
// (read once when the server started; zero values: unknown).
type SESQuota struct {
	Max24HourSend   float64   `json:"max_24_hour_send"`
	MaxSendRate     float64   `json:"max_send_rate"`
	SentLast24Hours float64   `json:"sent_last_24_hours"`
	At              time.Time `json:"at,omitzero"`
}

// AccountView is the account as SES judges it.
type AccountView struct {
	Lines Lines `json:"lines"`
	// Guard is the account guard's breaker; nil when none runs.
	Guard *BreakerStatus `json:"guard,omitempty"`
	// Points are the minutes of the span (?span=, default the last 60
	// minutes), oldest first, by send minute: the
	// sum of the tenants' series ("tenants", at most MaxAccountTenants):
	// recipients sent from the store's counters, bounces and complaints
	// as the tenants' breakers keep them (a trip or a reset restarts a
	// breaker's window, so the bounces before it drop out). Not the
	// account guard's buckets: it restarts its window on a trip too, and
	// only learns the sent counts of tenants it evaluates.
	Points       []Point `json:"points"`
	PointsSource string  `json:"points_source"`
	// Usage is sesgate's own count of recipients sent this UTC hour and
	// day, summed over the tenants.
	Usage Usage `json:"usage"`
	// SESQuota is nil when the server did not read it from SES.
	SESQuota *SESQuota `json:"ses_quota,omitempty"`
}

// MaxAccountTenants bounds the tenants summed into the account's series
// when no account guard keeps one.
const MaxAccountTenants = 1000

// accountStatuser is the account side of limiter/guard.Guard.
type accountStatuser interface {
	AccountStatus(ctx context.Context) (guard.Status, map[int64]breaker.Bucket, bool, error)
}

func (h *Handler) account(r *http.Request) (any, error) {
	ctx := r.Context()
	d, err := span(r)
	if err != nil {
		return nil, err
	}
	v := AccountView{Lines: Lines{
		SESBounceReview: SESBounceReview, SESBouncePause: SESBouncePause,
		SESComplaintReview: SESComplaintReview, SESComplaintPause: SESComplaintPause,
	}, SESQuota: h.sesQuota}
	ts, err := h.tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		v.Usage.Hour += t.Usage.Hour
		v.Usage.Day += t.Usage.Day
	}
	n := int(d / time.Minute)
	end := h.now().UTC().Truncate(time.Minute)
	start := end.Add(-time.Duration(n-1) * time.Minute)
	v.Points = make([]Point, n)
	for i := range v.Points {
		v.Points[i].At = start.Add(time.Duration(i) * time.Minute)
	}
	if as, ok := h.breakers.(accountStatuser); ok {
		st, _, on, err := as.AccountStatus(ctx)
		if err != nil {
			return nil, err
		}
		if on {
			bv := BreakerView(st)
			v.Guard = &bv
			c := st.Config
			v.Lines.GuardBounceWarn, v.Lines.GuardBounceTrip = c.WarnBounceRate, c.TripBounceRate
			v.Lines.GuardComplaintWarn, v.Lines.GuardComplaintTrip = c.WarnComplaintRate, c.TripComplaintRate
		}
	}
	v.PointsSource = "tenants"
	for i, t := range ts {
		if i == MaxAccountTenants {
			v.PointsSource = fmt.Sprintf("tenants (the first %d)", MaxAccountTenants)
			break
		}
		pts, err := h.series(ctx, t.ID, d)
		if err != nil {
			return nil, err
		}
		for _, p := range pts {
			if j := int(p.At.Sub(start) / time.Minute); j >= 0 && j < n {
				v.Points[j].Sent += p.Sent
				v.Points[j].Bounces += p.Bounces
				v.Points[j].Complaints += p.Complaints
			}
		}
	}
	return v, nil
}

// FeedItem is one thing that happened, for the dashboard's live feed.
type FeedItem struct {
	At time.Time `json:"at"`
	// Kind: an audited action ("tenant.freeze", "breaker.reset", ...),
	// "breaker.trip", "account.trip", or "log" (a warning or error the
	// server logged, from the EventLog).
	Kind   string `json:"kind"`
	Tenant string `json:"tenant,omitempty"`
	Text   string `json:"text"`
	// Level: "error", "warn" or "info".
	Level string `json:"level"`
	// Replica names the replica that logged it (shared feed only).
	Replica string `json:"replica,omitempty"`
}

// Bounds of the feed.
const (
	defaultFeedLimit = 100
	maxFeedLimit     = 500
	// maxFeedTenants bounds the breakers read for their trips.
	maxFeedTenants = 1000
)

func (h *Handler) feed(r *http.Request) (any, error) {
	ctx := r.Context()
	limit := defaultFeedLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxFeedLimit {
			return nil, badRequest("limit: want 1 to %d", maxFeedLimit)
		}
		limit = n
	}
	var items []FeedItem
	audit, err := h.audit.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	tokenTenant, err := h.cache.tokenTenant.get(h.now(), func() (map[string]string, error) {
		toks, err := h.tokens.List(ctx)
		if err != nil {
			return nil, err
		}
		m := make(map[string]string, len(toks))
		for _, t := range toks {
			m[t.KeyID] = t.Tenant
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range audit {
		it := FeedItem{At: e.Time, Kind: e.Action, Level: "info", Tenant: auditTenant(e, tokenTenant)}
		it.Text = e.Action + " " + e.Target + " by " + e.Who
		if e.Detail != "" {
			it.Text += ": " + e.Detail
		}
		if e.Result != ResultOK {
			it.Text += " (refused)"
		} else if strings.Contains(e.Action, "freeze") && !strings.Contains(e.Action, "unfreeze") ||
			e.Action == "breaker.force_open" || e.Action == "token.revoke" {
			it.Level = "warn"
		}
		items = append(items, it)
	}
	shared, err := h.sharedFeed(ctx, limit)
	if err != nil {
		return nil, err
	}
	items = append(items, shared...)
	slices.SortStableFunc(items, func(a, b FeedItem) int { return b.At.Compare(a.At) })
	if len(items) > limit {
		items = items[:limit]
	}
	if items == nil {
		items = []FeedItem{}
	}
	return map[string][]FeedItem{"items": items}, nil
}

// auditTenant is the tenant an audited action was about, if any.
func auditTenant(e AuditEntry, tokenTenant map[string]string) string {
	switch {
	case strings.HasPrefix(e.Action, "token."):
		return tokenTenant[e.Target]
	case strings.HasPrefix(e.Action, "suppression."):
		t, _, _ := strings.Cut(e.Target, "/")
		return t
	case strings.HasPrefix(e.Action, "global."):
		return ""
	}
	if tenantIDRE.MatchString(e.Target) {
		return e.Target
	}
	return ""
}

// Messages is the message status store (both stores implement it): a
// message's events under its sesgate id, and the SES MessageId index.
type Messages interface {
	MessageEvents(ctx context.Context, gatewayID string) ([]store.MessageEvent, error)
	LookupMessage(ctx context.Context, sesMessageID string) (tenant, gatewayID string, found bool, err error)
}

// MessageJourney is a message's life as the store keeps it.
type MessageJourney struct {
	ID           string               `json:"id"` // sesgate's id
	Tenant       string               `json:"tenant"`
	SESMessageID string               `json:"ses_message_id,omitempty"`
	Events       []store.MessageEvent `json:"events"` // the acceptance, then by time
}

var messageIDRE = regexp.MustCompile(`^[A-Za-z0-9._@+=-]{1,200}$`)

func (h *Handler) message(r *http.Request) (any, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	if strings.Contains(id, "@") && !strings.Contains(id, "@email.amazonses.com") {
		if h.dash != nil {
			return nil, badRequest("to search by recipient use GET /v1/recipients/{address}/messages")
		}
		return nil, badRequest("search by recipient is not possible: this store keeps no recipient index")
	}
	if !messageIDRE.MatchString(id) {
		return nil, badRequest("id: want a sesgate id or an SES MessageId, got %q", truncate(id, 70))
	}
	evs, err := h.messages.MessageEvents(ctx, id)
	if err != nil {
		return nil, err
	}
	gid := id
	if len(evs) == 0 {
		_, g, found, err := h.messages.LookupMessage(ctx, id)
		if err != nil {
			return nil, err
		}
		if found {
			gid = g
			if evs, err = h.messages.MessageEvents(ctx, g); err != nil {
				return nil, err
			}
		}
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("%w: no message %s (kept for the message memory's TTL)", ErrNotFound, truncate(id, 70))
	}
	return journey(gid, evs), nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// incidentRoutes mounts the incident views; /v1/messages/{id} only with
// a message store.
func (h *Handler) incidentRoutes(m *http.ServeMux) {
	m.Handle("GET /v1/account", h.read(h.account))
	m.Handle("GET /v1/feed", h.read(h.feed))
	m.Handle("GET /v1/refusals", h.read(h.refusals))
	if h.messages != nil {
		m.Handle("GET /v1/messages/{id}", h.read(h.message))
	}
	h.sharedRoutes(m)
}

// RefusedMetric is the counter GET /v1/refusals reads: messages refused
// by tenant and reason (internal/server's metrics).
const RefusedMetric = "sesgate_messages_refused_total"

// Refusals are the messages refused by tenant and reason (the error
// code): with the shared store (Options.Dashboard), counted by every
// replica over the span (?span=), with each tenant's per-minute totals
// (Minutes, oldest first); without it, this process's own metrics since
// it started (no Span, no Minutes).
type Refusals struct {
	Since   string                      `json:"scope"`
	Span    string                      `json:"span,omitempty"`
	Tenants map[string]map[string]int64 `json:"tenants"`
	Minutes map[string][]int64          `json:"minutes,omitempty"`
}

func (h *Handler) refusals(r *http.Request) (any, error) {
	d, err := span(r)
	if err != nil {
		return nil, err
	}
	if h.dash != nil {
		return h.sharedRefusals(r, d)
	}
	out := Refusals{Since: "this replica, since it started", Tenants: map[string]map[string]int64{}}
	if h.gatherer == nil {
		return out, nil
	}
	mfs, err := h.gatherer.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		if mf.GetName() != RefusedMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var tenant, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "tenant":
					tenant = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			if tenant == "" || m.GetCounter() == nil {
				continue
			}
			if out.Tenants[tenant] == nil {
				out.Tenants[tenant] = map[string]int64{}
			}
			out.Tenants[tenant][reason] += int64(m.GetCounter().GetValue())
		}
	}
	return out, nil
}
