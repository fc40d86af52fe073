package config

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds policy documents. The seed corpus in
// testdata/fuzz/FuzzParse holds the policies of the README, of the
// Kubernetes manifests under deploy/ and of testdata/*.yml. Properties:
// never a panic; a refusal is an *Error listing problems (or invalid YAML,
// or ErrEmpty);
// an accepted policy builds its tenants and breaker configs, holds only
// finite numbers, and written back as YAML parses again to the same
// document.
func FuzzParse(f *testing.F) {
	f.Add([]byte("tenants:\n  - id: a\n    identities: [\"*\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			var pe *Error
			if p != nil || (!errors.As(err, &pe) && !errors.Is(err, ErrEmpty) && !bytes.HasPrefix([]byte(err.Error()), []byte("invalid YAML"))) {
				t.Fatalf("refusal %T %v with policy %v", err, err, p)
			}
			if pe != nil && len(pe.Problems) == 0 {
				t.Fatal("*Error without problems")
			}
			return
		}
		tenants, entries := p.Build()
		if len(tenants) != len(p.Tenants) {
			t.Fatalf("%d tenants built from %d", len(tenants), len(p.Tenants))
		}
		for _, e := range entries {
			if e.Tenant == nil || e.Record.KeyID == "" {
				t.Fatalf("entry %+v", e)
			}
		}
		checkFinite(t, "policy", reflect.ValueOf(p))
		for i := range p.Tenants {
			c := p.Tenants[i].BreakerConfig()
			checkFinite(t, "tenant breaker", reflect.ValueOf(&c))
		}
		if c := p.AccountConfig(); c != nil {
			checkFinite(t, "account breaker", reflect.ValueOf(c))
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		p2, err := Parse(out)
		if err != nil {
			t.Fatalf("a valid policy written back is refused: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(p2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("written back differently:\n%s\n---\n%s", out, out2)
		}
	})
}

// checkFinite fails on a NaN or infinite float64 anywhere in v.
func checkFinite(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			checkFinite(t, path, v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			checkFinite(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			checkFinite(t, path, v.Index(i))
		}
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("%s = %v accepted", path, f)
		}
	}
}
