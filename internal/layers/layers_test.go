// Package layers_test checks the module's layering: every import of a
// non-test file points down (or within its own layer) in
// gateway <- auth <- limiter <- internal <- cmd.
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

// order lists the layers, lowest first.
var order = []string{"gateway", "auth", "limiter", "internal", "cmd"}

const root = "../.."

// TestImportsPointDown parses every non-test Go file of the module and
// fails for each import of a higher layer, and for a package outside the
// layers (a new top-level directory must be given its place here). The
// helper programs under scripts/ are tooling: they may import no package of
// the module.
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
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		tool := strings.HasPrefix(pkg, "scripts/")
		from := layer(pkg)
		if from < 0 && !tool {
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
			if tool {
				t.Errorf("%s imports %s: the scripts' helper programs stand outside the product and import none of it", p, ip)
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
