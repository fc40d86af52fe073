package main

import (
	"strings"
	"testing"
)

// Event lines as `go test -json` (Go 1.26) writes them, trimmed to the
// fields testsummary reads.
const (
	passA = `{"Action":"start","Package":"ex/a"}
{"Action":"run","Package":"ex/a","Test":"TestPass"}
{"Action":"run","Package":"ex/a","Test":"TestPass/sub"}
{"Action":"output","Package":"ex/a","Test":"TestPass/sub","Output":"=== RUN   TestPass/sub\n"}
{"Action":"pass","Package":"ex/a","Test":"TestPass/sub","Elapsed":0}
{"Action":"pass","Package":"ex/a","Test":"TestPass","Elapsed":0}
{"Action":"output","Package":"ex/a","Output":"ok  \tex/a\t0.015s\n"}
{"Action":"pass","Package":"ex/a","Elapsed":0.015}
`
	noTests = `{"Action":"start","Package":"ex/b"}
{"Action":"output","Package":"ex/b","Output":"?   \tex/b\t[no test files]\n"}
{"Action":"skip","Package":"ex/b","Elapsed":0}
`
	skipC = `{"Action":"start","Package":"ex/c"}
{"Action":"run","Package":"ex/c","Test":"TestRedis"}
{"Action":"output","Package":"ex/c","Test":"TestRedis","Output":"    c_test.go:4: redis-server not installed\n"}
{"Action":"skip","Package":"ex/c","Test":"TestRedis","Elapsed":0}
{"Action":"run","Package":"ex/c","Test":"TestOther"}
{"Action":"pass","Package":"ex/c","Test":"TestOther","Elapsed":0}
{"Action":"pass","Package":"ex/c","Elapsed":0.01}
`
	failD = `{"Action":"start","Package":"ex/d"}
{"Action":"run","Package":"ex/d","Test":"TestFail"}
{"Action":"run","Package":"ex/d","Test":"TestFail/bad"}
{"Action":"output","Package":"ex/d","Test":"TestFail/bad","Output":"    d_test.go:5: boom\n"}
{"Action":"fail","Package":"ex/d","Test":"TestFail/bad","Elapsed":0}
{"Action":"fail","Package":"ex/d","Test":"TestFail","Elapsed":0}
{"Action":"output","Package":"ex/d","Output":"FAIL\tex/d\t0.015s\n"}
{"Action":"fail","Package":"ex/d","Elapsed":0.015}
`
	buildE = `{"ImportPath":"ex/e [ex/e.test]","Action":"build-output","Output":"e/e_test.go:3:33: undefined: undefined\n"}
{"ImportPath":"ex/e [ex/e.test]","Action":"build-fail"}
{"Action":"start","Package":"ex/e"}
{"Action":"output","Package":"ex/e","Output":"FAIL\tex/e [build failed]\n"}
{"Action":"fail","Package":"ex/e","Elapsed":0,"FailedBuild":"ex/e [ex/e.test]"}
`
	// a test binary that timed out: the running test never ends
	timeoutF = `{"Action":"start","Package":"ex/f"}
{"Action":"run","Package":"ex/f","Test":"TestHang"}
{"Action":"output","Package":"ex/f","Test":"TestHang","Output":"panic: test timed out after 3s\n"}
{"Action":"fail","Package":"ex/f","Elapsed":3}
`
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		ok     bool
		last   string
		want   []string // in the report
		not    []string // not in the report
	}{
		{name: "all pass, a package without tests", stream: passA + noTests, ok: true,
			last: "2 passed, 0 failed, 0 skipped", want: []string{"ok  \tex/a\t0.015s", "?   \tex/b\t[no test files]"},
			not: []string{"=== RUN"}},
		{name: "a skipped test fails the run", stream: passA + skipC,
			last: "3 passed, 0 failed, 1 skipped", want: []string{"redis-server not installed", "skipped tests", "  ex/c.TestRedis"}},
		{name: "failed test and subtest", stream: passA + failD,
			last: "2 passed, 2 failed, 0 skipped", want: []string{"boom", "  ex/d.TestFail\n  ex/d.TestFail/bad", "FAIL\tex/d\t0.015s"}},
		{name: "build failure counts as one failed", stream: passA + buildE,
			last: "2 passed, 1 failed, 0 skipped", want: []string{"undefined: undefined", "ex/e (the package, outside its tests)"}},
		{name: "unfinished test", stream: passA + timeoutF,
			last: "2 passed, 1 failed, 0 skipped", want: []string{"test timed out", "--- unfinished: TestHang", "  ex/f.TestHang", "FAIL\tex/f\t3.000s"}},
		{name: "stream cut short", stream: passA + `{"Action":"start","Package":"ex/g"}` + "\n" + `{"Action":"run","Package":"ex/g","Test":"TestX"}`,
			last: "2 passed, 1 failed, 0 skipped", want: []string{"  ex/g.TestX"}},
		{name: "nothing ran", stream: noTests, last: "0 passed, 0 failed, 0 skipped", want: []string{"no test passed"}},
		{name: "lines that are not events are kept", stream: "go: downloading x\n" + passA, ok: true,
			last: "2 passed, 0 failed, 0 skipped", want: []string{"go: downloading x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			ok := summarize(strings.NewReader(tt.stream), &b)
			out := b.String()
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if ok != tt.ok || lines[len(lines)-1] != tt.last {
				t.Errorf("ok %v, last line %q; want %v, %q", ok, lines[len(lines)-1], tt.ok, tt.last)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("report has %q", n)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s", out)
			}
		})
	}
}
