package redisstore

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// gcraTolerance (ms) absorbs float rounding where a GCRA compares times.
const gcraTolerance = 0.001

// admitArgc is the number of ARGV slots admit.lua names before the
// messages.
const admitArgc = 20

// admitArgs computes the KEYS and ARGV of a batch of one admission (see
// batchArgs).
func (s *Store) admitArgs(req store.AdmitRequest, lower []string) (keys []string, argv []any) {
	return s.batchArgs(req.Tenant, req.Limits, [][]string{lower})
}

// batchArgs computes the KEYS and ARGV of a batch of admissions of one
// tenant with the same limits: the batch and the tenant's limits, in the
// order of the locals at admit.lua's top, then per message its recipient
// count and three slots per recipient: the lowercased address, its HMAC
// (only with a first-contact budget) and its domain (only with a
// per-domain rate).
func (s *Store) batchArgs(tenant string, l gateway.Limits, msgs [][]string) (keys []string, argv []any) {
	h := s.heads.get(s, tenant, l)
	n := 0
	for _, m := range msgs {
		n += 1 + 3*len(m)
	}
	argv = make([]any, 0, admitArgc+n)
	argv = append(argv, s.nowArg(), len(msgs))
	argv = append(argv, h.head...)
	w := l.FirstContactWindow
	fc, dom := l.FirstContactPerHour > 0 || l.FirstContactPerDay > 0 || w.On(), l.PerDomainRate > 0
	for _, m := range msgs {
		argv = append(argv, len(m))
		for _, a := range m {
			hash, d := "", ""
			if fc {
				hash = s.keyer.Hash(a)
			}
			if dom {
				d = store.Domain(a)
			}
			argv = append(argv, a, hash, d)
		}
	}
	return h.keys, argv
}

// flag is a boolean script argument.
func flag(b bool) any {
	if b {
		return flagSet
	}
	return flagUnset
}

// shadowBit is a limit's bit in a shadow mask: its place in
// gateway.LimitNames.
func shadowBit(limit store.Reason) int64 {
	return 1 << slices.Index(gateway.LimitNames(), string(limit))
}

// shadowMask is the sum of the bits of the limits in names.
func shadowMask(names []string) int64 {
	var mask int64
	if len(names) == 0 {
		return 0
	}
	for i, n := range gateway.LimitNames() {
		if slices.Contains(names, n) {
			mask |= 1 << i
		}
	}
	return mask
}

// admitConst is a constant of admit.lua: its name there and its value (a
// string, an integer or a float).
type admitConst struct {
	name  string
	value any
}

// admitConsts are every constant admit.lua uses, from the store contract
// and this package's key layout.
func admitConsts() []admitConst {
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return []admitConst{
		// each limit's name, which is the reason of its refusals, and its
		// shadow-mask bit
		{"L_RATE", string(store.ReasonRate)}, {"B_RATE", shadowBit(store.ReasonRate)},
		{"L_HOUR", string(store.ReasonPerHour)}, {"B_HOUR", shadowBit(store.ReasonPerHour)},
		{"L_DAY", string(store.ReasonPerDay)}, {"B_DAY", shadowBit(store.ReasonPerDay)},
		{"L_FC_HOUR", string(store.ReasonFirstHour)}, {"B_FC_HOUR", shadowBit(store.ReasonFirstHour)},
		{"L_FC_DAY", string(store.ReasonFirstDay)}, {"B_FC_DAY", shadowBit(store.ReasonFirstDay)},
		{"L_DOMAIN", string(store.ReasonPerDomainRate)}, {"B_DOMAIN", shadowBit(store.ReasonPerDomainRate)},
		{"L_FC_WINDOW", string(store.ReasonFirstWindow)}, {"B_FC_WINDOW", shadowBit(store.ReasonFirstWindow)},
		// the other refusal reasons
		{"FROZEN", string(store.ReasonFrozen)}, {"BREAKER_OPEN", string(store.ReasonBreakerOpen)},
		{"SUPPRESSED", string(store.ReasonSuppressed)}, {"TOO_MANY", string(store.ReasonTooMany)},
		// breaker states
		{"CLOSED", string(store.Closed)}, {"OPEN", string(store.Open)}, {"HALF_OPEN", string(store.HalfOpen)}, {"FORCED_OPEN", string(store.ForcedOpen)},
		// durations in ms
		{"FROZEN_RETRY", ms(store.FrozenRetry)}, {"FROZEN_CACHE", ms(store.FrozenCache)}, {"PROBE_RETRY", ms(store.ProbeRetry)},
		{"HOUR", ms(windowHour)}, {"DAY", ms(windowDay)}, {"SENT_BUCKET", ms(sentBucket)},
		{"WINDOW_RETRY", ms(store.WindowRetry)},
		{"KNOWN_GRACE", ms(knownGrace)}, {"TAT_GRACE", ms(tatGrace)}, {"TOLERANCE", gcraTolerance},
		// ms per second, us per ms; the warning level's rate factor
		clockConsts[0], clockConsts[1],
		{"WARNING_RATE", store.WarningRateFactor},
		// derived keys after the tenant's prefix (same slot)
		{"K_KNOWN", keyKnown}, {"F_K_TTL", fieldKnownTTL}, {"K_DOMAIN", keyDomain}, {"K_SENT", keySent}, {"K_WIN", keyWindow}, {"K_WOUT", keyOutstanding},
		{"F_W_WINDOW", fieldWinWindow}, {"F_W_HELD", fieldWinHeld}, {"F_W_EXPIRED", fieldWinExpired},
		// fields of the breaker hash, of the state hash; a set flag
		{"F_FROZEN", fieldFrozen}, {"F_STATE", fieldState}, {"F_OPEN_UNTIL", fieldOpenUntil},
		{"F_PROBES", fieldProbes}, {"F_WARNING", fieldWarning},
		{"F_TAT", fieldTAT}, {"F_QH", fieldQuotaHour}, {"F_QD", fieldQuotaDay}, {"F_FH", fieldFirstHour}, {"F_FD", fieldFirstDay},
		{"YES", flagSet}, {"UNLIMITED", int64(store.Unlimited)},
		// the slots named before the messages
		{"ARGC", int64(admitArgc)},
	}
}

// clockConsts are the constants of the scripts' reading of Redis's TIME:
// ms per second, us per ms.
var clockConsts = [2]admitConst{
	{"SECOND", time.Second.Milliseconds()}, {"MS_US", int64(time.Millisecond / time.Microsecond)},
}

// usageConsts are the constants usage.lua uses, bound as admitConsts'.
func usageConsts() []admitConst {
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return []admitConst{
		{"HOUR", ms(windowHour)}, {"DAY", ms(windowDay)},
		clockConsts[0], clockConsts[1],
		{"F_QH", fieldQuotaHour}, {"F_QD", fieldQuotaDay}, {"F_FH", fieldFirstHour}, {"F_FD", fieldFirstDay},
	}
}

// admitScript is admit.lua preceded by its constants as Lua locals: bound
// once, when the script is loaded, instead of passed with every call.
func admitScript() string { return withConsts("admitConsts", admitConsts(), admitSrc) }

// usageScript is usage.lua preceded by its constants.
func usageScript() string { return withConsts("usageConsts", usageConsts(), usageSrc) }

func withConsts(from string, consts []admitConst, src string) string {
	var b strings.Builder
	b.WriteString("-- constants from redisstore." + from + "\n")
	for _, c := range consts {
		fmt.Fprintf(&b, "local %s = %s\n", c.name, luaLiteral(c.value))
	}
	b.WriteString(src)
	return b.String()
}

// luaLiteral writes a constant as a Lua literal. The strings are this
// package's and the store contract's names: plain ASCII, never a quote or a
// backslash.
func luaLiteral(v any) string {
	switch v := v.(type) {
	case string:
		if strings.ContainsAny(v, "'\\\n") {
			panic(fmt.Sprintf("redisstore: constant %q cannot be a Lua literal", v))
		}
		return "'" + v + "'"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	panic(fmt.Sprintf("redisstore: constant of type %T", v))
}

// parseAdmit reads the script's answer, checking every type.
func parseAdmit(tenant string, lower []string, res []any) (store.Decision, error) {
	bad := func(what string) (store.Decision, error) {
		return store.Decision{}, fmt.Errorf("redisstore: admit script returned a bad %s", what)
	}
	if len(res) != 8 {
		return bad("answer")
	}
	admitted, ok1 := res[0].(int64)
	reason, ok2 := res[1].(string)
	retry, ok3 := res[2].(int64)
	cache, ok4 := res[3].(int64)
	shadow, ok5 := res[4].([]any)
	newc, ok6 := res[5].(int64)
	supp, ok7 := res[6].([]any)
	rem, ok8 := res[7].(string)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8) {
		return bad("answer type")
	}
	d := store.Decision{
		Admitted:      admitted == 1,
		Reason:        store.Reason(reason),
		RetryAfter:    time.Duration(retry) * time.Millisecond,
		CacheFor:      time.Duration(cache) * time.Millisecond,
		NewRecipients: int(newc),
	}
	if rem != "" { // else a refusal before the counters were read
		var v [4]int64
		for i := range v {
			field, rest, _ := strings.Cut(rem, ":")
			n, err := strconv.ParseInt(field, 10, 64)
			if err != nil || n < store.Unlimited || (i < 3) == (rest == "") {
				return bad("remaining")
			}
			v[i], rem = n, rest
		}
		d.Remaining = store.Remaining{Known: true, Hour: v[0], Day: v[1], FirstHour: v[2], FirstDay: v[3]}
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
