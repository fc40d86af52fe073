// Command testsummary reads the event stream of `go test -json` on stdin
// and prints what a reader of a CI log needs: one result line per package
// (as `go test` prints it), the output of every failed test, the name and
// reason of every skipped test, and a closing line
// "N passed, N failed, N skipped" counting tests and subtests (a package
// that failed outside its tests counts as one failed).
//
// It exits 1 when any test failed or was skipped, when a package failed
// outside its tests (build error, panic, timeout) or when no test ran at
// all: CI must prove what it claims, so a test that skips because a tool
// is missing fails the run. A package without test files is not a skip.
//
// Usage (scripts/test.sh):
//
//	go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

func main() {
	if !summarize(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json), with the build
// events go test adds (build-output, build-fail keyed by ImportPath).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// test is what one test printed and how it ended ("" while running).
type test struct {
	output []string
	result string
}

type pkg struct {
	output []string // printed outside any test
	tests  map[string]*test
	order  []string
}

// summary holds the run's state; packages are printed when they end.
type summary struct {
	w                       io.Writer
	pkgs                    map[string]*pkg
	build                   map[string][]string // build output by import path
	passed, failed, skipped []string            // package.Test; a package that failed outside its tests counts as failed
}

// summarize reads the stream r and writes the report to w; it reports
// whether the run proved everything: tests ran, none failed or skipped.
func summarize(r io.Reader, w io.Writer) bool {
	s := &summary{w: w, pkgs: map[string]*pkg{}, build: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(w, sc.Text()) // not an event: go's own messages
			continue
		}
		s.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "reading the go test -json stream: %v\n", err)
		s.failed = append(s.failed, "(the go test -json stream)")
	}
	for name := range s.pkgs { // a stream cut short: the test binary died
		s.endPackage(name, "fail", 0)
	}
	return s.report()
}

func (s *summary) pkg(name string) *pkg {
	p := s.pkgs[name]
	if p == nil {
		p = &pkg{tests: map[string]*test{}}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) add(e event) {
	switch e.Action {
	case "build-output":
		s.build[e.ImportPath] = append(s.build[e.ImportPath], e.Output)
		return
	case "build-fail":
		return // printed with the package that failed to build
	}
	p := s.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.output = append(p.output, e.Output)
		case "pass", "fail", "skip":
			if e.FailedBuild != "" {
				p.output = append(s.build[e.FailedBuild], p.output...)
			}
			s.endPackage(e.Package, e.Action, e.Elapsed)
		}
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &test{}
		p.tests[e.Test] = t
		p.order = append(p.order, e.Test)
	}
	switch e.Action {
	case "output":
		t.output = append(t.output, e.Output)
	case "pass", "fail", "skip":
		t.result = e.Action
	}
}

// endPackage prints the package's line, and the output of its failed,
// skipped and unfinished tests.
func (s *summary) endPackage(name, result string, elapsed float64) {
	p := s.pkgs[name]
	delete(s.pkgs, name)
	failed := len(s.failed)
	for _, tn := range p.order {
		t := p.tests[tn]
		id := name + "." + tn
		switch t.result {
		case "pass":
			s.passed = append(s.passed, id)
			continue
		case "skip":
			s.skipped = append(s.skipped, id)
		case "":
			t.output = append(t.output, "--- unfinished: "+tn+" (the test binary ended first)\n")
			fallthrough
		default:
			s.failed = append(s.failed, id)
		}
		fmt.Fprint(s.w, strings.Join(t.output, ""))
	}
	switch result {
	case "pass":
		fmt.Fprintf(s.w, "ok  \t%s\t%.3fs\n", name, elapsed)
	case "skip":
		fmt.Fprintf(s.w, "?   \t%s\t[no test files]\n", name)
	default:
		if len(s.failed) == failed {
			s.failed = append(s.failed, name+" (the package, outside its tests)")
		}
		out := strings.Join(p.output, "")
		fmt.Fprint(s.w, out)
		if !strings.Contains(out, "FAIL\t"+name) { // go test's own line
			fmt.Fprintf(s.w, "FAIL\t%s\t%.3fs\n", name, elapsed)
		}
	}
}

func (s *summary) report() bool {
	list := func(title string, names []string) {
		if len(names) > 0 {
			slices.Sort(names)
			fmt.Fprintf(s.w, "\n%s:\n  %s\n", title, strings.Join(names, "\n  "))
		}
	}
	list("failed tests", s.failed)
	list("skipped tests (a skip fails the run: install what the test needs, see scripts/test.sh)", s.skipped)
	ok := len(s.failed) == 0 && len(s.skipped) == 0 && len(s.passed) > 0
	if len(s.passed) == 0 {
		fmt.Fprintln(s.w, "\nno test passed")
	}
	fmt.Fprintf(s.w, "\n%d passed, %d failed, %d skipped\n", len(s.passed), len(s.failed), len(s.skipped))
	return ok
}
