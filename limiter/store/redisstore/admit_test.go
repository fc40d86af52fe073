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

// TestAdmitArgs checks that admitArgs and admit.lua agree on the ARGV
// layout, and that the script takes its constants from Go: it names each
// of the admitArgc slots once, and its only literals are indexes, small
// integers, Redis command names and the stored values' formats.
func TestAdmitArgs(t *testing.T) {
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
		if n != i+1 {
			t.Fatalf("the script names ARGV slots %v; want 1..%d, each once", named, admitArgc)
		}
	}
	if len(named) != admitArgc {
		t.Fatalf("the script names %d ARGV slots; want %d", len(named), admitArgc)
	}

	code := regexp.MustCompile(`--[^\n]*`).ReplaceAllString(admitSrc, "")
	code = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(code, "[]") // ARGV slots, reply fields
	for _, n := range regexp.MustCompile(`[^\w.](\d+(\.\d+)?)`).FindAllStringSubmatch(code, -1) {
		if v, _ := strconv.ParseFloat(n[1], 64); v > 3 {
			t.Errorf("number %s in admit.lua: pass it from admitArgs", n[1])
		}
	}
	allowed := []string{
		"TIME", "HMGET", "MGET", "HSET", "SET", "PX", "PEXPIRE", "INCRBY", // commands
		"^([^|]*)|(%d+)|(%d+)$", "^(%d+):(%d+)$", ":", "%.3f", "%.0f", "", // formats
	}
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(code, -1) {
		if !slices.Contains(allowed, m[1]) {
			t.Errorf("string '%s' in admit.lua: pass it from admitArgs", m[1])
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
