package redisstore

import (
	"reflect"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestAdmitArgsHeadFollowsLimits: the cached KEYS and ARGV head of a
// tenant is rebuilt whenever any limit the script is given changes (rate,
// shadow list, window), and the arguments always equal those of a store
// that never saw the tenant before.
func TestAdmitArgsHeadFollowsLimits(t *testing.T) {
	cached := &Store{keyer: mustKeyer(t), knownTTL: time.Hour, sentTTL: 2 * time.Hour}
	base := gateway.Limits{Rate: 10, PerDay: 1000, FirstContactPerDay: 5, PerDomainRate: 2}
	variants := []gateway.Limits{base, base}
	v := base
	v.Rate = 10.5
	variants = append(variants, v)
	v.Shadow = []string{gateway.LimitPerDay}
	variants = append(variants, v)
	v.Shadow = []string{gateway.LimitRate}
	variants = append(variants, v)
	v.FirstContactWindow = gateway.FirstContactWindow{Initial: 3, Min: 1, Max: 9, Threshold: 2, OutstandingTimeout: time.Minute}
	variants = append(variants, v, base)
	for i, l := range variants {
		for _, tenant := range []string{"a", "b"} {
			req := store.AdmitRequest{Tenant: tenant, Recipients: []string{"x@y.example", "z@w.example"}, Limits: l}
			keys, argv := cached.admitArgs(req, req.Recipients)
			fresh := &Store{keyer: cached.keyer, knownTTL: time.Hour, sentTTL: 2 * time.Hour}
			wantKeys, wantArgv := fresh.admitArgs(req, req.Recipients)
			if !reflect.DeepEqual(keys, wantKeys) || !reflect.DeepEqual(argv, wantArgv) {
				t.Fatalf("variant %d tenant %s: got %v %v, want %v %v", i, tenant, keys, argv, wantKeys, wantArgv)
			}
		}
	}
}
