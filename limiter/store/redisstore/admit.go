package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// gcraTolerance (ms) absorbs float rounding where a GCRA compares times.
const gcraTolerance = 0.001

// admitArgc is the number of ARGV slots admit.lua names before the
// recipients.
const admitArgc = 60

func (s *Store) runAdmit(ctx context.Context, req store.AdmitRequest, lower []string) (store.Decision, error) {
	keys, argv := s.admitArgs(req, lower)
	res, err := s.admit.Run(ctx, s.c, keys, argv...).Slice()
	if err != nil {
		return store.Decision{}, fmt.Errorf("redisstore: admit: %w", err)
	}
	return parseAdmit(req.Tenant, lower, res)
}

// admitArgs computes the KEYS and ARGV of admit.lua. Every constant the
// script uses comes from here, in the order of the locals at its top; then
// three slots per recipient: the lowercased address, its HMAC (only with a
// first-contact budget) and its domain (only with a per-domain rate).
// Durations are written as constant expressions, which go into an
// interface without allocating.
func (s *Store) admitArgs(req store.AdmitRequest, lower []string) (keys []string, argv []any) {
	l, p := req.Limits, TenantPrefix(req.Tenant)
	keys = []string{p + keyBreaker, p + keySup, p + keyState}
	argv = make([]any, 0, admitArgc+3*len(lower))
	argv = append(argv,
		// 1-3 the call
		s.nowArg(), len(lower), p,
		// 4-14 the tenant's limits, the store's memory
		strconv.FormatFloat(l.Rate, 'g', -1, 64), l.EffectiveBurst(), flag(l.RatePerRecipient),
		l.PerHour, l.PerDay, l.FirstContactPerHour, l.FirstContactPerDay,
		strconv.FormatFloat(l.PerDomainRate, 'g', -1, 64), l.EffectivePerDomainBurst(),
		s.knownTTL.Milliseconds(), s.sentTTL.Milliseconds(),
		// 15-26 each limit's refusal reason (its name) and its shadow flag
		string(store.ReasonRate), shadowed(l, store.ReasonRate),
		string(store.ReasonPerHour), shadowed(l, store.ReasonPerHour),
		string(store.ReasonPerDay), shadowed(l, store.ReasonPerDay),
		string(store.ReasonFirstHour), shadowed(l, store.ReasonFirstHour),
		string(store.ReasonFirstDay), shadowed(l, store.ReasonFirstDay),
		string(store.ReasonPerDomainRate), shadowed(l, store.ReasonPerDomainRate),
		// 27-34 the other refusal reasons, the breaker states
		string(store.ReasonFrozen), string(store.ReasonBreakerOpen), string(store.ReasonSuppressed), string(store.ReasonTooMany),
		string(store.Closed), string(store.Open), string(store.HalfOpen), string(store.ForcedOpen),
		// 35-43 durations in ms
		int64(store.FrozenRetry/time.Millisecond), int64(store.FrozenCache/time.Millisecond), int64(store.ProbeRetry/time.Millisecond),
		int64(windowHour/time.Millisecond), int64(windowDay/time.Millisecond), int64(sentBucket/time.Millisecond),
		int64(knownGrace/time.Millisecond), int64(tatGrace/time.Millisecond), gcraTolerance,
		// 44-46 ms per second, us per ms; the warning level's rate factor
		int64(time.Second/time.Millisecond), int64(time.Millisecond/time.Microsecond), store.WarningRateFactor,
		// 47-49 derived keys, after the prefix
		keyKnown, keyDomain, keySent,
		// 50-60 fields of the breaker hash, of the state hash; a set flag
		fieldFrozen, fieldState, fieldOpenUntil, fieldProbes, fieldWarning,
		fieldTAT, fieldQuotaHour, fieldQuotaDay, fieldFirstHour, fieldFirstDay,
		flagSet,
	)
	fc, dom := l.FirstContactPerHour > 0 || l.FirstContactPerDay > 0, l.PerDomainRate > 0
	for _, a := range lower {
		h, d := "", ""
		if fc {
			h = s.keyer.Hash(a)
		}
		if dom {
			d = store.Domain(a)
		}
		argv = append(argv, a, h, d)
	}
	return keys, argv
}

// flag is a boolean script argument.
func flag(b bool) any {
	if b {
		return flagSet
	}
	return flagUnset
}

// shadowed is the flag of a limit named in Limits.Shadow (a limit's name is
// the Reason of its refusals).
func shadowed(l gateway.Limits, limit store.Reason) any {
	return flag(slices.Contains(l.Shadow, string(limit)))
}

// parseAdmit reads the script's answer, checking every type.
func parseAdmit(tenant string, lower []string, res []any) (store.Decision, error) {
	bad := func(what string) (store.Decision, error) {
		return store.Decision{}, fmt.Errorf("redisstore: admit script returned a bad %s", what)
	}
	if len(res) != 7 {
		return bad("answer")
	}
	admitted, ok1 := res[0].(int64)
	reason, ok2 := res[1].(string)
	retry, ok3 := res[2].(int64)
	cache, ok4 := res[3].(int64)
	shadow, ok5 := res[4].([]any)
	newc, ok6 := res[5].(int64)
	supp, ok7 := res[6].([]any)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return bad("answer type")
	}
	d := store.Decision{
		Admitted:      admitted == 1,
		Reason:        store.Reason(reason),
		RetryAfter:    time.Duration(retry) * time.Millisecond,
		CacheFor:      time.Duration(cache) * time.Millisecond,
		NewRecipients: int(newc),
	}
	for _, v := range shadow {
		n, ok := v.(string)
		if !ok {
			return bad("shadowed limit")
		}
		if !slices.Contains(d.Shadowed, n) {
			d.Shadowed = append(d.Shadowed, n)
		}
	}
	for _, e := range supp {
		row, ok := e.([]any)
		if !ok || len(row) != 4 {
			return bad("suppression row")
		}
		i, ok1 := row[0].(int64)
		r, ok2 := row[1].(string)
		added, ok3 := row[2].(int64)
		exp, ok4 := row[3].(int64)
		if !(ok1 && ok2 && ok3 && ok4) || i < 1 || int(i) > len(lower) {
			return bad("suppression row")
		}
		sp := store.Suppression{Tenant: tenant, Address: lower[i-1], Reason: store.SuppressionReason(r), Added: time.UnixMilli(added).UTC()}
		if exp > 0 {
			sp.Expires = time.UnixMilli(exp).UTC()
		}
		d.Suppressed = append(d.Suppressed, sp)
	}
	return d, nil
}
