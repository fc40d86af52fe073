// Package memadmin is an in-memory backend for the admin API: tokens,
// tenants with kill switches and traffic series, breakers, suppressions and
// the audit log, all in one process. It serves the tests and a laptop until
// the store adapters exist; nothing survives a restart.
//
// Invariants: every method is safe for concurrent use; every table is
// bounded (MaxTokens, MaxSuppressions, MaxAudit, a day of minutes per
// tenant); a failing call changes nothing.
package memadmin

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
)

// Bounds of the tables.
const (
	MaxTokens       = 100000
	MaxSuppressions = 1000000
	MaxAudit        = 10000
	keepMinutes     = 24 * 60
)

// Tenant is a configured tenant.
type Tenant struct {
	ID     string
	Limits gateway.Limits
}

// Options configure a Backend.
type Options struct {
	Tenants []Tenant
	Now     func() time.Time
}

// Backend implements admin.Tokens, admin.Tenants, admin.Breakers,
// admin.Suppressions and admin.Audit (through its methods of those names:
// use the adapters Tokens(), Tenants() and so on).
type Backend struct {
	now func() time.Time

	mu      sync.Mutex
	order   []string // tenant ids, sorted
	tenants map[string]*tenant
	global  admin.Freeze
	tokens  map[string]*token
	supp    map[suppKey]admin.Suppression
	audit   []admin.AuditEntry // oldest first, at most MaxAudit
}

type tenant struct {
	limits  gateway.Limits
	freeze  admin.Freeze
	minutes map[int64]*minute // unix minute -> counts
	breaker admin.BreakerStatus
}

type minute struct {
	sent, bounces, complaints, firstContacts int64
}

type token struct {
	info admin.TokenInfo
	hash auth.Hash
}

type suppKey struct{ tenant, address string }

var (
	_ admin.Tokens       = tokensView{}
	_ admin.Tenants      = tenantsView{}
	_ admin.Breakers     = breakersView{}
	_ admin.Suppressions = suppressionsView{}
	_ admin.Audit        = auditView{}
)

// New builds a Backend with the given tenants.
func New(opts Options) *Backend {
	b := &Backend{now: opts.Now, tenants: map[string]*tenant{}, tokens: map[string]*token{}, supp: map[suppKey]admin.Suppression{}}
	if b.now == nil {
		b.now = time.Now
	}
	for _, t := range opts.Tenants {
		b.tenants[t.ID] = &tenant{limits: t.Limits, minutes: map[int64]*minute{},
			breaker: admin.BreakerStatus{Tenant: t.ID, State: admin.BreakerClosed}}
		b.order = append(b.order, t.ID)
	}
	slices.Sort(b.order)
	return b
}

// Options for admin.New: every backend of the API.
func (b *Backend) Options(o admin.Options) admin.Options {
	o.Tokens, o.Tenants, o.Breakers, o.Suppressions, o.Audit = b.Tokens(), b.Tenants(), b.Breakers(), b.Suppressions(), b.Audit()
	return o
}

// The views: each is one admin interface over the same Backend.
type (
	tokensView       struct{ *Backend }
	tenantsView      struct{ *Backend }
	breakersView     struct{ *Backend }
	suppressionsView struct{ *Backend }
	auditView        struct{ *Backend }
)

// Tokens returns the admin.Tokens view.
func (b *Backend) Tokens() admin.Tokens { return tokensView{b} }

// Tenants returns the admin.Tenants view.
func (b *Backend) Tenants() admin.Tenants { return tenantsView{b} }

// Breakers returns the admin.Breakers view.
func (b *Backend) Breakers() admin.Breakers { return breakersView{b} }

// Suppressions returns the admin.Suppressions view.
func (b *Backend) Suppressions() admin.Suppressions { return suppressionsView{b} }

// Audit returns the admin.Audit view.
func (b *Backend) Audit() admin.Audit { return auditView{b} }

func notFound(what, id string) error { return fmt.Errorf("%w: %s %q", admin.ErrNotFound, what, id) }

// --- tokens ---

func (v tokensView) List(context.Context) ([]admin.TokenInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]admin.TokenInfo, 0, len(v.tokens))
	for _, t := range v.tokens {
		out = append(out, t.info)
	}
	return out, nil
}

func (v tokensView) Create(_ context.Context, rec auth.Record, created time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.tenants[rec.Tenant]; !ok {
		return notFound("tenant", rec.Tenant)
	}
	if _, ok := v.tokens[rec.KeyID]; ok {
		return fmt.Errorf("%w: key id %s exists", admin.ErrConflict, rec.KeyID)
	}
	if len(v.tokens) >= MaxTokens {
		return fmt.Errorf("%w: token table full (%d)", admin.ErrConflict, MaxTokens)
	}
	v.tokens[rec.KeyID] = &token{info: admin.TokenInfo{KeyID: rec.KeyID, Tenant: rec.Tenant, Created: created}, hash: rec.Hash}
	return nil
}

func (v tokensView) Revoke(_ context.Context, keyID string, at time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tokens[keyID]
	if !ok {
		return notFound("token", keyID)
	}
	t.info.Revoked = at
	return nil
}

func (v tokensView) Expire(_ context.Context, keyID string, at time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tokens[keyID]
	if !ok {
		return notFound("token", keyID)
	}
	t.info.ExpiresAt = at
	return nil
}

// Authenticate returns the tenant of tok when it is a usable token, and
// marks it used: what the gateway's authenticator would do with the store.
func (b *Backend) Authenticate(tok string) (string, bool) {
	kid, ok := auth.KeyID(tok)
	if !ok {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tokens[kid]
	now := b.now()
	if !ok || !t.hash.Matches(tok) || !t.info.Usable(now) {
		return "", false
	}
	t.info.LastUsed = now.UTC()
	return t.info.Tenant, true
}

// --- tenants ---

// Frozen reports whether tenant id may not send now (its own switch or the global one).
func (b *Backend) Frozen(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[id]
	return b.global.Frozen || (ok && t.freeze.Frozen)
}

// Record adds traffic to tenant id's minute at: what the gateway and the
// feedback path would count. firstContacts counts toward the budget.
func (b *Backend) Record(id string, at time.Time, sent, bounces, complaints, firstContacts int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[id]
	if !ok {
		return notFound("tenant", id)
	}
	m := at.Unix() / 60
	p := t.minutes[m]
	if p == nil {
		p = &minute{}
		t.minutes[m] = p
	}
	p.sent += sent
	p.bounces += bounces
	p.complaints += complaints
	p.firstContacts += firstContacts
	cut := b.now().Unix()/60 - keepMinutes
	for k := range t.minutes {
		if k < cut {
			delete(t.minutes, k)
		}
	}
	return nil
}

// Trip opens tenant id's breaker as the feedback path would.
func (b *Backend) Trip(id, reason string, until time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[id]
	if !ok {
		return notFound("tenant", id)
	}
	t.breaker.State, t.breaker.Reason, t.breaker.OpenUntil = admin.BreakerOpen, reason, until
	t.breaker.Trips = append([]admin.Trip{{At: b.now().UTC(), Reason: reason}}, t.breaker.Trips...)
	if len(t.breaker.Trips) > 20 {
		t.breaker.Trips = t.breaker.Trips[:20]
	}
	return nil
}

func (b *Backend) statusLocked(id string, t *tenant) admin.TenantStatus {
	now := b.now().UTC()
	nowMin := now.Unix() / 60
	hourStart := now.Truncate(time.Hour).Unix() / 60
	dayStart := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).Unix() / 60
	var u admin.Usage
	var fcHour, fcDay int64
	var r minute
	for k, m := range t.minutes {
		if k > nowMin {
			continue
		}
		if k >= hourStart {
			u.Hour += m.sent
			fcHour += m.firstContacts
		}
		if k >= dayStart {
			u.Day += m.sent
			fcDay += m.firstContacts
		}
		if k > nowMin-60 {
			r.sent += m.sent
			r.bounces += m.bounces
			r.complaints += m.complaints
		}
	}
	left := func(limit, used int64) int64 {
		if limit <= 0 {
			return -1
		}
		return max(0, limit-used)
	}
	u.FirstContactLeftHour = left(t.limits.FirstContactPerHour, fcHour)
	u.FirstContactLeftDay = left(t.limits.FirstContactPerDay, fcDay)
	l := t.limits
	return admin.TenantStatus{
		ID: id,
		Limits: admin.Limits{
			Rate: l.Rate, Burst: l.Burst, RatePerRecipient: l.RatePerRecipient,
			MaxRecipients: l.MaxRecipients, MaxMessageBytes: l.MaxMessageBytes,
			PerHour: l.PerHour, PerDay: l.PerDay,
			FirstContactPerHour: l.FirstContactPerHour, FirstContactPerDay: l.FirstContactPerDay,
			PerDomainRate: l.PerDomainRate, Shadow: slices.Clone(l.Shadow),
		},
		Usage:   u,
		Rates:   rates(r),
		Freeze:  t.freeze,
		Breaker: t.breaker.State,
	}
}

func rates(m minute) admin.Rates {
	r := admin.Rates{Window: "1h", SentPerMinute: float64(m.sent) / 60}
	if m.sent > 0 {
		r.BounceRate = float64(m.bounces) / float64(m.sent)
		r.ComplaintRate = float64(m.complaints) / float64(m.sent)
	}
	return r
}

func (v tenantsView) List(context.Context) ([]admin.TenantStatus, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]admin.TenantStatus, 0, len(v.order))
	for _, id := range v.order {
		out = append(out, v.statusLocked(id, v.tenants[id]))
	}
	return out, nil
}

func (v tenantsView) Status(_ context.Context, id string) (admin.TenantStatus, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tenants[id]
	if !ok {
		return admin.TenantStatus{}, notFound("tenant", id)
	}
	return v.statusLocked(id, t), nil
}

func (v tenantsView) Series(_ context.Context, id string) ([]admin.Point, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tenants[id]
	if !ok {
		return nil, notFound("tenant", id)
	}
	end := v.now().Unix() / 60
	out := make([]admin.Point, 0, 60)
	for k := end - 59; k <= end; k++ {
		p := admin.Point{At: time.Unix(k*60, 0).UTC()}
		if m := t.minutes[k]; m != nil {
			p.Sent, p.Bounces, p.Complaints = m.sent, m.bounces, m.complaints
		}
		out = append(out, p)
	}
	return out, nil
}

func (v tenantsView) SetFrozen(_ context.Context, id string, f admin.Freeze) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !f.Frozen {
		f = admin.Freeze{}
	}
	if id == admin.GlobalTenant {
		v.global = f
		return nil
	}
	t, ok := v.tenants[id]
	if !ok {
		return notFound("tenant", id)
	}
	t.freeze = f
	return nil
}

func (v tenantsView) GlobalFreeze(context.Context) (admin.Freeze, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.global, nil
}

// --- breakers ---

func (v breakersView) Status(_ context.Context, id string) (admin.BreakerStatus, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tenants[id]
	if !ok {
		return admin.BreakerStatus{}, notFound("tenant", id)
	}
	s := t.breaker
	s.Trips = slices.Clone(s.Trips)
	if s.Trips == nil {
		s.Trips = []admin.Trip{}
	}
	s.Rates = v.statusLocked(id, t).Rates
	s.Windows = map[string]string{"window": "1h"}
	return s, nil
}

func (v breakersView) Reset(_ context.Context, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tenants[id]
	if !ok {
		return notFound("tenant", id)
	}
	t.breaker.State, t.breaker.Reason, t.breaker.OpenUntil, t.breaker.Warning = admin.BreakerClosed, "", time.Time{}, false
	return nil
}

func (v breakersView) ForceOpen(_ context.Context, id, reason string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tenants[id]
	if !ok {
		return notFound("tenant", id)
	}
	t.breaker.State, t.breaker.Reason, t.breaker.OpenUntil = admin.BreakerForcedOpen, reason, time.Time{}
	t.breaker.Trips = append([]admin.Trip{{At: v.now().UTC(), Reason: reason}}, t.breaker.Trips...)
	if len(t.breaker.Trips) > 20 {
		t.breaker.Trips = t.breaker.Trips[:20]
	}
	return nil
}

// --- suppressions ---

func (v suppressionsView) Add(_ context.Context, list []admin.Suppression) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	fresh := 0
	for _, s := range list {
		if s.Tenant != "" {
			if _, ok := v.tenants[s.Tenant]; !ok {
				return notFound("tenant", s.Tenant)
			}
		}
		if _, ok := v.supp[suppKey{s.Tenant, s.Address}]; !ok {
			fresh++
		}
	}
	if len(v.supp)+fresh > MaxSuppressions {
		return fmt.Errorf("%w: suppression list full (%d)", admin.ErrConflict, MaxSuppressions)
	}
	for _, s := range list {
		v.supp[suppKey{s.Tenant, s.Address}] = s
	}
	return nil
}

func (v suppressionsView) Remove(_ context.Context, tenant, address string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := suppKey{tenant, address}
	if _, ok := v.supp[k]; !ok {
		return fmt.Errorf("%w: %s is not on the %s list", admin.ErrNotFound, address, listName(tenant))
	}
	delete(v.supp, k)
	return nil
}

func listName(tenant string) string {
	if tenant == "" {
		return "global"
	}
	return tenant + "'s"
}

// The cursor is base64url("tenant\x00address") of the last entry returned.
func (v suppressionsView) List(_ context.Context, q admin.SuppressionQuery) ([]admin.Suppression, string, error) {
	after := ""
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%w: bad cursor", admin.ErrInvalid)
		}
		after = string(b)
	}
	v.mu.Lock()
	var all []admin.Suppression
	for k, s := range v.supp {
		if (q.Tenant == admin.AllLists || k.tenant == q.Tenant) && strings.HasPrefix(k.address, q.Prefix) &&
			(after == "" || k.tenant+"\x00"+k.address > after) {
			all = append(all, s)
		}
	}
	v.mu.Unlock()
	slices.SortFunc(all, func(a, b admin.Suppression) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Address, b.Address))
	})
	if q.Limit <= 0 || len(all) <= q.Limit {
		return all, "", nil
	}
	last := all[q.Limit-1]
	return all[:q.Limit], base64.RawURLEncoding.EncodeToString([]byte(last.Tenant + "\x00" + last.Address)), nil
}

// --- audit ---

func (v auditView) Record(_ context.Context, e admin.AuditEntry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.audit) >= MaxAudit {
		v.audit = slices.Delete(v.audit, 0, len(v.audit)-MaxAudit+1)
	}
	v.audit = append(v.audit, e)
	return nil
}

func (v auditView) List(_ context.Context, limit int) ([]admin.AuditEntry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := min(limit, len(v.audit))
	out := make([]admin.AuditEntry, 0, n)
	for i := len(v.audit) - 1; i >= len(v.audit)-n; i-- {
		out = append(out, v.audit[i])
	}
	return out, nil
}
