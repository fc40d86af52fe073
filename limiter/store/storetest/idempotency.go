package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// RunIdempotency checks gateway.IdempotencyStore on stores from newStore
// (which must implement it): claim, in flight, mismatch, replay, owner
// checks on complete and release, the lease's end, the answer's end, and
// isolation between tenants.
func RunIdempotency(t *testing.T, newStore Factory) {
	ctx := context.Background()
	const lease = time.Minute
	type step struct {
		owner, fp string
		want      gateway.IdemState
		answer    string
	}
	for i, sc := range []struct {
		name string
		run  func(t *testing.T, s gateway.IdempotencyStore, c *Clock, tenant string, claim func(key string, st step))
	}{
		{"claim, in flight, mismatch, replay", func(t *testing.T, s gateway.IdempotencyStore, c *Clock, tenant string, claim func(string, step)) {
			claim("k", step{owner: "A", fp: "f1", want: gateway.IdemClaimed})
			claim("k", step{owner: "B", fp: "f1", want: gateway.IdemInFlight})
			claim("k", step{owner: "B", fp: "f2", want: gateway.IdemMismatch})
			if err := s.CompleteIdempotency(ctx, tenant, "k", "B", []byte("not B's"), gateway.IdempotencyTTL); err != nil {
				t.Fatal(err)
			}
			claim("k", step{owner: "C", fp: "f1", want: gateway.IdemInFlight}) // B does not hold it
			if err := s.CompleteIdempotency(ctx, tenant, "k", "A", []byte(`{"status":200}`), gateway.IdempotencyTTL); err != nil {
				t.Fatal(err)
			}
			claim("k", step{owner: "C", fp: "f1", want: gateway.IdemDone, answer: `{"status":200}`})
			claim("k", step{owner: "C", fp: "f2", want: gateway.IdemMismatch})
			c.Add(gateway.IdempotencyTTL - time.Second)
			claim("k", step{owner: "D", fp: "f1", want: gateway.IdemDone, answer: `{"status":200}`})
			c.Add(2 * time.Second)
			claim("k", step{owner: "E", fp: "f2", want: gateway.IdemClaimed}) // the answer's life ended
		}},
		{"release", func(t *testing.T, s gateway.IdempotencyStore, c *Clock, tenant string, claim func(string, step)) {
			claim("k", step{owner: "A", fp: "f1", want: gateway.IdemClaimed})
			if err := s.ReleaseIdempotency(ctx, tenant, "k", "B"); err != nil {
				t.Fatal(err)
			}
			claim("k", step{owner: "B", fp: "f1", want: gateway.IdemInFlight}) // only the owner releases
			if err := s.ReleaseIdempotency(ctx, tenant, "k", "A"); err != nil {
				t.Fatal(err)
			}
			claim("k", step{owner: "B", fp: "f2", want: gateway.IdemClaimed})
		}},
		{"lease ends", func(t *testing.T, s gateway.IdempotencyStore, c *Clock, tenant string, claim func(string, step)) {
			claim("k", step{owner: "A", fp: "f1", want: gateway.IdemClaimed})
			c.Add(lease + time.Second) // A's replica crashed
			claim("k", step{owner: "B", fp: "f1", want: gateway.IdemClaimed})
			if err := s.CompleteIdempotency(ctx, tenant, "k", "A", []byte("late"), gateway.IdempotencyTTL); err != nil {
				t.Fatal(err)
			}
			claim("k", step{owner: "C", fp: "f1", want: gateway.IdemInFlight}) // A's late answer is not B's
		}},
		{"tenants and keys apart", func(t *testing.T, s gateway.IdempotencyStore, c *Clock, tenant string, claim func(string, step)) {
			odd := strings.Repeat("{x} ~", 51) // 255 printable characters, braces included
			claim(odd, step{owner: "A", fp: "f1", want: gateway.IdemClaimed})
			claim("k", step{owner: "A", fp: "f1", want: gateway.IdemClaimed})
			got, err := s.ClaimIdempotency(ctx, tenant+"-other", odd, "f1", "B", lease)
			if err != nil || got.State != gateway.IdemClaimed {
				t.Fatalf("other tenant: %+v, %v; want claimed", got, err)
			}
		}},
	} {
		tenant := fmt.Sprintf("idem%d", i)
		t.Run(sc.name, func(t *testing.T) {
			c := NewClock(Start)
			s, ok := newStore(t, c).(gateway.IdempotencyStore)
			if !ok {
				t.Fatal("store does not implement gateway.IdempotencyStore")
			}
			claim := func(key string, st step) {
				t.Helper()
				got, err := s.ClaimIdempotency(ctx, tenant, key, st.fp, st.owner, lease)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != st.want || string(got.Answer) != st.answer {
					t.Fatalf("claim %s by %s: %+v; want state %d, answer %q", st.fp, st.owner, got, st.want, st.answer)
				}
				if st.want == gateway.IdemInFlight && (got.Left <= 0 || got.Left > lease) {
					t.Fatalf("in flight, left %v; want within (0, %v]", got.Left, lease)
				}
			}
			sc.run(t, s, c, tenant, claim)
		})
	}
}
