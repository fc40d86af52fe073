// Package layers_test checks the module's layering: every import points
// down (or within its own layer) in gateway <- auth <- limiter <- internal
// <- cmd <- deploy; test files may also import the test servers of testServers.
package layers_test

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// order lists the layers, lowest first. deploy is the deploy module
// (deploy/go.mod: the Helm chart's and the monitoring files' tests, a module
// of its own to keep Helm and Kubernetes out of this go.mod), on top: it may
// import any package of this module, none may import it.
var order = []string{"gateway", "auth", "limiter", "internal", "cmd", "deploy"}

// testServers are the packages a test file of any layer may import: local
// stand-ins for SES, SQS and Redis.
var testServers = []string{"internal/sestest", "internal/sestest/sqstest", "internal/redistest"}

const root = "../.."

// TestImportsPointDown parses every Go file of the module, tests
// included, and fails for each import of a higher layer (but a test file's
// of testServers), and for a package outside the layers (a new top-level
// directory must be given its place here; Go code lives only under the
// layers, the scripts' helper program included: internal/testsummary).
func TestImportsPointDown(t *testing.T) {
	module := modulePath(t)
	layer := func(pkg string) int { // pkg relative to the module root
		top, _, _ := strings.Cut(pkg, "/")
		return slices.Index(order, top)
	}
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		test := strings.HasSuffix(p, "_test.go")
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		from := layer(pkg)
		if from < 0 {
			t.Errorf("%s: package %s is in no layer of %v", p, pkg, order)
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			dep, ok := strings.CutPrefix(ip, module+"/")
			if !ok {
				continue
			}
			if test && slices.Contains(testServers, dep) {
				continue
			}
			if to := layer(dep); to > from {
				t.Errorf("%s imports %s: %s may not import %s (layers, lowest first: %v)", p, ip, order[from], order[to], order)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d files checked: is %s the module root?", checked, root)
	}
}

// modulePath reads the module path from go.mod.
func modulePath(t *testing.T) string {
	t.Helper()
	f, err := os.Open(path.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}
