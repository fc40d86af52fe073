package sestest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Signature Version 4 verification, written from the published algorithm so
// that a request the real SDK signed is checked byte for byte: canonical
// request, string to sign, derived key, constant-time comparison.

const (
	sigAlgorithm   = "AWS4-HMAC-SHA256"
	sigService     = "ses"
	amzDateLayout  = "20060102T150405Z"
	scopeTerminal  = "aws4_request"
	maxClockSkew   = 15 * time.Minute
	maxAuthHeader  = 4096 // bytes of Authorization header we parse at all
	maxSignedNames = 64   // headers named in SignedHeaders
)

// authHeader is a parsed Authorization header.
type authHeader struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string // lowercase, as listed
	Signature     string   // lowercase hex
}

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ses/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=<64 hex>".
func parseAuthorization(v string) (*authHeader, *apiError) {
	if len(v) > maxAuthHeader {
		return nil, incompleteSignature("Authorization header is too long.")
	}
	alg, rest, ok := strings.Cut(v, " ")
	if !ok || alg != sigAlgorithm {
		return nil, incompleteSignature("Authorization header requires the " + sigAlgorithm + " algorithm.")
	}
	var cred, signed, sig string
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, incompleteSignature("Authorization header parameter is not key=value.")
		}
		switch k {
		case "Credential":
			cred = val
		case "SignedHeaders":
			signed = val
		case "Signature":
			sig = val
		default:
			return nil, incompleteSignature("Authorization header has an unknown parameter.")
		}
	}
	if cred == "" || signed == "" || sig == "" {
		return nil, incompleteSignature("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != scopeTerminal {
		return nil, incompleteSignature("Credential must have the form AKID/date/region/service/aws4_request.")
	}
	if len(sig) != 64 || !isLowerHex(sig) {
		return nil, incompleteSignature("Signature must be 64 lowercase hex digits.")
	}
	names := strings.Split(signed, ";")
	if len(names) > maxSignedNames {
		return nil, incompleteSignature("Too many signed headers.")
	}
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || (i > 0 && names[i-1] >= n) {
			return nil, incompleteSignature("SignedHeaders must be sorted, unique and lowercase.")
		}
	}
	return &authHeader{
		AccessKeyID:   scope[0],
		Date:          scope[1],
		Region:        scope[2],
		Service:       scope[3],
		SignedHeaders: names,
		Signature:     sig,
	}, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// verifySigV4 checks r (whose body was read into body) against the key pair
// and region of the server, with now as the server's clock.
func (s *Server) verifySigV4(r *http.Request, body []byte, now time.Time) *apiError {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return &apiError{Type: "MissingAuthenticationTokenException", Status: http.StatusForbidden, Message: "Missing Authentication Token"}
	}
	a, aerr := parseAuthorization(authz)
	if aerr != nil {
		return aerr
	}
	if a.AccessKeyID != s.opts.AccessKeyID {
		return &apiError{Type: "UnrecognizedClientException", Status: http.StatusForbidden, Message: "The security token included in the request is invalid."}
	}
	if s.opts.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != s.opts.SessionToken {
		return &apiError{Type: "UnrecognizedClientException", Status: http.StatusForbidden, Message: "The security token included in the request is invalid."}
	}
	if a.Service != sigService {
		return signatureMismatch("Credential should be scoped to correct service: '" + sigService + "'.")
	}
	if a.Region != s.opts.Region {
		return signatureMismatch("Credential should be scoped to a valid region.")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateLayout, amzDate)
	if err != nil {
		return incompleteSignature("Authorization requires a valid X-Amz-Date header.")
	}
	if a.Date != amzDate[:8] {
		return signatureMismatch("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
	}
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return &apiError{Type: "InvalidSignatureException", Status: http.StatusForbidden,
			Message: "Signature expired: " + amzDate + " is now earlier than " + now.UTC().Add(-maxClockSkew).Format(amzDateLayout) +
				" (" + now.UTC().Format(amzDateLayout) + " - 15 min.)"}
	}
	if !slices.Contains(a.SignedHeaders, "host") || !slices.Contains(a.SignedHeaders, "x-amz-date") {
		return signatureMismatch("SignedHeaders must include host and x-amz-date.")
	}
	if s.opts.SessionToken != "" && !slices.Contains(a.SignedHeaders, "x-amz-security-token") {
		return signatureMismatch("SignedHeaders must include x-amz-security-token.")
	}

	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		// UNSIGNED-PAYLOAD included: the body of a send must be signed.
		return &apiError{Type: "SignatureDoesNotMatch", Status: http.StatusBadRequest, Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}

	canonical := canonicalRequest(r, a.SignedHeaders, payloadHash)
	crSum := sha256.Sum256([]byte(canonical))
	scope := a.Date + "/" + a.Region + "/" + a.Service + "/" + scopeTerminal
	stringToSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])

	key := hmacSHA256([]byte("AWS4"+s.opts.SecretAccessKey), a.Date)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, scopeTerminal)
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return signatureMismatch("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

// canonicalRequest builds the SigV4 canonical request of r.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	// Services other than S3 sign the escaped path escaped once more.
	b.WriteString(escapePath(r.URL.EscapedPath()))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalHeaderValue returns the values of one header, trimmed, inner runs
// of spaces collapsed, joined by commas. Go's server moves Host and
// Content-Length out of the header map, so they are read back from r.
func canonicalHeaderValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		values = r.Header.Values("Content-Length")
		if len(values) == 0 && r.ContentLength >= 0 {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = r.Header.Values(name)
	}
	for i, v := range values {
		values[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(values, ",")
}

// canonicalQuery encodes every parameter the RFC 3986 way (space as %20)
// and sorts them by encoded key, then encoded value.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "\x00invalid" // cannot match any signature
	}
	params := make([]string, 0, len(q))
	for k, vs := range q {
		ek := queryEscape(k)
		for _, v := range vs {
			params = append(params, ek+"="+queryEscape(v))
		}
	}
	sort.Slice(params, func(i, j int) bool {
		ki, vi, _ := strings.Cut(params[i], "=")
		kj, vj, _ := strings.Cut(params[j], "=")
		if ki != kj {
			return ki < kj
		}
		return vi < vj
	})
	return strings.Join(params, "&")
}

func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// escapePath percent-encodes every byte except unreserved characters and '/'.
func escapePath(p string) string {
	if p == "" {
		return "/"
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func incompleteSignature(msg string) *apiError {
	return &apiError{Type: "IncompleteSignatureException", Status: http.StatusBadRequest, Message: msg}
}

func signatureMismatch(msg string) *apiError {
	return &apiError{Type: "SignatureDoesNotMatch", Status: http.StatusForbidden, Message: msg}
}
