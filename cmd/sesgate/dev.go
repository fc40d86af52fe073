package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
)

// devTenant returns the laptop tenant `dev`, allowed to send from any
// address. Its token is minted on first start and kept in <dataDir>/dev-token
// (mode 0600), so it stays the same across restarts.
func devTenant(dataDir string) (*gateway.Tenant, auth.Entry, string, error) {
	t := &gateway.Tenant{ID: "dev", Identities: []string{"*"}}
	path := filepath.Join(dataDir, "dev-token")
	b, err := os.ReadFile(path)
	var token string
	switch {
	case err == nil:
		token = strings.TrimSpace(string(b))
		if _, ok := auth.KeyID(token); !ok {
			return nil, auth.Entry{}, "", fmt.Errorf("%s does not hold a sesgate token; delete it to mint a new one", path)
		}
	case errors.Is(err, os.ErrNotExist):
		token = auth.NewToken("dev").Token
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, auth.Entry{}, "", err
		}
		_, err = f.WriteString(token + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, auth.Entry{}, "", err
		}
	default:
		return nil, auth.Entry{}, "", err
	}
	kid, _ := auth.KeyID(token)
	return t, auth.Entry{Record: auth.Record{KeyID: kid, Hash: auth.HashToken(token), Tenant: "dev"}, Tenant: t}, path, nil
}
