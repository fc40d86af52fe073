package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a signing secret: whsec_ then the base64 of the key.
const SecretPrefix = "whsec_"

// Bounds of a signing key (decoded) and of the secrets of one webhook.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
	MaxSecrets     = 4
)

// ParseSecrets reads the signing secrets of one webhook: whsec_<base64>
// values separated by white space (several during a rotation: every
// delivery is signed with each). It returns the decoded keys.
func ParseSecrets(text string) ([][]byte, error) {
	fields := strings.Fields(text)
	switch {
	case len(fields) == 0:
		return nil, errors.New("no secret (want whsec_ followed by base64)")
	case len(fields) > MaxSecrets:
		return nil, fmt.Errorf("%d secrets, want at most %d", len(fields), MaxSecrets)
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		b64, ok := strings.CutPrefix(f, SecretPrefix)
		if !ok {
			return nil, fmt.Errorf("secret %d does not start with %s", i+1, SecretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("secret %d: not base64 after %s", i+1, SecretPrefix)
		}
		if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
			return nil, fmt.Errorf("secret %d has %d bytes, want %d to %d", i+1, len(key), MinSecretBytes, MaxSecretBytes)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// Sign returns the webhook-signature header value: "v1,<base64 of
// HMAC-SHA256(key, id.timestamp.body)>" for each key, space-separated.
func Sign(keys [][]byte, id string, ts time.Time, body []byte) string {
	content := make([]byte, 0, len(id)+len(body)+24)
	content = append(content, id...)
	content = append(content, '.')
	content = strconv.AppendInt(content, ts.Unix(), 10)
	content = append(content, '.')
	content = append(content, body...)
	sigs := make([]string, len(keys))
	for i, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write(content)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	return strings.Join(sigs, " ")
}
