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
// layout, and that the script takes its constants from Go: every UPPER_CASE
// name it uses is bound by admitConsts (and each of those is used), and its
// only literals are indexes, small integers, Redis command names and the
// stored values' formats.
func TestAdmitScript(t *testing.T) {
	s := &Store{keyer: mustKeyer(t), knownTTL: time.Hour, sentTTL: time.Hour}
	req := store.AdmitRequest{Tenant: "t", Recipients: []string{"a@b.example", "c@d.example"},
		Limits: gateway.Limits{Rate: 1, FirstContactPerDay: 1, PerDomainRate: 1, Shadow: []string{gateway.LimitPerDay}}}
	keys, argv := s.admitArgs(req, req.Recipients)
	if len(keys) != 3 || len(argv) != admitArgc+3*len(req.Recipients) {
		t.Fatalf("%d keys, %d args; want 3 and %d", len(keys), len(argv), admitArgc+3*len(req.Recipients))
	}

	var named []int
	for _, m := range regexp.MustCompile(`ARGV\[(\d+)\]`).FindAllStringSubmatch(admitSrc, -1) {
		i, _ := strconv.Atoi(m[1])
		named = append(named, i)
	}
	slices.Sort(named)
	for i, n := range named {
		if n != i+1 || len(named) != admitArgc {
			t.Fatalf("the script names ARGV slots %v; want 1..%d, each once", named, admitArgc)
		}
	}

	code := regexp.MustCompile(`--[^\n]*`).ReplaceAllString(admitSrc, "")
	bound := map[string]bool{}
	for _, c := range admitConsts() {
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
			t.Errorf("admit.lua uses %s, which admitConsts does not bind", id)
		}
	}
	for id := range bound {
		if !used[id] {
			t.Errorf("admitConsts binds %s, which admit.lua does not use", id)
		}
	}

	code = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(code, "[]") // ARGV slots, reply fields
	for _, n := range regexp.MustCompile(`[^\w.](\d+(\.\d+)?)`).FindAllStringSubmatch(code, -1) {
		if v, _ := strconv.ParseFloat(n[1], 64); v > 3 {
			t.Errorf("number %s in admit.lua: bind it in admitConsts", n[1])
		}
	}
	allowed := []string{
		"TIME", "HMGET", "MGET", "HSET", "SET", "PX", "PEXPIRE", "INCRBY", // commands
		"^([^|]*)|(%d+)|(%d+)$", "^(%d+):(%d+)$", ":", "%.3f", "%.0f", "", // formats
	}
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(code, -1) {
		if !slices.Contains(allowed, m[1]) {
			t.Errorf("string '%s' in admit.lua: bind it in admitConsts", m[1])
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
