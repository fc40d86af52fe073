package redisstore

import (
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// TestAdmitScript checks that admitArgs and admit.lua agree on the ARGV
// layout, and that the script takes its constants from Go (checkScript).
func TestAdmitScript(t *testing.T) {
	s := &Store{keyer: mustKeyer(t), knownTTL: time.Hour, sentTTL: time.Hour}
	req := store.AdmitRequest{Tenant: "t", Recipients: []string{"a@b.example", "c@d.example"},
		Limits: gateway.Limits{Rate: 1, FirstContactPerDay: 1, PerDomainRate: 1, Shadow: []string{gateway.LimitPerDay}}}
	keys, argv := s.admitArgs(req, req.Recipients)
	if want := admitArgc + 1 + 3*len(req.Recipients); len(keys) != 3 || len(argv) != want {
		t.Fatalf("%d keys, %d args; want 3 and %d", len(keys), len(argv), want)
	}

	checkScript(t, "admit.lua", admitSrc, admitConsts(), admitArgc, []string{
		"TIME", "HMGET", "MGET", "HSET", "SET", "PX", "PEXPIRE", "INCRBY", // commands
		"ZREMRANGEBYSCORE", "-inf", "HINCRBY", "ZCARD", "HGET", "ZRANGE", "WITHSCORES", "ZADD", // the window's
		"^([^|]*)|(%d+)|(%d+)$", "^(%d+):(%d+)$", ":", "%.3f", "%.0f", "%d:%d:%d:%d", "", // formats
	})
}

// TestWindowScript holds window.lua to TestAdmitScript's rules (its
// recipients follow the 7 named slots).
func TestWindowScript(t *testing.T) {
	checkScript(t, "window.lua", windowSrc, windowConsts(), windowArgc, []string{
		"TIME", "ZREMRANGEBYSCORE", "-inf", "HINCRBY", "ZREM", "SET", "1", "NX", "PX", "HMGET", "HSET", "ZCARD", "%.17g",
	})
}

// TestUsageScript holds usage.lua to TestAdmitScript's rules.
func TestUsageScript(t *testing.T) {
	checkScript(t, "usage.lua", usageSrc, usageConsts(), 6, []string{"TIME", "HMGET", "HSET", "^(%d+):(%d+)$", ":"})
}

// checkScript checks that src names ARGV slots 1..argc, each once; that
// every UPPER_CASE name it uses is bound by consts (and each of those is
// used); and that its only literals are indexes, small integers and the
// allowed strings.
func checkScript(t *testing.T, name, src string, consts []admitConst, argc int, allowed []string) {
	t.Helper()
	var named []int
	for _, m := range regexp.MustCompile(`ARGV\[(\d+)\]`).FindAllStringSubmatch(src, -1) {
		i, _ := strconv.Atoi(m[1])
		named = append(named, i)
	}
	slices.Sort(named)
	for i, n := range named {
		if n != i+1 || len(named) != argc {
			t.Fatalf("%s names ARGV slots %v; want 1..%d, each once", name, named, argc)
		}
	}

	code := regexp.MustCompile(`--[^\n]*`).ReplaceAllString(src, "")
	bound := map[string]bool{}
	for _, c := range consts {
		if bound[c.name] {
			t.Errorf("constant %s bound twice", c.name)
		}
		bound[c.name] = true
	}
	used := map[string]bool{}
	noStrings := regexp.MustCompile(`'[^']*'`).ReplaceAllString(code, "")
	for _, id := range regexp.MustCompile(`\b[A-Z][A-Z0-9_]+\b`).FindAllString(noStrings, -1) {
		used[id] = true
	}
	delete(used, "ARGV")
	delete(used, "KEYS")
	for id := range used {
		if !bound[id] {
			t.Errorf("%s uses %s, which its constants do not bind", name, id)
		}
	}
	for id := range bound {
		if !used[id] {
			t.Errorf("its constants bind %s, which %s does not use", id, name)
		}
	}

	code = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(code, "[]") // ARGV slots, reply fields
	for _, n := range regexp.MustCompile(`[^\w.](\d+(\.\d+)?)`).FindAllStringSubmatch(code, -1) {
		if v, _ := strconv.ParseFloat(n[1], 64); v > 3 {
			t.Errorf("number %s in %s: bind it as a constant", n[1], name)
		}
	}
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(code, -1) {
		if !slices.Contains(allowed, m[1]) {
			t.Errorf("string '%s' in %s: bind it as a constant", m[1], name)
		}
	}
}

func mustKeyer(t *testing.T) *store.Keyer {
	k, err := store.NewKeyer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestParseAdmitRemaining: the script's remaining figures, "h:d:fh:fd" or
// empty, are read strictly.
func TestParseAdmitRemaining(t *testing.T) {
	answer := func(rem any) []any { return []any{int64(1), "", int64(0), int64(0), []any{}, int64(0), []any{}, rem} }
	d, err := parseAdmit("t", []string{"a@b.example"}, answer("7:-1:0:12"))
	if want := (store.Remaining{Known: true, Hour: 7, Day: store.Unlimited, FirstHour: 0, FirstDay: 12}); err != nil || d.Remaining != want {
		t.Fatalf("Remaining = %+v, %v; want %+v", d.Remaining, err, want)
	}
	if d, err := parseAdmit("t", []string{"a@b.example"}, answer("")); err != nil || d.Remaining != (store.Remaining{}) {
		t.Fatalf("empty: %+v, %v", d.Remaining, err)
	}
	for _, bad := range []any{"1:2:3", "1:2:3:4:5", "1:2:3:", "a:1:1:1", "-2:1:1:1", "1::1:1", int64(1), []any{}} {
		if _, err := parseAdmit("t", []string{"a@b.example"}, answer(bad)); err == nil {
			t.Errorf("remaining %#v accepted", bad)
		}
	}
}
