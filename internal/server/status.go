package server

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// statusStore is what the apps' status routes read; both stores have it.
type statusStore interface {
	MessageEvents(ctx context.Context, gatewayID string) ([]store.MessageEvent, error)
	CheckSuppressed(ctx context.Context, tenant string, addrs []string) ([]store.Suppression, error)
}

// statusAuth authenticates an app's token (the pipeline: failed attempts
// are throttled per source like the sending routes').
type statusAuth interface {
	Authenticate(ctx context.Context, username, token string, src netip.Addr) (*gateway.Tenant, error)
}

// statusAPI serves the apps' read-only routes on the HTTP listener, with
// the tenant's own token:
//
//	GET /v1/messages/{id}          the message's state and events (sesgate id)
//	GET /v1/suppressions/{address} whether the tenant may mail the address
//
// A token only ever sees its tenant's data: another tenant's message reads
// exactly like an unknown one (404). Nothing here changes state: any other
// method on these paths is 405.
type statusAPI struct {
	auth    statusAuth
	st      statusStore
	log     *slog.Logger
	timeout time.Duration
}

// statusCallTimeout bounds the store read of one status request.
const statusCallTimeout = 2 * time.Second

// mount routes the status paths to the status API, the rest to next.
func (a *statusAPI) mount(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/v1/suppressions/"):
			a.serve(w, r, a.suppression, strings.TrimPrefix(p, "/v1/suppressions/"))
		case strings.HasPrefix(p, "/v1/messages/"):
			a.serve(w, r, a.message, strings.TrimPrefix(p, "/v1/messages/"))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

type statusError struct {
	status      int
	code, msg   string
	wwwAuthHint string
}

func (a *statusAPI) serve(w http.ResponseWriter, r *http.Request, f func(ctx context.Context, tenant, arg string) (any, *statusError), arg string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeStatusError(w, &statusError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "this route is read-only"})
		return
	}
	src := netip.Addr{}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		src, _ = netip.ParseAddr(host)
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	t, err := a.auth.Authenticate(ctx, "", strings.TrimSpace(token), src)
	if err != nil {
		ge := gateway.AsError(err)
		se := &statusError{status: http.StatusUnauthorized, code: ge.Code.String(), msg: ge.Msg, wwwAuthHint: "Bearer"}
		switch ge.Code {
		case gateway.CodeAuthThrottled:
			se.status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(ge.RetryAfter.Seconds()))))
		case gateway.CodeSourceNotAllowed:
			se.status = http.StatusForbidden
		}
		if se.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", se.wwwAuthHint)
		}
		writeStatusError(w, se)
		return
	}
	out, se := f(ctx, t.ID, arg)
	if se != nil {
		writeStatusError(w, se)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

func writeStatusError(w http.ResponseWriter, e *statusError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"code": e.code, "message": e.msg}})
}

var notFound = &statusError{status: http.StatusNotFound, code: "not_found", msg: "no such message"}

// MessageStatus is the answer of GET /v1/messages/{id}.
type MessageStatus struct {
	ID           string               `json:"id"`
	SESMessageID string               `json:"ses_message_id,omitempty"`
	State        string               `json:"state"` // accepted, sent, delivered, bounced, complained
	Events       []store.MessageEvent `json:"events"`
}

// stateOf is the message's state: complained if any recipient complained,
// else bounced if any bounced, else delivered, sent, accepted.
func stateOf(evs []store.MessageEvent) string {
	rank := map[string]int{"accepted": 1, "send": 2, "delivery": 3, "bounce": 4, "complaint": 5}
	names := []string{"", "accepted", "sent", "delivered", "bounced", "complained"}
	best := 1
	for _, ev := range evs {
		best = max(best, rank[ev.Type])
	}
	return names[best]
}

func (a *statusAPI) message(ctx context.Context, tenant, id string) (any, *statusError) {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/\x00") {
		return nil, notFound
	}
	evs, err := a.st.MessageEvents(ctx, id)
	if err != nil {
		a.log.Error("message status not read", "tenant", tenant, "err", err.Error())
		return nil, &statusError{status: http.StatusServiceUnavailable, code: gateway.CodeStoreUnavailable.String(), msg: "status unavailable; retry"}
	}
	mine := slices.DeleteFunc(evs, func(ev store.MessageEvent) bool { return ev.Tenant != tenant })
	if len(mine) == 0 {
		return nil, notFound // unknown, expired or another tenant's: the same answer
	}
	slices.SortStableFunc(mine, func(x, y store.MessageEvent) int { return cmp.Compare(x.At.UnixNano(), y.At.UnixNano()) })
	st := MessageStatus{ID: id, State: stateOf(mine), Events: mine}
	for _, ev := range mine {
		st.SESMessageID = cmp.Or(st.SESMessageID, ev.SESMessageID)
	}
	return st, nil
}

// SuppressionStatus is the answer of GET /v1/suppressions/{address}.
type SuppressionStatus struct {
	Address    string             `json:"address"`
	Suppressed bool               `json:"suppressed"`
	Entries    []SuppressionEntry `json:"entries"`
}

// SuppressionEntry is one list that holds the address.
type SuppressionEntry struct {
	Scope   string     `json:"scope"` // tenant or global
	Reason  string     `json:"reason"`
	Since   time.Time  `json:"since"`
	Expires *time.Time `json:"expires,omitempty"`
}

func (a *statusAPI) suppression(ctx context.Context, tenant, raw string) (any, *statusError) {
	addr, err := gateway.ParseAddress(raw)
	if err != nil {
		return nil, &statusError{status: http.StatusBadRequest, code: "bad_address", msg: "not an email address"}
	}
	sups, err := a.st.CheckSuppressed(ctx, tenant, []string{addr})
	if err != nil {
		a.log.Error("suppression not read", "tenant", tenant, "err", err.Error())
		return nil, &statusError{status: http.StatusServiceUnavailable, code: gateway.CodeStoreUnavailable.String(), msg: "status unavailable; retry"}
	}
	out := SuppressionStatus{Address: strings.ToLower(addr), Entries: []SuppressionEntry{}}
	for _, s := range sups {
		if s.Tenant != "" && s.Tenant != tenant {
			continue
		}
		e := SuppressionEntry{Scope: "tenant", Reason: string(s.Reason), Since: s.Added}
		if s.Tenant == "" {
			e.Scope = "global"
		}
		if !s.Expires.IsZero() {
			x := s.Expires
			e.Expires = &x
		}
		out.Entries = append(out.Entries, e)
	}
	out.Suppressed = len(out.Entries) > 0
	return out, nil
}
