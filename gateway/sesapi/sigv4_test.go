package sesapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/sesgate/sesgate/gateway"
)

const testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

// signed returns a request as a server receives it, signed by the SDK's
// own signer at, after mutate changed the client's request.
func signed(t testing.TB, method, target string, body []byte, at time.Time, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://sesgate.test:8025"+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "SGAWSKABCDEFGHIJ", SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ses", "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	// What the server sees: the same request line, headers and Host.
	in := httptest.NewRequest(method, req.URL.RequestURI(), bytes.NewReader(body))
	in.Host = req.URL.Host
	in.Header = req.Header.Clone()
	in.ContentLength = int64(len(body))
	return in
}

func verifyReq(r *http.Request, body []byte, now time.Time, secret string) *authFailure {
	a, f := parseSigV4(r.Header.Get("Authorization"))
	if f != nil {
		return f
	}
	payload, f := a.checkScope(r, body, "us-east-1", now)
	if f != nil {
		return f
	}
	if !a.verify(r, payload, secret) {
		return &authFailure{authMismatch, "mismatch"}
	}
	return nil
}

// TestSigV4 checks requests signed by the SDK's signer (paths and queries
// that need encoding, repeated and spaced header values) verify, and that
// changing any signed part, the secret, the clock, the region or the
// service fails with the right kind.
func TestSigV4(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"Content":{}}`)
	hdr := map[string]string{"Content-Type": "application/json", "X-Amz-Meta": "a   b  c"}
	for _, target := range []string{"/v2/email/outbound-emails", "/v2/email/a%20b/c+d~e", "/?b=2&a=1&a=0&c=x%20y&d=%2F", "/"} {
		r := signed(t, "POST", target, body, now, hdr)
		if f := verifyReq(r, body, now.Add(4*time.Minute), testSecret); f != nil {
			t.Fatalf("%s: %v", target, f)
		}
	}
	tamper := []struct {
		name   string
		change func(r *http.Request) ([]byte, time.Time, string)
		want   authKind
	}{
		{"body", func(r *http.Request) ([]byte, time.Time, string) {
			return []byte(`{"Content":{"x":1}}`), now, testSecret
		}, authMismatch},
		{"signed header", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("Content-Type", "text/plain")
			return body, now, testSecret
		}, authMismatch},
		{"path", func(r *http.Request) ([]byte, time.Time, string) {
			r.URL.Path, r.URL.RawPath = "/v2/email/account", ""
			return body, now, testSecret
		}, authMismatch},
		{"query", func(r *http.Request) ([]byte, time.Time, string) {
			r.URL.RawQuery = "x=1"
			return body, now, testSecret
		}, authMismatch},
		{"host", func(r *http.Request) ([]byte, time.Time, string) { r.Host = "evil.test"; return body, now, testSecret }, authMismatch},
		{"secret", func(r *http.Request) ([]byte, time.Time, string) { return body, now, strings.Repeat("x", 40) }, authMismatch},
		{"clock behind", func(r *http.Request) ([]byte, time.Time, string) { return body, now.Add(-6 * time.Minute), testSecret }, authExpired},
		{"clock ahead", func(r *http.Request) ([]byte, time.Time, string) { return body, now.Add(6 * time.Minute), testSecret }, authExpired},
		{"region", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/us-east-1/", "/eu-west-1/", 1))
			return body, now, testSecret
		}, authMismatch},
		{"service", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/ses/", "/sqs/", 1))
			return body, now, testSecret
		}, authMismatch},
		{"host unsigned", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=content-length;content-type;host;", "SignedHeaders=content-length;content-type;", 1))
			return body, now, testSecret
		}, authMismatch},
		{"unsigned payload", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("X-Amz-Content-Sha256", unsignedBody)
			return body, now, testSecret
		}, authMismatch},
		{"session token", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("X-Amz-Security-Token", "x")
			return body, now, testSecret
		}, authToken},
		{"no Authorization", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Del("Authorization")
			return body, now, testSecret
		}, authMissing},
		{"malformed Authorization", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
			return body, now, testSecret
		}, authIncomplete},
	}
	for _, tc := range tamper {
		r := signed(t, "POST", "/v2/email/outbound-emails?q=1", body, now, hdr)
		b, at, secret := tc.change(r)
		f := verifyReq(r, b, at, secret)
		if f == nil || f.kind != tc.want {
			t.Errorf("%s: %v, want kind %d", tc.name, f, tc.want)
		}
	}
}

// TestCodeTable: every gateway code has an SES answer in both APIs.
func TestCodeTable(t *testing.T) {
	for _, c := range gateway.Codes() {
		e := fromError(&gateway.Error{Code: c, Msg: "x"})
		if int(c) >= len(codeKinds) || codeKinds[c].v2 == "" || e.Status == 0 || e.V1 == "" || e.V1Status == 0 {
			t.Errorf("code %s has no row: %+v", c, e)
		}
	}
	if e := fromError(gateway.Errorf(gateway.CodeRateLimited, "x")); e.V2 != "TooManyRequestsException" || e.Status != 429 {
		t.Fatalf("rate limited: %+v", e)
	}
}
