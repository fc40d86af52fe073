package storeadmin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/store"
	"github.com/sesgate/sesgate/limiter/webhook"
)

// The tenants of the admin API ("API tenants") live in the store as their
// entries (JSON in the shape of a policy file tenant entry) and are
// decoded here by the policy file's own decoder (config.ParseTenant),
// against the running file's plans. The tenant table the process serves
// is the file's tenants plus the API tenants, the file winning an id both
// have (the API tenant is then "shadowed": listed, logged, not served).
//
// Each process keeps the API tenants it applied and the store version it
// applied them up to; syncTenants reads only the records changed since
// (store.TenantStore.ChangedTenants), so one change costs one decode
// whatever the number of tenants.

// apiTenant is one API tenant as this process applied it.
type apiTenant struct {
	rec     store.TenantRecord
	gt      *gateway.Tenant // nil when the entry does not decode (problem)
	brk     breaker.Config
	plan    string
	hooks   []webhook.Endpoint // the tenant's app webhooks
	problem string             // why it is not served (its plan left the file)
}

// apiTenants is the process's table of API tenants.
type apiTenants struct {
	mu      sync.RWMutex
	byID    map[string]*apiTenant
	applied int64 // the store version applied up to
	idsGen  int64 // bumped when an id comes or goes (the account guard's list)
	cfgGen  int64 // bumped on every applied change (webhooks, windows)
	sync    sync.Mutex
	// pending are the ids changed since ApplyTo last took them.
	pending map[string]bool
}

// syncPage is how many changed records one store call reads.
const syncPage = 2000

// SyncTenants applies the API tenants changed in the store since the last
// call (every one on the first), page by page; progress survives an error.
func (b *Backend) SyncTenants(ctx context.Context) error {
	t := &b.api
	t.sync.Lock()
	defer t.sync.Unlock()
	for {
		t.mu.RLock()
		since := t.applied
		t.mu.RUnlock()
		recs, err := b.ts.ChangedTenants(ctx, since, syncPage)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		built := b.decodeAll(recs, b.policy.Load().File)
		t.mu.Lock()
		for i, r := range recs {
			_, had := t.byID[r.ID]
			if r.Deleted {
				delete(t.byID, r.ID)
			} else {
				t.byID[r.ID] = built[i]
			}
			if had != !r.Deleted {
				t.idsGen++
			}
			t.cfgGen++
			t.pending[r.ID] = true
			t.applied = max(t.applied, r.Version)
		}
		t.mu.Unlock()
		if len(recs) < syncPage {
			return nil
		}
	}
}

// decodeAll decodes the live records of recs on every CPU (100,000
// tenants at start); tombstones stay nil.
func (b *Backend) decodeAll(recs []store.TenantRecord, file *config.Policy) []*apiTenant {
	built := make([]*apiTenant, len(recs))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(recs)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(recs); i += workers {
				if !recs[i].Deleted {
					built[i] = b.decodeAPI(recs[i], file)
				}
			}
		})
	}
	wg.Wait()
	return built
}

// decodeAPI decodes a stored entry against the file's plans. An entry that
// no longer decodes (its plan left the file) is kept with its problem and
// not served; it is logged.
func (b *Backend) decodeAPI(r store.TenantRecord, file *config.Policy) *apiTenant {
	at := &apiTenant{rec: r}
	b.decoded.Add(1)
	ct, err := config.ParseTenant(r.Spec, file)
	if err != nil {
		at.problem = oneLine(err)
		b.log.Error("API tenant not served: its entry does not decode against the policy file", "tenant", r.ID, "problem", at.problem)
		return at
	}
	at.gt, _ = ct.Build()
	at.gt.ID = r.ID // the record's id is the id (checked at create)
	at.brk, at.plan = ct.BreakerConfig(), ct.Plan
	for i := range ct.Webhooks {
		at.hooks = append(at.hooks, ct.Webhooks[i].Endpoint())
	}
	return at
}

func oneLine(err error) string {
	var ce *config.Error
	if errors.As(err, &ce) {
		return strings.Join(ce.Problems, "; ")
	}
	return err.Error()
}

// replan re-decodes, after a reload, the API tenants whose plan changed
// (or appeared, or left the file): a plan change applies to every tenant
// using it.
func (b *Backend) replan(old, cur *config.Policy) {
	var oldPlans, curPlans map[string]config.Plan
	if old != nil {
		oldPlans = old.Plans
	}
	if cur != nil {
		curPlans = cur.Plans
	}
	t := &b.api
	t.sync.Lock()
	defer t.sync.Unlock()
	t.mu.RLock()
	var redo []*apiTenant
	for _, a := range t.byID {
		if a.plan == "" && a.problem == "" {
			continue
		}
		op, inOld := oldPlans[a.plan]
		cp, inCur := curPlans[a.plan]
		if a.problem != "" || inOld != inCur || !reflect.DeepEqual(op, cp) {
			redo = append(redo, a)
		}
	}
	t.mu.RUnlock()
	if len(redo) == 0 {
		return
	}
	recs := make([]store.TenantRecord, len(redo))
	for i, a := range redo {
		recs[i] = a.rec
	}
	built := b.decodeAll(recs, cur)
	t.mu.Lock()
	for _, a := range built {
		if cur, ok := t.byID[a.rec.ID]; ok && cur.rec.Version == a.rec.Version {
			t.byID[a.rec.ID] = a
		}
	}
	t.mu.Unlock()
	b.log.Info("API tenants re-applied after a plan change", "tenants", len(redo))
}

// apiTenant returns the served API tenant id: not shadowed by the file,
// decoded.
func (b *Backend) apiTenant(id string) (*apiTenant, bool) {
	b.api.mu.RLock()
	a, ok := b.api.byID[id]
	b.api.mu.RUnlock()
	return a, ok
}

// BreakerConfig returns the breaker settings of API tenant id (not of a
// file tenant: the caller has those).
func (b *Backend) BreakerConfig(id string) (breaker.Config, bool) {
	if b.fileTenant(id) != nil {
		return breaker.Config{}, false
	}
	a, ok := b.apiTenant(id)
	if !ok || a.gt == nil {
		return breaker.Config{}, false
	}
	return a.brk, true
}

// APIGenerations returns the numbers APITenantIDs and APIWebhooks would
// return now, without building their lists (a caller asks for a list only
// when its number moved).
func (b *Backend) APIGenerations() (ids, hooks int64) {
	b.api.mu.RLock()
	defer b.api.mu.RUnlock()
	return b.api.idsGen, b.api.cfgGen
}

// APITenantIDs returns the ids of the served API tenants and a number
// that changes when the set of stored ones changes (so a caller redoes its
// list only then; a reload redoes it anyway).
func (b *Backend) APITenantIDs() ([]string, int64) {
	b.api.mu.RLock()
	defer b.api.mu.RUnlock()
	file := b.policy.Load().byID
	out := make([]string, 0, len(b.api.byID))
	for id, a := range b.api.byID {
		if a.gt != nil && file[id] == nil { // served: decoded, not shadowed
			out = append(out, id)
		}
	}
	return out, b.api.idsGen
}

// APITenant returns the served API tenant id (nil when there is none, or
// the file has that id).
func (b *Backend) APITenant(id string) *gateway.Tenant {
	if b.fileTenant(id) != nil {
		return nil
	}
	a, ok := b.apiTenant(id)
	if !ok {
		return nil
	}
	return a.gt
}

// APIWebhooks returns the app webhooks of the served API tenants and a
// number that changes whenever an API tenant changed.
func (b *Backend) APIWebhooks() (map[string][]webhook.Endpoint, int64) {
	b.api.mu.RLock()
	defer b.api.mu.RUnlock()
	file := b.policy.Load().byID
	out := map[string][]webhook.Endpoint{}
	for id, a := range b.api.byID {
		if a.gt != nil && file[id] == nil && len(a.hooks) > 0 {
			out[id] = a.hooks
		}
	}
	return out, b.api.cfgGen
}

// --- the admin API's view ---

// TenantEntries returns the admin.TenantEntries view.
func (b *Backend) TenantEntries() admin.TenantEntries { return entriesView{b} }

type entriesView struct{ *Backend }

func (v entriesView) fileName() string {
	if p := v.policy.Load(); p.FilePath != "" {
		return p.FilePath
	}
	return "the policy file"
}

// check decodes an entry for create or update: the file's decoder, an id
// the file does not use, the path's id.
func (v entriesView) check(spec []byte, pathID string) (*config.Tenant, []byte, error) {
	ct, err := config.ParseTenant(spec, v.policy.Load().File)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, nil, &admin.InvalidEntryError{Problems: ce.Problems}
		}
		return nil, nil, &admin.InvalidEntryError{Problems: []string{err.Error()}}
	}
	if pathID != "" && ct.ID != pathID {
		return nil, nil, &admin.InvalidEntryError{Problems: []string{fmt.Sprintf("id: %q is not the tenant of the path (%q); an id cannot change", ct.ID, pathID)}}
	}
	if v.fileTenant(ct.ID) != nil {
		return nil, nil, fmt.Errorf("%w: tenant %q is defined in %s: edit the file (its tenants are read-only here)", admin.ErrConflict, ct.ID, v.fileName())
	}
	canon, err := config.TenantJSON(spec)
	if err != nil {
		return nil, nil, err
	}
	return ct, canon, nil
}

func (v entriesView) Create(ctx context.Context, spec []byte) (admin.TenantEntry, error) {
	ct, canon, err := v.check(spec, "")
	if err != nil {
		return admin.TenantEntry{}, err
	}
	now := v.now().UTC()
	rec, err := v.ts.PutTenant(ctx, store.TenantRecord{ID: ct.ID, Spec: canon, Created: now, Updated: now}, true)
	if errors.Is(err, store.ErrExists) {
		return admin.TenantEntry{}, fmt.Errorf("%w: tenant %q exists", admin.ErrConflict, ct.ID)
	}
	if err != nil {
		return admin.TenantEntry{}, err
	}
	return v.entryOf(rec), v.changed(ctx)
}

func (v entriesView) Update(ctx context.Context, id string, spec []byte) (admin.TenantEntry, error) {
	if v.fileTenant(id) != nil {
		return admin.TenantEntry{}, v.readOnly(id)
	}
	ct, canon, err := v.check(spec, id)
	if err != nil {
		return admin.TenantEntry{}, err
	}
	now := v.now().UTC()
	rec, err := v.ts.PutTenant(ctx, store.TenantRecord{ID: ct.ID, Spec: canon, Created: now, Updated: now}, false)
	if errors.Is(err, store.ErrNotFound) {
		return admin.TenantEntry{}, fmt.Errorf("%w: tenant %q", admin.ErrNotFound, id)
	}
	if err != nil {
		return admin.TenantEntry{}, err
	}
	return v.entryOf(rec), v.changed(ctx)
}

// Delete removes an API tenant and revokes every token of it, so that a
// tenant created later with the same id does not inherit them.
func (v entriesView) Delete(ctx context.Context, id string) error {
	if v.fileTenant(id) != nil {
		return v.readOnly(id)
	}
	now := v.now().UTC()
	if _, err := v.ts.DeleteTenant(ctx, id, now); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: tenant %q", admin.ErrNotFound, id)
	} else if err != nil {
		return err
	}
	toks, err := v.st.ListTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if t.Tenant == id && t.Revoked.IsZero() {
			if err := v.st.RevokeToken(ctx, t.KeyID, now); err != nil {
				return err
			}
		}
	}
	return v.changed(ctx)
}

// changed announces a tenant change and applies it here before answering,
// so a token minted next on this replica finds its tenant.
func (v entriesView) changed(ctx context.Context) error {
	if err := v.bump(ctx); err != nil {
		return err
	}
	return v.SyncTenants(ctx)
}

func (v entriesView) readOnly(id string) error {
	return fmt.Errorf("%w: tenant %q is defined in %s: edit the file (its tenants are read-only here)", admin.ErrConflict, id, v.fileName())
}

func (v entriesView) Get(ctx context.Context, id string) (admin.TenantEntry, error) {
	if v.fileTenant(id) != nil {
		e := admin.TenantEntry{ID: id, Source: admin.SourceFile, File: v.fileName()}
		if rec, err := v.ts.GetTenant(ctx, id); err == nil {
			sh := v.entryOf(rec) // the file took the id of an API tenant
			e.Shadowed = &sh
		}
		return e, nil
	}
	rec, err := v.ts.GetTenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return admin.TenantEntry{}, fmt.Errorf("%w: tenant %q", admin.ErrNotFound, id)
	}
	if err != nil {
		return admin.TenantEntry{}, err
	}
	return v.entryOf(rec), nil
}

func (v entriesView) entryOf(rec store.TenantRecord) admin.TenantEntry {
	e := admin.TenantEntry{ID: rec.ID, Source: admin.SourceAPI, Entry: json.RawMessage(rec.Spec), Version: rec.Version, Created: rec.Created, Updated: rec.Updated}
	if v.fileTenant(rec.ID) != nil {
		e.Problem = fmt.Sprintf("shadowed: %s defines tenant %q, which wins; this entry is not served", v.fileName(), rec.ID)
	} else if a, ok := v.apiTenant(rec.ID); ok && a.problem != "" && a.rec.Version == rec.Version {
		e.Problem = "not served: " + a.problem
	}
	return e
}

// List pages the file's tenants, then the store's, by id within each;
// source filters (admin.SourceFile, admin.SourceAPI or ""). The cursor is
// base64url("<source>\x00<last id>").
func (v entriesView) List(ctx context.Context, q admin.TenantEntryQuery) ([]admin.TenantEntry, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = admin.DefaultListLimit
	}
	src, after := admin.SourceFile, ""
	if q.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		s, a, ok := strings.Cut(string(raw), "\x00")
		if err != nil || !ok || (s != admin.SourceFile && s != admin.SourceAPI) {
			return nil, "", fmt.Errorf("%w: bad cursor", admin.ErrInvalid)
		}
		src, after = s, a
	}
	cursor := func(e admin.TenantEntry) string {
		return base64.RawURLEncoding.EncodeToString([]byte(e.Source + "\x00" + e.ID))
	}
	var out []admin.TenantEntry
	if src == admin.SourceFile && q.Source != admin.SourceAPI {
		ids := v.policy.Load().sortedIDs
		i, _ := slices.BinarySearch(ids, max(after, q.Prefix))
		for ; i < len(ids) && strings.HasPrefix(ids[i], q.Prefix); i++ {
			if ids[i] == after {
				continue
			}
			if len(out) == limit {
				return out, cursor(out[len(out)-1]), nil
			}
			out = append(out, admin.TenantEntry{ID: ids[i], Source: admin.SourceFile, File: v.fileName()})
		}
	}
	if q.Source == admin.SourceFile {
		return out, "", nil
	}
	if src == admin.SourceFile {
		after = ""
	}
	recs, err := v.ts.PageTenants(ctx, q.Prefix, after, limit+1-len(out))
	if err != nil {
		return nil, "", err
	}
	for _, r := range recs {
		if len(out) == limit {
			return out, cursor(out[len(out)-1]), nil
		}
		out = append(out, v.entryOf(r))
	}
	return out, "", nil
}
