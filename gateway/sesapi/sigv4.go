package sesapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Signature Version 4 verification, hand-written from the published
// algorithm (canonical request, string to sign, derived signing key). The
// SDK's signer cannot serve as the verifier: it chooses which headers to
// sign itself, while a verifier must rebuild exactly the client's
// SignedHeaders list, whatever client (SDK, CLI, boto3, curl) signed it.

const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	amzDateLayout = "20060102T150405Z"
	// MaxClockSkew is how far X-Amz-Date may be from the server's clock.
	MaxClockSkew   = 5 * time.Minute
	maxAuthHeader  = 4096
	maxSignedNames = 64
	unsignedBody   = "UNSIGNED-PAYLOAD"
)

// sigv4 is a parsed Authorization header.
type sigv4 struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     []byte
}

// authFailure is why a signature was refused; the front ends render it in
// their protocol's shape.
type authFailure struct {
	kind authKind
	msg  string
}

type authKind int

const (
	authMissing    authKind = iota // no Authorization header
	authIncomplete                 // malformed Authorization
	authMismatch                   // wrong signature, scope region or service
	authExpired                    // X-Amz-Date too far from the clock
	authUnknownKey                 // access key id not known
	authToken                      // X-Amz-Security-Token given
)

func (f *authFailure) Error() string { return f.msg }

func incomplete(msg string) *authFailure { return &authFailure{authIncomplete, msg} }

// parseSigV4 parses "AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/
// service/aws4_request, SignedHeaders=a;b, Signature=<64 hex>".
func parseSigV4(v string) (*sigv4, *authFailure) {
	if v == "" {
		return nil, &authFailure{authMissing, "Missing Authentication Token"}
	}
	if len(v) > maxAuthHeader {
		return nil, incomplete("Authorization header is too long.")
	}
	alg, rest, ok := strings.Cut(v, " ")
	if !ok || alg != sigAlgorithm {
		return nil, incomplete("Authorization header requires the " + sigAlgorithm + " algorithm.")
	}
	var cred, signed, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return nil, incomplete("Authorization header parameter is not key=value.")
		case k == "Credential" && cred == "":
			cred = val
		case k == "SignedHeaders" && signed == "":
			signed = val
		case k == "Signature" && sig == "":
			sig = val
		default:
			return nil, incomplete("Authorization header has an unknown or repeated parameter.")
		}
	}
	if cred == "" || signed == "" || sig == "" {
		return nil, incomplete("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != "aws4_request" || len(scope[1]) != 8 {
		return nil, incomplete("Credential must have the form AKID/yyyymmdd/region/service/aws4_request.")
	}
	raw, err := hex.DecodeString(sig)
	if err != nil || len(raw) != sha256.Size {
		return nil, incomplete("Signature must be 64 hex digits.")
	}
	names := strings.Split(signed, ";")
	if len(names) > maxSignedNames {
		return nil, incomplete("Too many signed headers.")
	}
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || (i > 0 && names[i-1] >= n) {
			return nil, incomplete("SignedHeaders must be sorted, unique and lowercase.")
		}
	}
	return &sigv4{AccessKeyID: scope[0], Date: scope[1], Region: scope[2], Service: scope[3], SignedHeaders: names, Signature: raw}, nil
}

// checkScope checks what needs no secret: the date, its skew from now, the
// scope's region and service, the signed headers, the payload hash. It
// returns the hex payload hash.
func (a *sigv4) checkScope(r *http.Request, body []byte, region string, now time.Time) (string, *authFailure) {
	if r.Header.Get("X-Amz-Security-Token") != "" {
		return "", &authFailure{authToken, "The security token included in the request is invalid: sesgate keys take no session token."}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateLayout, amzDate)
	if err != nil {
		return "", incomplete("Authorization requires a valid X-Amz-Date header (yyyyMMddTHHmmssZ).")
	}
	if a.Date != amzDate[:8] {
		return "", &authFailure{authMismatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP."}
	}
	if d := now.Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return "", &authFailure{authExpired, "Signature expired: " + amzDate + " is not within " + MaxClockSkew.String() +
			" of the server's time " + now.UTC().Format(amzDateLayout) + "."}
	}
	if a.Service != "ses" && a.Service != "email" {
		return "", &authFailure{authMismatch, "Credential should be scoped to correct service: 'ses' (got '" + clip(a.Service) + "')."}
	}
	if a.Region != region {
		return "", &authFailure{authMismatch, "Credential should be scoped to a valid region, not '" + clip(a.Region) + "': this endpoint is '" + region + "'."}
	}
	if !slices.Contains(a.SignedHeaders, "host") {
		return "", &authFailure{authMismatch, "'Host' must be a signed header."}
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		if h == unsignedBody {
			return "", &authFailure{authMismatch, "UNSIGNED-PAYLOAD is not accepted: sign the body."}
		}
		return "", &authFailure{authMismatch, "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	return payload, nil
}

// verify reports in constant time whether the signature is the one secret
// makes for r.
func (a *sigv4) verify(r *http.Request, payload, secret string) bool {
	sts := strings.Join([]string{
		sigAlgorithm,
		r.Header.Get("X-Amz-Date"),
		a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request",
		hexSHA256(a.canonicalRequest(r, payload)),
	}, "\n")
	k := hmacSHA256([]byte("AWS4"+secret), a.Date)
	k = hmacSHA256(k, a.Region)
	k = hmacSHA256(k, a.Service)
	k = hmacSHA256(k, "aws4_request")
	return hmac.Equal(hmacSHA256(k, sts), a.Signature)
}

// canonicalRequest is the spec's: method, canonical URI (each segment of
// the escaped path URI-encoded again, as every AWS service but S3 does),
// the sorted query, the signed headers (lowercase, values trimmed and
// inner spaces collapsed), their names, the payload hash.
func (a *sigv4) canonicalRequest(r *http.Request, payload string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(uriEncode(path, false))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, name := range a.SignedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(a.SignedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

// headerValue is the canonical value of a signed header.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		if r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// canonicalQuery sorts the query's pairs by encoded name, then value.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type pair struct{ k, v string }
	var pairs []pair
	for kv := range strings.SplitSeq(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		pairs = append(pairs, pair{uriEncode(k, true), uriEncode(v, true)})
	}
	slices.SortFunc(pairs, func(x, y pair) int {
		if c := strings.Compare(x.k, y.k); c != 0 {
			return c
		}
		return strings.Compare(x.v, y.v)
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// uriEncode percent-encodes every byte but the unreserved ones (and '/'
// unless encodeSlash), in upper-case hex, as SigV4 requires.
func uriEncode(s string, encodeSlash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
