package adminclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/admin"
	"github.com/sesgate/sesgate/internal/admin/adminclient"
	"github.com/sesgate/sesgate/internal/admin/storeadmin"
	"github.com/sesgate/sesgate/limiter/breaker"
	"github.com/sesgate/sesgate/limiter/guard"
	"github.com/sesgate/sesgate/limiter/store/boltstore"
)

// fixture serves the admin API over the real backend: storeadmin and the
// breakers' guard on the embedded store.
type fixture struct {
	st    *boltstore.Store
	be    *storeadmin.Backend
	addr  string
	token string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tenants := []*gateway.Tenant{{ID: "alpha", Limits: gateway.Limits{PerHour: 500}}, {ID: "beta"}}
	g, err := guard.New(guard.Options{Store: st, Config: func(id string) (breaker.Config, bool) {
		return breaker.TenantDefaults(), slices.ContainsFunc(tenants, func(t *gateway.Tenant) bool { return t.ID == id })
	}})
	if err != nil {
		t.Fatal(err)
	}
	be, err := storeadmin.New(storeadmin.Options{Store: st, Breakers: g}, &storeadmin.Policy{Tenants: tenants})
	if err != nil {
		t.Fatal(err)
	}
	adm := auth.NewToken("ops")
	h, err := admin.New(admin.Options{
		Tokens: be.Tokens(), Tenants: be.Tenants(), Breakers: g, Suppressions: be.Suppressions(), Audit: be.Audit(),
		AdminTokens: []admin.AdminToken{{KeyID: adm.Record.KeyID, Hash: adm.Record.Hash, Name: "ops"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{st: st, be: be, addr: srv.URL, token: adm.Token}
}

// authenticate returns the tenant of a sending token when the gateway
// would accept it now.
func (f *fixture) authenticate(t *testing.T, tok string) (string, bool) {
	t.Helper()
	entries, err := f.be.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ten, err := auth.NewRegistry(auth.RegistryOptions{Entries: entries}).Authenticate(context.Background(), "", tok, netip.Addr{})
	if err != nil {
		return "", false
	}
	return ten.ID, true
}

// frozen reports whether tenant id may not send: its switch or the global one.
func (f *fixture) frozen(t *testing.T, id string) bool {
	t.Helper()
	all, err := f.st.Frozen(context.Background(), admin.GlobalTenant)
	if err != nil {
		t.Fatal(err)
	}
	one, err := f.st.Frozen(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return all || one
}

// run runs the CLI with the token in the environment.
func (f *fixture) run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	env := map[string]string{"SESGATE_ADMIN_ADDR": f.addr, "SESGATE_ADMIN_TOKEN": f.token}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := adminclient.Run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCLI(t *testing.T) {
	f := setup(t)
	csvPath := filepath.Join(t.TempDir(), "list.csv")
	if err := os.WriteFile(csvPath, []byte("address,tenant\nok@example.com,alpha\nbroken\nalso-ok@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		out     []string // substrings of stdout
		errOut  []string // substrings of stderr
		err     string   // substring of the error; "" for success
		usage   bool     // error is a usage error
		backend func(t *testing.T)
	}{
		{name: "tenants list", args: []string{"tenants", "list"}, out: []string{"TENANT", "alpha", "beta", "sending"}},
		{name: "tenants status", args: []string{"tenants", "status", "alpha"}, out: []string{"this hour", "0 of 500"}},
		{name: "freeze with flag after the id", args: []string{"tenants", "freeze", "beta", "--reason", "leak"}, out: []string{"beta: frozen"},
			backend: func(t *testing.T) {
				if !f.frozen(t, "beta") || f.frozen(t, "alpha") {
					t.Fatal("beta not frozen, or alpha frozen")
				}
			}},
		{name: "freeze unknown", args: []string{"tenants", "freeze", "nobody"}, err: "not_found (HTTP 404)"},
		{name: "unfreeze", args: []string{"tenants", "unfreeze", "beta"}, out: []string{"beta: sending"},
			backend: func(t *testing.T) {
				if f.frozen(t, "beta") {
					t.Fatal("beta still frozen")
				}
			}},
		{name: "freeze-all", args: []string{"freeze-all", "--reason", "incident"}, out: []string{"all sending: frozen"},
			backend: func(t *testing.T) {
				if !f.frozen(t, "alpha") {
					t.Fatal("not frozen")
				}
			}},
		{name: "tenants list shows global", args: []string{"tenants", "list"}, out: []string{"ALL SENDING FROZEN: incident"}},
		{name: "unfreeze-all", args: []string{"unfreeze-all"}, out: []string{"all sending: sending"}},
		{name: "breaker force-open", args: []string{"breaker", "force-open", "alpha", "--reason", "drill"}, out: []string{"forced_open", "drill"}},
		{name: "breaker list", args: []string{"breaker", "list"}, out: []string{"alpha", "forced_open", "drill"}},
		{name: "breaker reset", args: []string{"breaker", "reset", "alpha"}, out: []string{"state", "closed"}},
		{name: "suppress add", args: []string{"suppress", "add", "X@Example.com", "--tenant", "alpha"}, out: []string{"suppressed x@example.com on the alpha list (manual)"}},
		{name: "suppress import all", args: []string{"suppress", "import", csvPath}, err: "invalid_csv", errOut: []string{"line 3: address \"broken\""}},
		{name: "suppress import valid", args: []string{"suppress", "import", "--mode", "valid", csvPath}, out: []string{"imported 2, rejected 1"}, errOut: []string{"line 3:"}},
		{name: "suppress import stdin", args: []string{"suppress", "import", "-"}, stdin: "in@example.com\n", out: []string{"imported 1, rejected 0"}},
		{name: "suppress list", args: []string{"suppress", "list", "--tenant", "alpha"}, out: []string{"ok@example.com", "x@example.com"}},
		{name: "suppress list global prefix", args: []string{"suppress", "list", "--global", "--prefix", "al"}, out: []string{"also-ok@example.com"}},
		{name: "suppress export", args: []string{"suppress", "export"}, out: []string{"address,tenant,reason,added,expires\nalso-ok@example.com,,manual,"}},
		{name: "suppress remove", args: []string{"suppress", "remove", "x@example.com", "--tenant", "alpha"}, out: []string{"removed x@example.com from the alpha list"}},
		{name: "suppress remove again", args: []string{"suppress", "remove", "x@example.com", "--tenant", "alpha"}, err: "HTTP 404"},
		{name: "audit", args: []string{"audit"}, out: []string{"suppression.remove", "tenant.freeze", "error"}},
		{name: "unknown command", args: []string{"frobnicate"}, err: "unknown command", usage: true},
		{name: "missing argument", args: []string{"tenants", "freeze"}, err: "want 1 argument", usage: true},
		{name: "mint without tenant", args: []string{"tokens", "mint"}, err: "--tenant is required", usage: true},
		{name: "bad flag", args: []string{"audit", "--limit", "x"}, usage: true, err: "invalid value"},
		{name: "wrong token", args: []string{"--token", auth.NewToken("x").Token, "tenants", "list"}, err: "unauthorized (HTTP 401)"},
		{name: "bad address", args: []string{"--addr", "ftp://x", "tenants", "list"}, err: "want http(s)", usage: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := f.run(t, tc.stdin, tc.args...)
			if tc.err == "" && err != nil {
				t.Fatalf("error %v; stderr %s", err, errOut)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if got := errors.Is(err, adminclient.ErrUsage); got != tc.usage {
				t.Fatalf("usage error %v, want %v (%v)", got, tc.usage, err)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Fatalf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.errOut {
				if !strings.Contains(errOut, s) {
					t.Fatalf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if tc.backend != nil {
				tc.backend(t)
			}
		})
	}
}

func TestCLITokens(t *testing.T) {
	f := setup(t)
	out, errOut, err := f.run(t, "", "tokens", "mint", "--tenant", "alpha")
	if err != nil {
		t.Fatal(err, errOut)
	}
	tok := strings.TrimSpace(out)
	kid, ok := auth.KeyID(tok)
	if !ok || strings.Count(out, "\n") != 1 {
		t.Fatalf("mint printed %q", out)
	}
	if tenant, ok := f.authenticate(t, tok); !ok || tenant != "alpha" {
		t.Fatal("minted token refused")
	}
	if !strings.Contains(errOut, "key id "+kid) {
		t.Fatalf("stderr %q", errOut)
	}

	out, _, err = f.run(t, "", "tokens", "list", "--json")
	var list struct{ Tokens []admin.TokenInfo }
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Tokens) != 1 || list.Tokens[0].KeyID != kid {
		t.Fatalf("list --json: %v %s", err, out)
	}
	if strings.Contains(out, tok) {
		t.Fatal("token list shows the token")
	}

	out, errOut, err = f.run(t, "", "tokens", "rotate", kid, "--grace", "10m")
	if err != nil {
		t.Fatal(err)
	}
	newTok := strings.TrimSpace(out)
	if _, ok := f.authenticate(t, newTok); !ok || !strings.Contains(errOut, "old key id "+kid+" is accepted until") {
		t.Fatalf("rotate: %q %q", out, errOut)
	}
	newKid, _ := auth.KeyID(newTok)
	if out, _, err = f.run(t, "", "tokens", "revoke", newKid); err != nil || !strings.Contains(out, "revoked "+newKid) {
		t.Fatalf("revoke: %v %s", err, out)
	}
	if _, ok := f.authenticate(t, newTok); ok {
		t.Fatal("revoked token accepted")
	}
	out, _, _ = f.run(t, "", "tokens", "list")
	if !strings.Contains(out, "expires ") || !strings.Contains(out, "revoked ") {
		t.Fatalf("list:\n%s", out)
	}
}

func TestCLINoToken(t *testing.T) {
	var out, errOut bytes.Buffer
	err := adminclient.Run(context.Background(), []string{"tenants", "list"}, func(string) string { return "" }, nil, &out, &errOut)
	if !errors.Is(err, adminclient.ErrUsage) || !strings.Contains(err.Error(), "SESGATE_ADMIN_TOKEN") {
		t.Fatalf("err %v", err)
	}
}
