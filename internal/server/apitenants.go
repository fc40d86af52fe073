package server

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sesgate/sesgate/limiter/breaker"
)

// apiTenants is what the feedback side needs of the tenants of the admin
// API (storeadmin.Backend): their breaker settings and ids.
type apiTenants interface {
	BreakerConfig(id string) (breaker.Config, bool)
	APITenantIDs() ([]string, int64)
}

// apiBreakers extends the file's breaker settings (breakerConfigs) with
// the API tenants', and keeps the account guard's tenant list whole.
type apiBreakers struct {
	src    atomic.Pointer[apiTenants]
	mu     sync.Mutex
	seen   int64 // the APITenantIDs generation the guard has
	primed bool
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
	ids, gen := src.APITenantIDs()
	if f.api.primed && gen == f.api.seen {
		return
	}
	f.api.primed, f.api.seen = true, gen
	f.guard.SetTenants(slices.Concat(f.cfgs.ids(), ids))
}
