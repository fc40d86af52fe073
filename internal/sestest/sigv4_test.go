package sestest

import (
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	const sig = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		header  string
		wantErr bool
		want    authHeader
	}{
		{"sdk form", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + sig,
			false, authHeader{AccessKeyID: "AK", Date: "20250101", Region: "us-east-1", Service: "ses", SignedHeaders: []string{"host", "x-amz-date"}, Signature: sig}},
		{"no spaces", "AWS4-HMAC-SHA256 Credential=AK/20250101/eu-west-1/ses/aws4_request,SignedHeaders=host,Signature=" + sig,
			false, authHeader{AccessKeyID: "AK", Date: "20250101", Region: "eu-west-1", Service: "ses", SignedHeaders: []string{"host"}, Signature: sig}},
		{"other algorithm", "AWS4-HMAC-SHA512 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=" + sig, true, authHeader{}},
		{"missing signature", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host", true, authHeader{}},
		{"short scope", "AWS4-HMAC-SHA256 Credential=AK/20250101/ses/aws4_request, SignedHeaders=host, Signature=" + sig, true, authHeader{}},
		{"bad terminal", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws5_request, SignedHeaders=host, Signature=" + sig, true, authHeader{}},
		{"uppercase hex", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=" + strings.ToUpper(sig), true, authHeader{}},
		{"unsorted headers", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=x-amz-date;host, Signature=" + sig, true, authHeader{}},
		{"duplicate headers", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host;host, Signature=" + sig, true, authHeader{}},
		{"unknown parameter", "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=" + sig + ", Extra=1", true, authHeader{}},
		{"too long", "AWS4-HMAC-SHA256 Credential=" + strings.Repeat("A", maxAuthHeader), true, authHeader{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAuthorization(tt.header)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if err.Status != 400 || err.Type != "IncompleteSignatureException" {
					t.Errorf("error answer %d %s", err.Status, err.Type)
				}
				return
			}
			if got.AccessKeyID != tt.want.AccessKeyID || got.Date != tt.want.Date || got.Region != tt.want.Region ||
				got.Service != tt.want.Service || strings.Join(got.SignedHeaders, ";") != strings.Join(tt.want.SignedHeaders, ";") ||
				got.Signature != tt.want.Signature {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestCanonicalQueryAndPath(t *testing.T) {
	tests := []struct {
		name, in, want string
		path           bool
	}{
		{"empty query", "", "", false},
		{"sorted by key then value", "b=2&a=y&a=x", "a=x&a=y&b=2", false},
		{"space as %20", "a=x+y&c=%7E", "a=x%20y&c=~", false},
		{"plus sign kept", "a=%2B", "a=%2B", false},
		{"plain path", "/v2/email/account", "/v2/email/account", true},
		{"escaped path escaped again", "/v2/a%20b", "/v2/a%2520b", true},
		{"empty path", "", "/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := canonicalQuery(tt.in)
			if tt.path {
				got = escapePath(tt.in)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ses/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("AWS4-HMAC-SHA256 Credential=,,,=")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			if a != nil || err.Status != 400 {
				t.Fatalf("error with result %v or status %d", a, err.Status)
			}
			return
		}
		if len(a.Signature) != 64 || a.AccessKeyID == "" || len(a.SignedHeaders) == 0 || len(a.SignedHeaders) > maxSignedNames {
			t.Fatalf("accepted an invalid header: %+v", *a)
		}
	})
}
