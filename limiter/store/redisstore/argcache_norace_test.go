//go:build !race

package redisstore

import (
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestAdmitArgsAllocations counts the allocations of one full-policy
// admission's script arguments once the tenant's head is cached: the
// ARGV slice, the recipient's HMAC string and the boxing of its three
// string slots into ARGV; the tenant's keys and limits are not formatted
// again (at the branch's base, with the unpooled HMAC: 30).
func TestAdmitArgsAllocations(t *testing.T) {
	s := &Store{keyer: mustKeyer(t), knownTTL: time.Hour, sentTTL: time.Hour}
	req := store.AdmitRequest{Tenant: "full", Recipients: []string{"new1@d1.example"}, Limits: gateway.Limits{
		Rate: 100000, Burst: 100000, PerHour: 1e9, PerDay: 1e9, FirstContactPerHour: 1e9, FirstContactPerDay: 1e9,
		PerDomainRate: 100000, PerDomainBurst: 100000}}
	s.admitArgs(req, req.Recipients)
	if n := testing.AllocsPerRun(200, func() { s.admitArgs(req, req.Recipients) }); n > 5 {
		t.Errorf("admitArgs allocates %.0f times, want <= 5", n)
	}
}
