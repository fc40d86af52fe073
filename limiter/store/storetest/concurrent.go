package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// concurrentSenders is how many admissions concurrentLimits starts at once.
const concurrentSenders = 40

// concurrentLimits: admissions that arrive at once (a store may batch
// them, as redisstore does) are decided as if one after another: a burst,
// a first-contact budget and a domain burst each admit exactly their size
// out of more concurrent senders, and the usage counts exactly the admitted.
func concurrentLimits(t *testing.T, s store.Store, c *Clock, ten string) {
	for i, tc := range []struct {
		name   string
		limits gateway.Limits
		admit  int
		reason store.Reason
	}{
		{"burst", gateway.Limits{Rate: 0.001, Burst: 10}, 10, store.ReasonRate},
		{"first contacts", gateway.Limits{FirstContactPerHour: 7}, 7, store.ReasonFirstHour},
		{"domain burst", gateway.Limits{PerDomainRate: 0.001, PerDomainBurst: 5}, 5, store.ReasonPerDomainRate},
	} {
		tenant := fmt.Sprintf("%s.%d", ten, i)
		var wg sync.WaitGroup
		start := make(chan struct{})
		ds := make([]store.Decision, concurrentSenders)
		errs := make([]error, concurrentSenders)
		for j := range concurrentSenders {
			wg.Go(func() {
				<-start
				ds[j], errs[j] = s.Admit(context.Background(), store.AdmitRequest{Tenant: tenant, Limits: tc.limits,
					Recipients: []string{fmt.Sprintf("r%d@x.example", j)}})
			})
		}
		close(start)
		wg.Wait()
		admitted := 0
		for j, d := range ds {
			switch {
			case errs[j] != nil:
				t.Fatalf("%s: admit %d: %v", tc.name, j, errs[j])
			case d.Admitted:
				admitted++
			case d.Reason != tc.reason:
				t.Fatalf("%s: admit %d refused for %q; want %q", tc.name, j, d.Reason, tc.reason)
			}
		}
		if admitted != tc.admit {
			t.Fatalf("%s: %d of %d concurrent admissions admitted; want exactly %d", tc.name, admitted, concurrentSenders, tc.admit)
		}
		u, err := s.Usage(context.Background(), tenant)
		if err != nil || u.Hour != int64(tc.admit) {
			t.Fatalf("%s: usage %+v, %v; want %d recipients this hour", tc.name, u, err, tc.admit)
		}
	}
}
