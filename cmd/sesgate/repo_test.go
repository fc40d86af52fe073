package main

import (
	"bufio"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/server"
)

// TestREADMEPolicyExample keeps the README's complete policy example valid.
func TestREADMEPolicyExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "## Policy file")
	if !ok {
		t.Fatal("README has no policy file section")
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(after)
	if m == nil {
		t.Fatal("no yaml example in the policy file section")
	}
	p, err := config.Parse([]byte(m[1]))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	tenants, entries := p.Build()
	if len(tenants) < 2 || len(entries) < 1 {
		t.Fatalf("README example builds %d tenants, %d tokens", len(tenants), len(entries))
	}
}

// TestPackageDocs requires a package doc comment on every package.
func TestPackageDocs(t *testing.T) {
	root := "../.."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			return nil
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			return err
		}
		for name, pkg := range pkgs {
			documented := false
			for _, f := range pkg.Files {
				documented = documented || (f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "")
			}
			if !documented {
				t.Errorf("package %s in %s has no doc comment", name, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSystemdUnit checks that the unit's ExecStart is a valid `sesgate serve`
// invocation and that the drain bound fits inside the stop timeout.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("../../deploy/systemd/sesgate.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			kv[k] = v
		}
	}
	args := strings.Fields(kv["ExecStart"])
	if len(args) < 2 || filepath.Base(args[0]) != "sesgate" || args[1] != "serve" {
		t.Fatalf("ExecStart = %q", kv["ExecStart"])
	}
	s, err := server.ParseSettings(args[2:], os.Stderr)
	if err != nil {
		t.Fatalf("ExecStart flags: %v", err)
	}
	if s.Sink != "ses" || s.TLSCert == "" {
		t.Fatalf("unit should send through SES with TLS: %+v", s)
	}
	if kv["User"] == "" || kv["User"] == "root" || kv["NoNewPrivileges"] != "true" {
		t.Fatal("unit must run as a non-root user with NoNewPrivileges")
	}
	stop, err := parseSeconds(kv["TimeoutStopSec"])
	if err != nil || s.ShutdownTimeout.Seconds()+s.ShutdownDelay.Seconds() >= stop {
		t.Fatalf("drain %v + %v must be below TimeoutStopSec %q", s.ShutdownTimeout, s.ShutdownDelay, kv["TimeoutStopSec"])
	}
}

// TestDockerfile checks the image is static and runs as non-root.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/sesgate", "USER 65532:65532", `CMD ["serve"]`} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(s, "AWS_SECRET_ACCESS_KEY") {
		t.Error("Dockerfile must not carry AWS credentials")
	}
}

func parseSeconds(s string) (float64, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s) + "s")
	return d.Seconds(), err
}
