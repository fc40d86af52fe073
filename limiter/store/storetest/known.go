package storetest

import (
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// knownForTheWholeMemory: a recipient stays known for KnownTTL after its
// last message, whatever buckets a store keeps its memory in (redisstore
// reads the current and the previous period's hash; 47h59m from Start
// crosses a period boundary), alone and beside first contacts in one
// message.
func knownForTheWholeMemory(t *testing.T, s store.Store, c *Clock, ten string) {
	l := gateway.Limits{FirstContactPerDay: 100}
	newc := func(to []string, want int) {
		t.Helper()
		if d := admit(t, s, ten, l, to, ok); d.NewRecipients != want {
			t.Fatalf("Admit(%v) at %v: %d first contacts; want %d", to, c.Now(), d.NewRecipients, want)
		}
	}
	newc([]string{"a@x.example", "b@x.example"}, 2)
	c.Add(KnownTTL - time.Minute)
	newc([]string{"a@x.example", "c@x.example", "a@x.example"}, 1)
	c.Add(KnownTTL - time.Minute)
	newc([]string{"c@x.example", "a@x.example", "d@x.example"}, 1)
	newc([]string{"b@x.example"}, 1) // last sent 95h58m ago
	c.Add(KnownTTL + time.Minute)
	newc([]string{"a@x.example", "c@x.example", "d@x.example"}, 3)
}
