// Package storeadmin backs the admin API with the gateway's shared store
// (store/redisstore or store/boltstore): sending tokens minted through the
// API (kept hashed), kill switches with who and why, tenant status from the
// admission counters, suppressions and the audit log. It also keeps the
// process's view of those in step with the other replicas (Watch).
//
// Invariants:
//   - A token is never stored, only its key id and SHA-256; tokens of the
//     policy file are listed and may be revoked or rotated here (the
//     revocation is kept in the store), but not created.
//   - Every change (token, freeze) bumps the store's change generation and
//     publishes it; Watch reacts to the publication and polls the
//     generation every PollEvery (default 1 s), so every replica applies a
//     change within about a second even when a publication is lost.
//   - A failed call changes nothing that was not already written; an
//     unknown tenant is ErrNotFound before any write.
//   - The audit log keeps the newest AuditKeep entries (default 10000).
//   - Tenants of the API (tenants.go) are stored as their entries and
//     decoded with the policy file's decoder against the file's plans; the
//     served table is the file's tenants plus the API's, the file winning
//     an id both define (the API tenant is shadowed: listed, logged, not
//     served). A file tenant cannot be created, changed or deleted here.
//     Deleting an API tenant revokes its tokens.
//   - Each process applies only what changed (ApplyTo): the tenants and
//     token records changed since its last versions (store.TenantStore,
//     store.TokenLog), patched into the token table; the table is rebuilt
//     whole after a reload and after the token cache's whole read (at
//     start and every 5 minutes).
package storeadmin

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store"
)

// Store is what the backend needs of a store: both stores implement it.
type Store interface {
	store.Store
	store.Ops
	store.TenantStore
	store.TokenLog
}

// Policy is the part of the running policy the backend reads: the tenants
// and the policy file's tokens. It is swapped whole on a reload.
type Policy struct {
	Tenants []*gateway.Tenant
	Entries []auth.Entry
	// File is the policy file (nil: none): its plans apply to the API
	// tenants (tenants.go); FilePath names it in messages.
	File     *config.Policy
	FilePath string

	byID      map[string]*gateway.Tenant // set by SetPolicy
	sortedIDs []string
	entryOf   map[string]auth.Entry // key id -> Entries' entry
}

// Options configure a Backend. Store is required.
type Options struct {
	Store Store
	// Breakers, when set, gives the tenant status its rates (over the
	// breaker's window, with bounce and complaint rates).
	Breakers  admin.Breakers
	Logger    *slog.Logger
	Now       func() time.Time
	AuditKeep int           // default store.DefaultAuditKeep
	PollEvery time.Duration // Watch's poll of the change generation; default 1 s
	// CallTimeout bounds Watch's store calls (default 2 s).
	CallTimeout time.Duration
}

// Backend implements admin.Tokens, admin.Tenants, admin.Suppressions and
// admin.Audit on a store (through the views Tokens(), Tenants() and so on).
type Backend struct {
	st      Store
	log     *slog.Logger
	now     func() time.Time
	kick    chan struct{} // this process changed something: Watch applies it
	keep    int
	poll    time.Duration
	timeout time.Duration
	policy  atomic.Pointer[Policy]
	brk     admin.Breakers
	ts      store.TenantStore
	api     apiTenants
	toks    tokenCache   // the authenticator's view of the store's tokens
	applied applied      // ApplyTo's state (apply.go)
	decoded atomic.Int64 // API tenant entries decoded (tests count them)
}

// New builds a Backend serving policy p.
func New(opts Options, p *Policy) (*Backend, error) {
	if opts.Store == nil {
		return nil, errors.New("storeadmin: Store is required")
	}
	b := &Backend{st: opts.Store, ts: opts.Store, api: apiTenants{byID: map[string]*apiTenant{}, pending: map[string]bool{}}, log: opts.Logger, now: opts.Now, brk: opts.Breakers, kick: make(chan struct{}, 1), keep: opts.AuditKeep, poll: opts.PollEvery, timeout: opts.CallTimeout}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.keep <= 0 {
		b.keep = store.DefaultAuditKeep
	}
	if b.poll <= 0 {
		b.poll = time.Second
	}
	if b.timeout <= 0 {
		b.timeout = 2 * time.Second
	}
	b.SetPolicy(p)
	return b, nil
}

// SetPolicy swaps the policy (a reload): the file's tenants, and the API
// tenants whose plan changed are decoded again. An API tenant whose id the
// file now uses is shadowed (the file wins) and logged.
func (b *Backend) SetPolicy(p *Policy) {
	np := *p
	np.byID = make(map[string]*gateway.Tenant, len(p.Tenants))
	np.sortedIDs = make([]string, 0, len(p.Tenants))
	for _, t := range p.Tenants {
		np.byID[t.ID] = t
		np.sortedIDs = append(np.sortedIDs, t.ID)
	}
	slices.Sort(np.sortedIDs)
	np.entryOf = make(map[string]auth.Entry, len(p.Entries))
	for _, e := range p.Entries {
		np.entryOf[e.Record.KeyID] = e
	}
	old := b.policy.Swap(&np)
	if old == nil {
		return
	}
	b.replan(old.File, np.File)
	b.api.mu.RLock()
	for id := range b.api.byID {
		if np.byID[id] != nil {
			b.log.Warn("API tenant shadowed: the policy file defines the same id and wins", "tenant", id, "file", np.FilePath)
		}
	}
	b.api.mu.RUnlock()
}

// Tokens returns the admin.Tokens view.
func (b *Backend) Tokens() admin.Tokens { return tokensView{b} }

// Tenants returns the admin.Tenants view.
func (b *Backend) Tenants() admin.Tenants { return tenantsView{b} }

// Suppressions returns the admin.Suppressions view.
func (b *Backend) Suppressions() admin.Suppressions { return suppressionsView{b} }

// Audit returns the admin.Audit view.
func (b *Backend) Audit() admin.Audit { return auditView{b} }

// tenant returns the served tenant id: the file's, else the API's.
func (b *Backend) tenant(id string) *gateway.Tenant {
	if t := b.fileTenant(id); t != nil {
		return t
	}
	if a, ok := b.apiTenant(id); ok {
		return a.gt
	}
	return nil
}

func (b *Backend) fileTenant(id string) *gateway.Tenant { return b.policy.Load().byID[id] }

// bump announces a change to every replica and applies it here.
func (b *Backend) bump(ctx context.Context) error {
	err := b.st.Bump(ctx)
	b.poke()
	return err
}

// Refresh makes Watch apply the state again soon (after a reload, or a
// failed apply), and keep trying every PollEvery until it succeeds.
func (b *Backend) Refresh() { b.poke() }

func (b *Backend) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// --- tokens ---

type tokensView struct{ *Backend }

// Entries returns the token table of the authenticator: the policy file's
// tokens and the store's, without revoked ones, with rotation deadlines.
// ApplyTo keeps a table in step with it, patching what changed.
func (b *Backend) Entries(ctx context.Context) ([]auth.Entry, error) {
	if err := b.SyncTenants(ctx); err != nil {
		return nil, err
	}
	recs, err := b.tokenRecords(ctx)
	if err != nil {
		return nil, err
	}
	return b.entriesLocked(b.policy.Load(), recs), nil
}

// entriesLocked builds the whole table of policy p from the token records.
func (b *Backend) entriesLocked(p *Policy, recs []store.TokenRecord) []auth.Entry {
	byID := make(map[string]store.TokenRecord, len(recs))
	for _, r := range recs {
		byID[r.KeyID] = r
	}
	out := make([]auth.Entry, 0, len(p.Entries)+len(recs))
	for _, e := range p.Entries {
		if e, ok := b.entryFor(p, e.Record.KeyID, byID); ok {
			out = append(out, e)
		}
	}
	for _, r := range recs {
		if _, inPolicy := p.entryOf[r.KeyID]; inPolicy {
			continue
		}
		if e, ok := b.entryFor(p, r.KeyID, byID); ok {
			out = append(out, e)
		}
	}
	return out
}

func (v tokensView) List(ctx context.Context) ([]admin.TokenInfo, error) {
	recs, err := v.st.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]store.TokenRecord, len(recs))
	for _, r := range recs {
		byID[r.KeyID] = r
	}
	var out []admin.TokenInfo
	for _, e := range v.policy.Load().Entries {
		r := byID[e.Record.KeyID]
		ti := admin.TokenInfo{KeyID: e.Record.KeyID, Tenant: e.Tenant.ID, LastUsed: r.LastUsed, Revoked: r.Revoked, ExpiresAt: r.Expires}
		ti.KindOf(e.Record)
		out = append(out, ti)
		delete(byID, e.Record.KeyID)
	}
	for _, r := range recs {
		if _, left := byID[r.KeyID]; !left || r.SHA256 == "" {
			continue // a policy token's record, or a revocation of a token no longer in the policy
		}
		ti := admin.TokenInfo{KeyID: r.KeyID, Tenant: r.Tenant, Created: r.Created, LastUsed: r.LastUsed, Revoked: r.Revoked, ExpiresAt: r.Expires}
		if h, err := auth.ParseHash(r.SHA256); err == nil {
			ti.KindOf(auth.Record{KeyID: r.KeyID, Hash: h})
		}
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b admin.TokenInfo) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.KeyID, b.KeyID))
	})
	return out, nil
}

func (v tokensView) Create(ctx context.Context, rec auth.Record, created time.Time) error {
	if v.tenant(rec.Tenant) == nil {
		return fmt.Errorf("%w: tenant %q", admin.ErrNotFound, rec.Tenant)
	}
	for _, e := range v.policy.Load().Entries {
		if e.Record.KeyID == rec.KeyID {
			return fmt.Errorf("%w: key id %s exists", admin.ErrConflict, rec.KeyID)
		}
	}
	err := v.st.CreateToken(ctx, store.TokenRecord{KeyID: rec.KeyID, Tenant: rec.Tenant, SHA256: rec.Hash.String(), Created: created.UTC()})
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w: key id %s exists", admin.ErrConflict, rec.KeyID)
	}
	if err != nil {
		return err
	}
	return v.bump(ctx)
}

func (v tokensView) known(ctx context.Context, keyID string) error {
	list, err := v.List(ctx)
	if err != nil {
		return err
	}
	for _, t := range list {
		if t.KeyID == keyID {
			return nil
		}
	}
	return fmt.Errorf("%w: no token with key id %s", admin.ErrNotFound, keyID)
}

func (v tokensView) Revoke(ctx context.Context, keyID string, at time.Time) error {
	return v.set(ctx, keyID, at, v.st.RevokeToken)
}

func (v tokensView) Expire(ctx context.Context, keyID string, at time.Time) error {
	return v.set(ctx, keyID, at, v.st.ExpireToken)
}

// set writes a time of a known token (write is the store's RevokeToken or
// ExpireToken) and bumps the change counter the replicas watch.
func (v tokensView) set(ctx context.Context, keyID string, at time.Time, write func(context.Context, string, time.Time) error) error {
	if err := v.known(ctx, keyID); err != nil {
		return err
	}
	if err := write(ctx, keyID, at.UTC()); err != nil {
		return err
	}
	return v.bump(ctx)
}

// --- tenants ---

type tenantsView struct{ *Backend }

func (v tenantsView) List(ctx context.Context) ([]admin.TenantStatus, error) {
	ts := slices.Clone(v.policy.Load().Tenants)
	slices.SortFunc(ts, func(a, b *gateway.Tenant) int { return strings.Compare(a.ID, b.ID) })
	infos, err := v.st.FreezeInfos(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]admin.TenantStatus, 0, len(ts))
	for _, t := range ts {
		s, err := v.status(ctx, t, infos)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (v tenantsView) Status(ctx context.Context, id string) (admin.TenantStatus, error) {
	t := v.tenant(id)
	if t == nil {
		return admin.TenantStatus{}, fmt.Errorf("%w: tenant %q", admin.ErrNotFound, id)
	}
	infos, err := v.st.FreezeInfos(ctx)
	if err != nil {
		return admin.TenantStatus{}, err
	}
	return v.status(ctx, t, infos)
}

func (v tenantsView) status(ctx context.Context, t *gateway.Tenant, infos map[string]store.FreezeInfo) (admin.TenantStatus, error) {
	u, err := v.st.Usage(ctx, t.ID)
	if err != nil {
		return admin.TenantStatus{}, err
	}
	now := v.now()
	sent, err := v.st.Sent(ctx, t.ID, now.Add(-59*time.Minute), now)
	if err != nil {
		return admin.TenantStatus{}, err
	}
	frozen, err := v.st.Frozen(ctx, t.ID)
	if err != nil {
		return admin.TenantStatus{}, err
	}
	brk, err := v.st.GetBreaker(ctx, t.ID)
	if err != nil {
		return admin.TenantStatus{}, err
	}
	l := t.Limits
	left := func(limit, used int64) int64 {
		if limit <= 0 {
			return -1
		}
		return max(0, limit-used)
	}
	st := admin.TenantStatus{
		ID: t.ID,
		Limits: admin.Limits{
			Rate: l.Rate, Burst: l.Burst, RatePerRecipient: l.RatePerRecipient,
			MaxRecipients: l.MaxRecipients, MaxMessageBytes: l.MaxMessageBytes,
			PerHour: l.PerHour, PerDay: l.PerDay,
			FirstContactPerHour: l.FirstContactPerHour, FirstContactPerDay: l.FirstContactPerDay,
			PerDomainRate: l.PerDomainRate, Shadow: slices.Clone(l.Shadow),
		},
		Usage: admin.Usage{
			Hour: u.Hour, Day: u.Day,
			FirstContactLeftHour: left(l.FirstContactPerHour, u.FirstContactHour),
			FirstContactLeftDay:  left(l.FirstContactPerDay, u.FirstContactDay),
		},
		Rates:   admin.Rates{Window: "1h", SentPerMinute: float64(sent) / 60},
		Breaker: cmp.Or(brk.State, store.Closed),
	}
	if v.brk != nil {
		// The breaker's window and rates when it answers; else the last
		// hour's send rate without bounce and complaint rates.
		if bs, err := v.brk.Status(ctx, t.ID); err == nil {
			st.Rates = admin.BreakerView(bs).Rates
		}
	}
	if st.Window, err = v.window(ctx, t); err != nil {
		return admin.TenantStatus{}, err
	}
	if frozen {
		fi := infos[t.ID]
		st.Freeze = admin.Freeze{Frozen: true, Reason: fi.Reason, By: fi.By, At: fi.At}
	}
	return st, nil
}

func (v tenantsView) Series(ctx context.Context, id string) ([]admin.Point, error) {
	return v.SeriesSpan(ctx, id, time.Hour)
}

// SeriesSpan returns one point per minute over span (at most
// store.SeriesSpan) up to now, oldest first, zeros included
// (admin.SpanSeries).
func (v tenantsView) SeriesSpan(ctx context.Context, id string, span time.Duration) ([]admin.Point, error) {
	if v.tenant(id) == nil {
		return nil, fmt.Errorf("%w: tenant %q", admin.ErrNotFound, id)
	}
	n := int(min(max(span, time.Minute), store.SeriesSpan) / time.Minute)
	end := v.now().Truncate(time.Minute)
	start := end.Add(-time.Duration(n-1) * time.Minute)
	first, sent, err := v.st.SentMinutes(ctx, id, start, end)
	if err != nil {
		return nil, err
	}
	out := make([]admin.Point, n)
	for i := range out {
		out[i].At = start.Add(time.Duration(i) * time.Minute).UTC()
	}
	for i, c := range sent {
		if j := first + int64(i) - start.Unix()/60; j >= 0 && j < int64(n) {
			out[j].Sent = c
		}
	}
	// Bounces and complaints by the minute the mail was sent, from the
	// breaker when it keeps them (guard.Guard does).
	if mc, ok := v.brk.(minuteCounter); ok {
		counts, err := mc.MinuteCounts(ctx, id)
		if err != nil && !errors.Is(err, guard.ErrUnknownTenant) {
			return nil, err
		}
		for at, b := range counts {
			if j := at - start.Unix()/60; j >= 0 && j < int64(n) {
				out[j].Bounces, out[j].Complaints = b.Bounces, b.Complaints
			}
		}
	}
	return out, nil
}

// minuteCounter is implemented by a breakers backend that keeps bounces and
// complaints per send minute (unix minute -> counts).
type minuteCounter interface {
	MinuteCounts(ctx context.Context, tenant string) (map[int64]breaker.Bucket, error)
}

func (v tenantsView) SetFrozen(ctx context.Context, id string, f admin.Freeze) error {
	if id != admin.GlobalTenant && v.tenant(id) == nil {
		return fmt.Errorf("%w: tenant %q", admin.ErrNotFound, id)
	}
	var info *store.FreezeInfo
	if f.Frozen {
		info = &store.FreezeInfo{Reason: f.Reason, By: f.By, At: f.At.UTC()}
	}
	// The flag last: a freeze is not announced before its reason is there.
	if err := v.st.SetFreezeInfo(ctx, id, info); err != nil {
		return err
	}
	if err := v.st.SetFrozen(ctx, id, f.Frozen); err != nil {
		return err
	}
	return v.bump(ctx)
}

func (v tenantsView) GlobalFreeze(ctx context.Context) (admin.Freeze, error) {
	frozen, err := v.st.Frozen(ctx, admin.GlobalTenant)
	if err != nil || !frozen {
		return admin.Freeze{}, err
	}
	infos, err := v.st.FreezeInfos(ctx)
	if err != nil {
		return admin.Freeze{}, err
	}
	fi := infos[admin.GlobalTenant]
	return admin.Freeze{Frozen: true, Reason: fi.Reason, By: fi.By, At: fi.At}, nil
}

// --- suppressions ---

type suppressionsView struct{ *Backend }

func (v suppressionsView) Add(ctx context.Context, list []admin.Suppression) error {
	for _, s := range list {
		sp := store.Suppression{Tenant: s.Tenant, Address: s.Address, Reason: store.SuppressionReason(s.Reason), Added: s.Added, Expires: s.Expires}
		if sp.Added.IsZero() {
			sp.Added = v.now().UTC()
		}
		if err := v.st.AddSuppression(ctx, sp); err != nil {
			return err
		}
	}
	return nil
}

func (v suppressionsView) Remove(ctx context.Context, tenant, address string) error {
	found, err := v.st.RemoveSuppression(ctx, tenant, address)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %s is not on that list", admin.ErrNotFound, address)
	}
	return nil
}

// lists returns the list names in order: the global list, then every tenant.
func (v suppressionsView) lists(q admin.SuppressionQuery) []string {
	if q.Tenant != admin.AllLists {
		return []string{q.Tenant}
	}
	out := []string{""}
	for _, t := range v.policy.Load().Tenants {
		out = append(out, t.ID)
	}
	slices.Sort(out[1:])
	return out
}

// The cursor is base64url("<list>\x00<last address>").
func (v suppressionsView) List(ctx context.Context, q admin.SuppressionQuery) ([]admin.Suppression, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = admin.DefaultListLimit
	}
	curList, after := "", ""
	haveCursor := q.Cursor != ""
	if haveCursor {
		raw, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		l, a, ok := strings.Cut(string(raw), "\x00")
		if err != nil || !ok {
			return nil, "", fmt.Errorf("%w: bad cursor", admin.ErrInvalid)
		}
		curList, after = l, a
		if q.Tenant != admin.AllLists && curList != q.Tenant {
			return nil, "", fmt.Errorf("%w: the cursor is of another list", admin.ErrInvalid)
		}
	}
	var out []admin.Suppression
	lists := v.lists(q)
	for _, l := range lists {
		a := ""
		if haveCursor {
			if l < curList {
				continue
			}
			if l == curList {
				a = after
			}
		}
		page, err := v.st.PageSuppressions(ctx, l, q.Prefix, a, limit+1-len(out))
		if err != nil {
			return nil, "", err
		}
		for _, s := range page {
			out = append(out, admin.Suppression{Tenant: s.Tenant, Address: s.Address, Reason: string(s.Reason), Added: s.Added, Expires: s.Expires})
		}
		if len(out) > limit {
			out = out[:limit]
			last := out[len(out)-1]
			return out, base64.RawURLEncoding.EncodeToString([]byte(last.Tenant + "\x00" + last.Address)), nil
		}
	}
	return out, "", nil
}

// --- audit ---

type auditView struct{ *Backend }

func (v auditView) Record(ctx context.Context, e admin.AuditEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return v.st.AddAudit(ctx, data, v.keep)
}

func (v auditView) List(ctx context.Context, limit int) ([]admin.AuditEntry, error) {
	raw, err := v.st.ListAudit(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]admin.AuditEntry, 0, len(raw))
	for _, r := range raw {
		var e admin.AuditEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, fmt.Errorf("storeadmin: audit entry: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// --- breakers (until the feedback package's backend is wired) ---

// NoBreakers answers every breaker call with ErrInvalid.
type NoBreakers struct{}

func (NoBreakers) Status(context.Context, string) (guard.Status, error) {
	return guard.Status{}, fmt.Errorf("%w: breakers not available", admin.ErrInvalid)
}
func (NoBreakers) Reset(context.Context, string) error {
	return fmt.Errorf("%w: breakers not available", admin.ErrInvalid)
}
func (NoBreakers) ForceOpen(context.Context, string, string) error {
	return fmt.Errorf("%w: breakers not available", admin.ErrInvalid)
}

// --- watch ---

// Watch calls apply at once and then whenever the store's change
// generation moves (a publication, a change of this process, or the poll
// every PollEvery), until ctx ends; one apply at a time. apply's errors are logged; a failed poll is retried at the next.
func (b *Backend) Watch(ctx context.Context, apply func(context.Context) error) {
	go b.st.Changes(ctx, b.poke)
	var last int64
	pending := true // apply at the next chance, whatever the generation
	t := time.NewTicker(b.poll)
	defer t.Stop()
	run := func() {
		cctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		gen, err := b.st.Generation(cctx)
		if err != nil {
			b.log.Warn("admin state poll failed", "err", err.Error())
			return
		}
		if gen == last && !pending {
			return
		}
		if err := apply(cctx); err != nil {
			b.log.Warn("admin state refresh failed", "err", err.Error())
			pending = true
			return
		}
		last, pending = gen, false
	}
	run()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
			pending = true
			run()
		case <-t.C:
			run()
		}
	}
}
