package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/config"
)

// startPolicy is the policy serve starts with: the file's, or the laptop's
// dev tenant.
type startPolicy struct {
	file         *config.Policy // nil: the dev tenant
	path         string         // the file's path
	tenants      []*gateway.Tenant
	entries      []auth.Entry
	devTokenPath string // the dev tenant's token file
	devAWSPath   string // the dev tenant's AWS credentials file
}

// loadPolicy loads the policy file or, without one, sets up the dev tenant.
func loadPolicy(configPath, dataDir string) (*startPolicy, error) {
	if configPath != "" {
		p, err := config.Load(configPath)
		if err != nil {
			return nil, err
		}
		tenants, entries := p.Build()
		return &startPolicy{file: p, path: configPath, tenants: tenants, entries: entries}, nil
	}
	t, e, path, err := devTenant(dataDir)
	if err != nil {
		return nil, err
	}
	return &startPolicy{tenants: []*gateway.Tenant{t}, entries: []auth.Entry{e}, devTokenPath: path}, nil
}

// store is the policy's store section (zero without a policy file).
func (p *startPolicy) store() config.Store {
	if p.file == nil {
		return config.Store{}
	}
	return p.file.Store
}

// devTenant returns the laptop tenant `dev`, allowed to send from any
// address. Its token is minted on first start and kept in <dataDir>/dev-token
// (mode 0600), so it stays the same across restarts.
func devTenant(dataDir string) (*gateway.Tenant, auth.Entry, string, error) {
	t := &gateway.Tenant{ID: "dev", Identities: []string{"*"}}
	path := filepath.Join(dataDir, "dev-token")
	token, err := readOrMintToken(path)
	if err != nil {
		return nil, auth.Entry{}, "", err
	}
	kid, _ := auth.KeyID(token)
	return t, auth.Entry{Record: auth.Record{KeyID: kid, Hash: auth.HashToken(token), Tenant: "dev"}, Tenant: t}, path, nil
}

// readOrMintToken reads a token file, or mints a token into it (0600).
func readOrMintToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if _, ok := auth.KeyID(tok); !ok {
			return "", fmt.Errorf("%s does not hold a sesgate token; delete it to mint a new one", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok := auth.NewToken("").Token
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(tok + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return tok, err
}
