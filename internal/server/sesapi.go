package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/gateway/sesapi"
	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/limiter/store"
)

// awsKeysOf returns the deriver of AWS keys' secrets: from
// --aws-key-secret-file, else (no policy file) from <data-dir>/aws-key-secret,
// created on first start. With a policy file and no server key, AWS keys
// are off, and a policy that lists some is refused.
func awsKeysOf(s *Settings, pol *startPolicy) (*auth.AWSKeys, error) {
	switch {
	case s.AWSKeySecretFile != "":
		return auth.LoadAWSKeys(s.AWSKeySecretFile)
	case pol.file == nil:
		return auth.LoadOrCreateAWSKeys(filepath.Join(s.DataDir, "aws-key-secret"))
	}
	return nil, checkAWSKeys(pol.file, nil)
}

// checkAWSKeys refuses a policy with AWS keys when there is no server key:
// they could never authenticate.
func checkAWSKeys(p *config.Policy, keys *auth.AWSKeys) error {
	if keys == nil && p.HasAWSKeys() {
		return errors.New("the policy file has AWS access keys (aws_access_key_id) but no server key: set --aws-key-secret-file")
	}
	return nil
}

// devAWSKey gives the laptop's dev tenant an AWS key, kept in
// <dataDir>/dev-aws-credentials (mode 0600) in the AWS shared credentials
// file format, profile "sesgate", so that it stays the same across
// restarts. A file whose secret no longer matches the server key is
// rewritten.
func devAWSKey(dataDir string, keys *auth.AWSKeys, t *gateway.Tenant) (auth.Entry, string, error) {
	path := filepath.Join(dataDir, "dev-aws-credentials")
	var akid string
	if b, err := os.ReadFile(path); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "aws_access_key_id" {
				akid = strings.TrimSpace(v)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return auth.Entry{}, "", err
	}
	kid, ok := auth.ParseAccessKeyID(akid)
	if !ok {
		m := keys.New(t.ID)
		akid, kid = m.AccessKeyID, m.Record.KeyID
	}
	body := fmt.Sprintf("[sesgate]\naws_access_key_id = %s\naws_secret_access_key = %s\n", akid, keys.Secret(akid))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return auth.Entry{}, "", err
	}
	return auth.Entry{Record: auth.Record{KeyID: kid, Hash: auth.AWSKeyMarker(kid), Tenant: t.ID}, Tenant: t}, path, nil
}

// storeUsage reads a tenant's recipients of the current UTC day.
type storeUsage struct {
	st      store.Store
	timeout time.Duration
}

func (u storeUsage) SentToday(ctx context.Context, tenant string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	us, err := u.st.Usage(ctx, tenant)
	return us.Day, err
}

// sesAPIOptions build the SES API handler once the front ends' memory
// budget exists.
type sesAPIOptions struct {
	Pipeline  *gateway.Pipeline
	Keys      sesapi.Keys
	Usage     sesapi.Usage
	Region    string
	PerTenant int
	Logger    *slog.Logger
}

func (o sesAPIOptions) handler(budget *gateway.MemBudget) (http.Handler, error) {
	return sesapi.New(sesapi.Options{Pipeline: o.Pipeline, Keys: o.Keys, Usage: o.Usage, Region: o.Region,
		Budget: budget, MaxRequestsPerTenant: o.PerTenant, Logger: o.Logger})
}

// withSESAPI routes the SES API's paths to ses, the rest to api.
func withSESAPI(api, ses http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sesapi.Handles(r) {
			ses.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
