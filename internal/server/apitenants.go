package server

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/webhook"
)

// apiTenants is what the feedback side needs of the tenants of the admin
// API (storeadmin.Backend): their breaker settings and ids.
type apiTenants interface {
	BreakerConfig(id string) (breaker.Config, bool)
	APITenantIDs() ([]string, int64)
	APITenant(id string) *gateway.Tenant // nil: none served
	APIWebhooks() (map[string][]webhook.Endpoint, int64)
	// APIGenerations returns the numbers of APITenantIDs and APIWebhooks
	// without building their lists.
	APIGenerations() (ids, hooks int64)
}

// apiBreakers extends the file's breaker settings (breakerConfigs) with
// the API tenants', and keeps the account guard's tenant list whole.
type apiBreakers struct {
	src    atomic.Pointer[apiTenants]
	mu     sync.Mutex
	seen   int64 // the APITenantIDs generation the guard has
	primed bool
	hooks  int64 // the APIWebhooks generation the dispatcher has
	// file are the policy file's webhooks (a reload sets them): the
	// dispatcher gets them with the API tenants'.
	file map[string][]webhook.Endpoint
}

func (a *apiBreakers) get(id string) (breaker.Config, bool) {
	if p := a.src.Load(); p != nil {
		return (*p).BreakerConfig(id)
	}
	return breaker.Config{}, false
}

// apiTenantsApplied is called after every apply of the store's admin state:
// the API tenants' breaker settings are looked up from then on, and the
// account guard ranks the file's and the API's tenants (redone only when
// the set of API tenants changed).
func (f *feedbackSide) apiTenantsApplied(src apiTenants) {
	f.api.src.Store(&src)
	f.api.mu.Lock()
	defer f.api.mu.Unlock()
	idsGen, hooksGen := src.APIGenerations()
	if !f.api.primed || hooksGen != f.api.hooks {
		hooks, gen := src.APIWebhooks()
		all := maps.Clone(f.api.file)
		if all == nil {
			all = map[string][]webhook.Endpoint{}
		}
		for id, eps := range hooks {
			if _, fileHas := all[id]; !fileHas {
				all[id] = eps
			}
		}
		f.hooks.SetEndpoints(all)
		f.api.hooks = gen
	}
	if f.api.primed && idsGen == f.api.seen {
		return
	}
	ids, gen := src.APITenantIDs()
	f.api.primed, f.api.seen = true, gen
	f.guard.SetTenants(slices.Concat(f.cfgs.ids(), ids))
}

// window is the first-contact window of a file tenant, else of an API
// tenant (guard.WindowFunc).
func (f *feedbackSide) window(id string) (gateway.FirstContactWindow, bool) {
	if w, ok := f.windows.get(id); ok {
		return w, ok
	}
	if p := f.api.src.Load(); p != nil {
		if t := (*p).APITenant(id); t != nil {
			return t.Limits.FirstContactWindow, t.WindowActive()
		}
	}
	return gateway.FirstContactWindow{}, false
}
