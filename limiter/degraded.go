package limiter

import (
	"context"
	"slices"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// maxSpends bounds the per-hour records of a tenant's unreconciled degraded
// admissions: past it the oldest is folded into the next (counted in a
// later window: never less).
const maxSpends = 26

// windowed are the limits the degraded budget is computed from.
type windowed struct{ perHour, perDay, firstHour, firstDay int64 }

func windowedOf(l gateway.Limits) windowed {
	return windowed{l.PerHour, l.PerDay, l.FirstContactPerHour, l.FirstContactPerDay}
}

// budget is what this replica may still admit for a tenant without the
// store, in recipients: its share (1/Replicas) of what the tenant's windowed
// limits had left when the store last answered (store.Decision.Remaining),
// less this replica's degraded admissions since. store.Unlimited: the tenant
// has no such limit.
type budget struct {
	set                            bool
	of                             windowed // the limits it was computed for
	hour, day, firstHour, firstDay int64
}

// spend is what this replica admitted for a tenant without the store in one
// UTC hour, not yet added to the store: what AddUsage adds to each counter
// the tenant has (recipients to the quotas, the same as assumed first
// contacts to the first-contact budgets).
type spend struct {
	hour int64     // unix hour
	at   time.Time // the last admission of that hour
	add  store.Usage
}

// usageOf is what n recipients admitted without the store add to the
// counters of the limits l has.
func usageOf(l gateway.Limits, n int64) store.Usage {
	on := func(limit int64) int64 {
		if limit > 0 {
			return n
		}
		return 0
	}
	return store.Usage{Hour: on(l.PerHour), Day: on(l.PerDay), FirstContactHour: on(l.FirstContactPerHour), FirstContactDay: on(l.FirstContactPerDay)}
}

func plus(a, b store.Usage) store.Usage {
	return store.Usage{Hour: a.Hour + b.Hour, Day: a.Day + b.Day,
		FirstContactHour: a.FirstContactHour + b.FirstContactHour, FirstContactDay: a.FirstContactDay + b.FirstContactDay}
}

// minus is a - b, none below 0.
func minus(a, b store.Usage) store.Usage {
	return store.Usage{Hour: max(0, a.Hour-b.Hour), Day: max(0, a.Day-b.Day),
		FirstContactHour: max(0, a.FirstContactHour-b.FirstContactHour), FirstContactDay: max(0, a.FirstContactDay-b.FirstContactDay)}
}

// learn takes the tenant's budget from the store's answer: this replica's
// share of what is left, less what it admitted without the store and has
// not yet added (the store does not count that yet).
func (s *Shared) learn(ts *tenantState, l gateway.Limits, r store.Remaining) {
	ts.mu.Lock()
	var p store.Usage
	for _, sp := range ts.spends {
		p = plus(p, sp.add)
	}
	share := func(left, pend int64) int64 {
		if left < 0 {
			return store.Unlimited
		}
		return max(0, left-pend) / int64(s.replicas)
	}
	ts.budget = budget{set: true, of: windowedOf(l), hour: share(r.Hour, p.Hour), day: share(r.Day, p.Day),
		firstHour: share(r.FirstHour, p.FirstContactHour), firstDay: share(r.FirstDay, p.FirstContactDay)}
	ts.mu.Unlock()
}

// noStateBudget is the budget of a tenant the store has not answered for
// since this replica started (or since its limits changed): no first
// contact when it has a first-contact budget (every degraded recipient
// counts as one), and DegradedFraction of each quota, split over the
// replicas.
func (s *Shared) noStateBudget(l gateway.Limits) budget {
	quota := func(limit int64) int64 {
		if limit <= 0 {
			return store.Unlimited
		}
		return int64(s.fraction * float64(limit) / float64(s.replicas))
	}
	first := func(limit int64) int64 {
		if limit <= 0 {
			return store.Unlimited
		}
		return 0
	}
	return budget{set: true, of: windowedOf(l), hour: quota(l.PerHour), day: quota(l.PerDay),
		firstHour: first(l.FirstContactPerHour), firstDay: first(l.FirstContactPerDay)}
}

// fitsBudget reports whether the tenant's degraded budget covers a message
// of n recipients (spendBudget takes it).
func (s *Shared) fitsBudget(ts *tenantState, l gateway.Limits, n int) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return s.fitsLocked(ts, l, n)
}

// fitsLocked is fitsBudget with ts.mu held. A shadowed limit is not
// enforced (as by the store). The known-recipient memory cannot be read, so
// every recipient counts as a first contact.
func (s *Shared) fitsLocked(ts *tenantState, l gateway.Limits, n int) bool {
	if !ts.budget.set || ts.budget.of != windowedOf(l) {
		ts.budget = s.noStateBudget(l)
	}
	rc := int64(n)
	b := &ts.budget
	for _, c := range []struct {
		left, need int64
		limit      string
	}{
		{b.hour, rc, gateway.LimitPerHour}, {b.day, rc, gateway.LimitPerDay},
		{b.firstHour, rc, gateway.LimitFirstContactPerHour}, {b.firstDay, rc, gateway.LimitFirstContactPerDay},
	} {
		if c.left != store.Unlimited && c.need > c.left && !slices.Contains(l.Shadow, c.limit) {
			return false
		}
	}
	return true
}

// spendBudget takes a message of n recipients from the tenant's degraded
// budget and records it for the reconcile; false (nothing taken) when the
// budget does not cover it.
func (s *Shared) spendBudget(ts *tenantState, l gateway.Limits, n int, now time.Time) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !s.fitsLocked(ts, l, n) {
		return false
	}
	rc := int64(n)
	b := &ts.budget
	take := func(v *int64) {
		if *v != store.Unlimited {
			*v = max(0, *v-rc)
		}
	}
	take(&b.hour)
	take(&b.day)
	take(&b.firstHour)
	take(&b.firstDay)

	s.degRecipients.Add(rc)
	add := usageOf(l, rc)
	if add == (store.Usage{}) {
		return true // no windowed limit: nothing to add to the store
	}
	hour := now.Unix() / 3600
	if k := len(ts.spends); k > 0 && ts.spends[k-1].hour == hour {
		sp := &ts.spends[k-1]
		sp.at, sp.add = now, plus(sp.add, add)
	} else {
		if k == maxSpends {
			ts.spends[1].add = plus(ts.spends[1].add, ts.spends[0].add)
			ts.spends = slices.Delete(ts.spends, 0, 1)
		}
		ts.spends = append(ts.spends, spend{hour: hour, at: now, add: add})
	}
	if ts.pending.CompareAndSwap(false, true) {
		s.pendingTenants.Add(1)
	}
	return true
}

// reconcile adds the tenant's degraded admissions to the store, one
// AddUsage per hour of spend, each within CallTimeout. It returns the first
// error; what was added is forgotten, the rest kept for the next try. One
// reconcile of a tenant runs at a time: another waits for it (so that an
// admission never overtakes an add in flight).
func (s *Shared) reconcile(ctx context.Context, id string, ts *tenantState) error {
	ts.recMu.Lock()
	defer ts.recMu.Unlock()
	ts.mu.Lock()
	todo := slices.Clone(ts.spends)
	ts.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}

	var err error
	done := 0
	for _, sp := range todo {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		err = s.st.AddUsage(cctx, id, sp.at, sp.add)
		cancel()
		if err != nil {
			break
		}
		done++
	}

	var added int64
	ts.mu.Lock()
	for _, sp := range todo[:done] {
		added += max(sp.add.Hour, sp.add.Day, sp.add.FirstContactHour, sp.add.FirstContactDay)
		// The spend is where it was, or folded into a later hour.
		if i := slices.IndexFunc(ts.spends, func(x spend) bool { return x.hour >= sp.hour }); i >= 0 {
			ts.spends[i].add = minus(ts.spends[i].add, sp.add)
		}
	}
	ts.spends = slices.DeleteFunc(ts.spends, func(x spend) bool { return x.add == (store.Usage{}) })
	left := len(ts.spends)
	if left == 0 {
		ts.spends = nil
	}
	if left == 0 && ts.pending.CompareAndSwap(true, false) {
		s.pendingTenants.Add(-1)
	}
	ts.mu.Unlock()

	if added > 0 {
		s.reconciled.Add(added)
		s.log.Info("degraded admissions added to the store", "tenant", id, "rcpts", added)
	}
	if err != nil {
		s.log.Warn("degraded admissions not yet added to the store", "tenant", id, "err", err.Error())
	}
	return err
}

// sweep reconciles every tenant with degraded admissions not yet added,
// until the store fails again. It runs in the background after a
// successful store call, one at a time.
func (s *Shared) sweep() {
	defer s.sweeping.Store(false)
	s.tenants.Range(func(k, v any) bool {
		ts := v.(*tenantState)
		if !ts.pending.Load() {
			return true
		}
		return s.reconcile(context.Background(), k.(string), ts) == nil
	})
}

// startSweep starts a sweep if a tenant has degraded admissions to add and
// none is running.
func (s *Shared) startSweep() {
	if s.pendingTenants.Load() > 0 && s.sweeping.CompareAndSwap(false, true) {
		go s.sweep()
	}
}

// Reconcile adds every tenant's degraded admissions to the store now (the
// limiter also does it by itself once the store answers again); it returns
// the first error.
func (s *Shared) Reconcile(ctx context.Context) error {
	var err error
	s.tenants.Range(func(k, v any) bool {
		ts := v.(*tenantState)
		if ts.pending.Load() {
			err = s.reconcile(ctx, k.(string), ts)
		}
		return err == nil
	})
	return err
}
