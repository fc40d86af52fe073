package admin_test

import (
	"slices"
	"testing"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/internal/admin"
)

// TestMintAWSKey: POST /v1/tokens {"kind":"aws"} mints an AWS key (the
// secret derived from the server key, shown once, never stored), listed
// with its kind and access key id; a rotation mints another AWS key; an
// unknown kind, or aws without a server key, is 400.
func TestMintAWSKey(t *testing.T) {
	keys, _ := auth.NewAWSKeys([]byte("0123456789abcdef0123456789abcdef"))
	e := newEnv(t, func(o *admin.Options) { o.AWSKeys = keys })
	var m admin.Minted
	a := e.call(t, "POST", "/v1/tokens", `{"tenant":"alpha","kind":"aws"}`)
	if a.status != 201 {
		t.Fatalf("mint: %d %s", a.status, a.body)
	}
	a.json(t, &m)
	if m.Token != "" || m.Kind != admin.KindAWS || m.AccessKeyID != auth.AccessKeyID(m.KeyID) || m.SecretAccessKey != keys.Secret(m.AccessKeyID) {
		t.Fatalf("minted %+v", m)
	}
	entries, err := e.be.Entries(t.Context())
	if err != nil || !slices.ContainsFunc(entries, func(x auth.Entry) bool { return x.Record.KeyID == m.KeyID && x.Record.IsAWSKey() }) {
		t.Fatalf("entries %v, %v", entries, err)
	}
	var list struct{ Tokens []admin.TokenInfo }
	e.call(t, "GET", "/v1/tokens", "").json(t, &list)
	if !slices.ContainsFunc(list.Tokens, func(x admin.TokenInfo) bool {
		return x.KeyID == m.KeyID && x.Kind == admin.KindAWS && x.AccessKeyID == m.AccessKeyID
	}) {
		t.Fatalf("list %+v", list)
	}
	var r admin.Minted
	e.call(t, "POST", "/v1/tokens/"+m.KeyID+"/rotate", `{"grace":"1m"}`).json(t, &r)
	if r.Kind != admin.KindAWS || r.SecretAccessKey == "" || r.KeyID == m.KeyID {
		t.Fatalf("rotated %+v", r)
	}
	if a := e.call(t, "POST", "/v1/tokens", `{"tenant":"alpha","kind":"ssh"}`); a.status != 400 || a.errCode(t) != "invalid" {
		t.Fatalf("unknown kind: %d %s", a.status, a.body)
	}
	plain := newEnv(t, nil)
	if a := plain.call(t, "POST", "/v1/tokens", `{"tenant":"alpha","kind":"aws"}`); a.status != 400 || a.errCode(t) != "invalid" {
		t.Fatalf("aws without a server key: %d %s", a.status, a.body)
	}
}

// TestCreateTenantWithAWSKey: POST /v1/tenants?mint_aws_key=true creates
// the tenant with its first AWS key (shown once), next to or without a
// token; without a server key it is refused before the tenant is created.
func TestCreateTenantWithAWSKey(t *testing.T) {
	keys, _ := auth.NewAWSKeys([]byte("0123456789abcdef0123456789abcdef"))
	e := newEnv(t, func(o *admin.Options) { o.AWSKeys = keys })
	a := e.call(t, "POST", "/v1/tenants?mint_token=true&mint_aws_key=true", `{"id": "web-1", "identities": ["@web.example"]}`)
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var c admin.Created
	a.json(t, &c)
	if c.Token == nil || c.Token.Tenant != "web-1" || c.AWSKey == nil || c.AWSKey.Tenant != "web-1" ||
		c.AWSKey.Kind != admin.KindAWS || c.AWSKey.SecretAccessKey != keys.Secret(c.AWSKey.AccessKeyID) {
		t.Fatalf("created: %+v token %+v aws %+v", c, c.Token, c.AWSKey)
	}
	if a := e.call(t, "POST", "/v1/tenants?mint_aws_key=maybe", `{"id": "web-2", "identities": ["*"]}`); a.status != 400 {
		t.Fatalf("mint_aws_key=maybe: %d %s", a.status, a.body)
	}
	plain := newEnv(t, nil)
	if a := plain.call(t, "POST", "/v1/tenants?mint_aws_key=true", `{"id": "web-3", "identities": ["*"]}`); a.status < 400 || a.status >= 500 {
		t.Fatalf("aws without a server key: %d %s", a.status, a.body)
	}
	if a := plain.call(t, "GET", "/v1/tenants/web-3/entry", ""); a.status != 404 {
		t.Fatalf("the refused tenant exists: %d %s", a.status, a.body)
	}
}
