package admin

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
)

func (h *Handler) routes(m *http.ServeMux) {
	t := h.callTimeout
	m.Handle("GET /v1/tokens", h.read(h.listTokens))
	m.Handle("POST /v1/tokens", h.action("token.mint", t, h.mintToken))
	m.Handle("POST /v1/tokens/{keyid}/revoke", h.action("token.revoke", t, h.revokeToken))
	m.Handle("POST /v1/tokens/{keyid}/rotate", h.action("token.rotate", t, h.rotateToken))

	m.Handle("GET /v1/tenants", h.read(h.listTenants))
	m.Handle("GET /v1/tenants/{id}", h.read(h.tenantStatus))
	m.Handle("GET /v1/tenants/{id}/series", h.read(h.tenantSeries))
	m.Handle("POST /v1/tenants/{id}/freeze", h.action("tenant.freeze", t, h.freezeTenant(true)))
	m.Handle("POST /v1/tenants/{id}/unfreeze", h.action("tenant.unfreeze", t, h.freezeTenant(false)))
	m.Handle("GET /v1/freeze", h.read(h.globalFreeze))
	m.Handle("POST /v1/freeze", h.action("global.freeze", t, h.freezeGlobal(true)))
	m.Handle("POST /v1/unfreeze", h.action("global.unfreeze", t, h.freezeGlobal(false)))

	m.Handle("GET /v1/breakers", h.read(h.listBreakers))
	m.Handle("GET /v1/breakers/{id}", h.read(h.breakerStatus))
	m.Handle("POST /v1/breakers/{id}/reset", h.action("breaker.reset", t, h.resetBreaker))
	m.Handle("POST /v1/breakers/{id}/force-open", h.action("breaker.force_open", t, h.forceOpenBreaker))

	m.Handle("GET /v1/suppressions", h.read(h.listSuppressions))
	m.Handle("POST /v1/suppressions", h.action("suppression.add", t, h.addSuppression))
	m.Handle("DELETE /v1/suppressions", h.action("suppression.remove", t, h.removeSuppression))
	m.Handle("POST /v1/suppressions/import", h.action("suppression.import", h.bulkTimeout, h.importSuppressions))
	m.HandleFunc("GET /v1/suppressions/export", h.exportSuppressions)

	m.Handle("GET /v1/audit", h.read(h.listAudit))
	h.webhookRoutes(m)
}

// --- tokens ---

func (h *Handler) listTokens(r *http.Request) (any, error) {
	toks, err := h.tokens.List(r.Context())
	if err != nil {
		return nil, err
	}
	if t := r.URL.Query().Get("tenant"); t != "" {
		toks = slices.DeleteFunc(toks, func(i TokenInfo) bool { return i.Tenant != t })
	}
	if toks == nil {
		toks = []TokenInfo{}
	}
	slices.SortFunc(toks, func(a, b TokenInfo) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), a.Created.Compare(b.Created), cmp.Compare(a.KeyID, b.KeyID))
	})
	return map[string][]TokenInfo{"tokens": toks}, nil
}

// Minted is the answer to a mint or a rotation: the token, shown this once.
type Minted struct {
	Token string `json:"token,omitempty"`
	// SecretAccessKey is an AWS key's secret (with TokenInfo.AccessKeyID).
	SecretAccessKey string `json:"secret_access_key,omitempty"`
	TokenInfo
	// Old is the rotated token, with its grace deadline (rotation only).
	Old *TokenInfo `json:"old,omitempty"`
}

func (m Minted) auditDetail() string { return "new key id " + m.KeyID }

func (h *Handler) mintToken(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	var req struct {
		Tenant string `json:"tenant"`
		Kind   string `json:"kind"` // "token" (default) or "aws"
	}
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	*target = req.Tenant
	if !tenantIDRE.MatchString(req.Tenant) {
		return 0, nil, badRequest("tenant: want a tenant id, got %q", truncate(req.Tenant, 70))
	}
	switch req.Kind {
	case "", "token":
		req.Kind = ""
	case KindAWS:
		if h.awsKeys == nil {
			return 0, nil, badRequest("kind: AWS keys need the server key (--aws-key-secret-file)")
		}
	default:
		return 0, nil, badRequest("kind: want \"token\" or \"aws\", got %q", truncate(req.Kind, 40))
	}
	if _, err := h.tenants.Status(r.Context(), req.Tenant); err != nil {
		return 0, nil, err
	}
	m, err := h.mint(r.Context(), req.Tenant, req.Kind)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, m, nil
}

// mint makes a token (kind "") or an AWS key (KindAWS) for tenant.
func (h *Handler) mint(ctx context.Context, tenant, kind string) (Minted, error) {
	var m Minted
	var rec auth.Record
	if kind == KindAWS {
		if h.awsKeys == nil {
			return Minted{}, fmt.Errorf("%w: AWS keys need the server key (--aws-key-secret-file)", ErrConflict)
		}
		ak := h.awsKeys.New(tenant)
		m.SecretAccessKey, rec = ak.SecretAccessKey, ak.Record
	} else {
		nt := auth.NewToken(tenant)
		m.Token, rec = nt.Token, nt.Record
	}
	now := h.now().UTC()
	if err := h.tokens.Create(ctx, rec, now); err != nil {
		return Minted{}, err
	}
	m.TokenInfo = TokenInfo{KeyID: rec.KeyID, Tenant: tenant, Created: now}
	m.KindOf(rec)
	return m, nil
}

// findToken returns the record of the {keyid} path value.
func (h *Handler) findToken(r *http.Request, target *string) (TokenInfo, error) {
	kid := r.PathValue("keyid")
	*target = truncate(kid, 40)
	if !auth.ValidKeyID(kid) {
		return TokenInfo{}, badRequest("invalid key id %q", truncate(kid, 40))
	}
	toks, err := h.tokens.List(r.Context())
	if err != nil {
		return TokenInfo{}, err
	}
	for _, t := range toks {
		if t.KeyID == kid {
			return t, nil
		}
	}
	return TokenInfo{}, fmt.Errorf("%w: no token with key id %s", ErrNotFound, kid)
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	var req struct{}
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	t, err := h.findToken(r, target)
	if err != nil {
		return 0, nil, err
	}
	if !t.Revoked.IsZero() {
		return 0, nil, fmt.Errorf("%w: token %s was revoked at %s", ErrConflict, t.KeyID, t.Revoked.Format(time.RFC3339))
	}
	now := h.now().UTC()
	if err := h.tokens.Revoke(r.Context(), t.KeyID, now); err != nil {
		return 0, nil, err
	}
	t.Revoked = now
	return http.StatusOK, t, nil
}

func (h *Handler) rotateToken(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	var req struct {
		Grace string `json:"grace"` // Go duration; default 1h
	}
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	grace := defaultGrace
	if req.Grace != "" {
		g, err := time.ParseDuration(req.Grace)
		if err != nil || g < 0 || g > maxGrace {
			return 0, nil, badRequest("grace: want a duration from 0s to %s, got %q", maxGrace, truncate(req.Grace, 40))
		}
		grace = g
	}
	old, err := h.findToken(r, target)
	if err != nil {
		return 0, nil, err
	}
	now := h.now().UTC()
	if !old.Usable(now) {
		return 0, nil, fmt.Errorf("%w: token %s is revoked or expired", ErrConflict, old.KeyID)
	}
	m, err := h.mint(r.Context(), old.Tenant, old.Kind)
	if err != nil {
		return 0, nil, err
	}
	deadline := now.Add(grace)
	if !old.ExpiresAt.IsZero() && old.ExpiresAt.Before(deadline) {
		deadline = old.ExpiresAt // a rotation never extends a deadline
	}
	if err := h.tokens.Expire(r.Context(), old.KeyID, deadline); err != nil {
		// Do not leave a second live token behind that nobody has seen.
		if rerr := h.tokens.Revoke(context.WithoutCancel(r.Context()), m.KeyID, now); rerr != nil {
			h.log.Error("admin rotate: revoking the unseen new token failed", "key_id", m.KeyID, "error", rerr)
		}
		return 0, nil, err
	}
	old.ExpiresAt = deadline
	m.Old = &old
	return http.StatusCreated, m, nil
}

// --- tenants and kill switches ---

func (h *Handler) listTenants(r *http.Request) (any, error) {
	ts, err := h.tenants.List(r.Context())
	if err != nil {
		return nil, err
	}
	g, err := h.tenants.GlobalFreeze(r.Context())
	if err != nil {
		return nil, err
	}
	return map[string]any{"global_freeze": g, "tenants": ts}, nil
}

func (h *Handler) tenantStatus(r *http.Request) (any, error) {
	id, err := tenantID(r, "id")
	if err != nil {
		return nil, err
	}
	return h.tenants.Status(r.Context(), id)
}

func (h *Handler) tenantSeries(r *http.Request) (any, error) {
	id, err := tenantID(r, "id")
	if err != nil {
		return nil, err
	}
	d, err := span(r)
	if err != nil {
		return nil, err
	}
	pts, err := h.series(r.Context(), id, d)
	if err != nil {
		return nil, err
	}
	return map[string]any{"tenant": id, "points": pts}, nil
}

type freezeRequest struct {
	Reason string `json:"reason"`
}

// FreezeResult answers a freeze or unfreeze; Tenant is "" for the global switch.
type FreezeResult struct {
	Tenant string `json:"tenant"`
	Freeze Freeze `json:"freeze"`
}

func (h *Handler) setFrozen(w http.ResponseWriter, r *http.Request, id string, frozen bool) (int, any, error) {
	var req freezeRequest
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	if err := checkReason(req.Reason); err != nil {
		return 0, nil, err
	}
	if !frozen && req.Reason != "" {
		return 0, nil, badRequest("reason: only a freeze takes one")
	}
	f := Freeze{Frozen: frozen, Reason: req.Reason, By: callerOf(r).who, At: h.now().UTC()}
	if err := h.tenants.SetFrozen(r.Context(), id, f); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, FreezeResult{Tenant: id, Freeze: f}, nil
}

func (h *Handler) freezeTenant(frozen bool) actFunc {
	return func(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
		id, err := tenantID(r, "id")
		*target = truncate(id, 70)
		if err != nil {
			return 0, nil, err
		}
		return h.setFrozen(w, r, id, frozen)
	}
}

func (h *Handler) freezeGlobal(frozen bool) actFunc {
	return func(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
		*target = "*"
		return h.setFrozen(w, r, GlobalTenant, frozen)
	}
}

func (h *Handler) globalFreeze(r *http.Request) (any, error) {
	return h.tenants.GlobalFreeze(r.Context())
}

// --- breakers ---

func (h *Handler) listBreakers(r *http.Request) (any, error) {
	ts, err := h.tenants.List(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]BreakerStatus, 0, len(ts))
	for _, t := range ts {
		b, err := h.breaker(r.Context(), t.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return map[string][]BreakerStatus{"breakers": out}, nil
}

// breaker returns the API's view of one tenant's breaker.
func (h *Handler) breaker(ctx context.Context, id string) (BreakerStatus, error) {
	s, err := h.breakers.Status(ctx, id)
	if err != nil {
		return BreakerStatus{}, err
	}
	return BreakerView(s), nil
}

func (h *Handler) breakerStatus(r *http.Request) (any, error) {
	id, err := tenantID(r, "id")
	if err != nil {
		return nil, err
	}
	return h.breaker(r.Context(), id)
}

func (h *Handler) resetBreaker(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	id, err := tenantID(r, "id")
	*target = truncate(id, 70)
	if err != nil {
		return 0, nil, err
	}
	var req struct{}
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	if err := h.breakers.Reset(r.Context(), id); err != nil {
		return 0, nil, err
	}
	b, err := h.breaker(r.Context(), id)
	return http.StatusOK, b, err
}

func (h *Handler) forceOpenBreaker(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	id, err := tenantID(r, "id")
	*target = truncate(id, 70)
	if err != nil {
		return 0, nil, err
	}
	var req freezeRequest
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	if err := checkReason(req.Reason); err != nil {
		return 0, nil, err
	}
	if req.Reason == "" {
		req.Reason = "forced open by " + callerOf(r).who
	}
	if err := h.breakers.ForceOpen(r.Context(), id, req.Reason); err != nil {
		return 0, nil, err
	}
	b, err := h.breaker(r.Context(), id)
	return http.StatusOK, b, err
}

// --- suppressions ---

// listQuery reads tenant (absent: every list; empty: the global list),
// prefix, cursor and limit.
func listQuery(r *http.Request) (SuppressionQuery, error) {
	q := r.URL.Query()
	sq := SuppressionQuery{Tenant: AllLists, Prefix: strings.ToLower(q.Get("prefix")), Cursor: q.Get("cursor"), Limit: DefaultListLimit}
	if q.Has("tenant") {
		sq.Tenant = q.Get("tenant")
		if sq.Tenant != "" && sq.Tenant != AllLists && !tenantIDRE.MatchString(sq.Tenant) {
			return sq, badRequest("invalid tenant id %q", truncate(sq.Tenant, 70))
		}
	}
	if len(sq.Prefix) > gateway.MaxAddressLength || len(sq.Cursor) > 1024 {
		return sq, badRequest("prefix or cursor too long")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return sq, badRequest("limit: want 1 to %d", MaxListLimit)
		}
		sq.Limit = n
	}
	return sq, nil
}

func (h *Handler) listSuppressions(r *http.Request) (any, error) {
	q, err := listQuery(r)
	if err != nil {
		return nil, err
	}
	list, next, err := h.suppressions.List(r.Context(), q)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []Suppression{}
	}
	return map[string]any{"suppressions": list, "next_cursor": next}, nil
}

// normalizeSuppression checks and normalizes one entry; known says
// whether a tenant exists.
func normalizeSuppression(s *Suppression, now time.Time, known func(string) error) error {
	addr, err := gateway.ParseAddress(strings.TrimSpace(s.Address))
	if err != nil {
		return badRequest("address %q: %s", truncate(s.Address, 70), gateway.AsError(err).Msg)
	}
	s.Address = strings.ToLower(addr)
	switch s.Reason {
	case "":
		s.Reason = ReasonManual
	case ReasonManual, ReasonHardBounce, ReasonComplaint:
	default:
		return badRequest("reason: want %s, %s or %s, got %q", ReasonManual, ReasonHardBounce, ReasonComplaint, truncate(s.Reason, 40))
	}
	if s.Tenant != "" {
		if !tenantIDRE.MatchString(s.Tenant) {
			return badRequest("invalid tenant id %q", truncate(s.Tenant, 70))
		}
		if err := known(s.Tenant); err != nil {
			return err
		}
	}
	if s.Added.IsZero() {
		s.Added = now
	}
	s.Added = s.Added.UTC()
	if !s.Expires.IsZero() {
		if !s.Expires.After(s.Added) {
			return badRequest("expires must be after added")
		}
		s.Expires = s.Expires.UTC()
	}
	return nil
}

// tenantChecker returns a memoizing check that a tenant exists.
func (h *Handler) tenantChecker(ctx context.Context) func(string) error {
	seen := map[string]error{}
	return func(id string) error {
		if err, ok := seen[id]; ok {
			return err
		}
		_, err := h.tenants.Status(ctx, id)
		if err != nil && len(seen) < 10000 {
			seen[id] = err
		} else if err == nil {
			seen[id] = nil
		}
		return err
	}
}

func (h *Handler) addSuppression(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	var s Suppression
	if err := h.decode(w, r, &s); err != nil {
		return 0, nil, err
	}
	*target = truncate(s.Tenant+"/"+s.Address, 330)
	if err := normalizeSuppression(&s, h.now().UTC(), h.tenantChecker(r.Context())); err != nil {
		return 0, nil, err
	}
	*target = s.Tenant + "/" + s.Address
	if err := h.suppressions.Add(r.Context(), []Suppression{s}); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s, nil
}

func (h *Handler) removeSuppression(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	q := r.URL.Query()
	tenant, raw := q.Get("tenant"), q.Get("address")
	*target = truncate(tenant+"/"+raw, 330)
	if tenant != "" && !tenantIDRE.MatchString(tenant) {
		return 0, nil, badRequest("invalid tenant id %q", truncate(tenant, 70))
	}
	addr, err := gateway.ParseAddress(raw)
	if err != nil {
		return 0, nil, badRequest("address %q: %s", truncate(raw, 70), gateway.AsError(err).Msg)
	}
	addr = strings.ToLower(addr)
	*target = tenant + "/" + addr
	if err := h.suppressions.Remove(r.Context(), tenant, addr); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"tenant": tenant, "address": addr, "removed": "true"}, nil
}

// --- audit ---

func (h *Handler) listAudit(r *http.Request) (any, error) {
	limit := DefaultListLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxAuditLimit {
			return nil, badRequest("limit: want 1 to %d", MaxAuditLimit)
		}
		limit = n
	}
	es, err := h.audit.List(r.Context(), limit)
	if err != nil {
		return nil, err
	}
	if es == nil {
		es = []AuditEntry{}
	}
	return map[string][]AuditEntry{"entries": es}, nil
}
