package feedback

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// SNS message types.
const (
	SNSNotification             = "Notification"
	SNSSubscriptionConfirmation = "SubscriptionConfirmation"
	SNSUnsubscribeConfirmation  = "UnsubscribeConfirmation"
)

// Limits of the SNS side.
const (
	MaxSNSBodyBytes     = 256 << 10 // SNS messages are at most 256 KB
	MaxCertBytes        = 64 << 10
	DefaultCertTimeout  = 5 * time.Second
	DefaultCertCacheTTL = 24 * time.Hour
	DefaultCertCacheMax = 32
	maxSignatureBytes   = 1024 // base64 of a 4096-bit signature is 684
)

// SNS verification errors; each wraps ErrForged or ErrMalformed.
var (
	ErrMalformed = errors.New("malformed SNS message")
	ErrForged    = errors.New("SNS message not authentic")
)

// SNSMessage is the JSON envelope SNS posts (and puts in SQS without raw
// delivery). Message and Subject hold the decoded strings.
type SNSMessage struct {
	Type             string
	MessageID        string `json:"MessageId"`
	Token            string
	TopicArn         string
	Subject          *string // nil when absent; present-but-empty is signed
	Message          string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string `json:"SigningCertURL"`
	SubscribeURL     string `json:"SubscribeURL"`
	UnsubscribeURL   string `json:"UnsubscribeURL"`
}

// ParseSNS parses an SNS envelope and checks that the fields its type
// needs are there. It does not verify the signature: a message without one
// parses, and Verify refuses it.
func ParseSNS(data []byte) (*SNSMessage, error) {
	if len(data) > MaxSNSBodyBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxSNSBodyBytes)
	}
	var m SNSMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrMalformed, err)
	}
	missing := func(name, v string) error {
		if v == "" {
			return fmt.Errorf("%w: %s missing", ErrMalformed, name)
		}
		return nil
	}
	errs := []error{
		missing("MessageId", m.MessageID), missing("TopicArn", m.TopicArn),
		missing("Timestamp", m.Timestamp),
	}
	switch m.Type {
	case SNSNotification:
		errs = append(errs, missing("Message", m.Message))
	case SNSSubscriptionConfirmation, SNSUnsubscribeConfirmation:
		errs = append(errs, missing("Token", m.Token), missing("SubscribeURL", m.SubscribeURL))
	default:
		return nil, fmt.Errorf("%w: unknown Type %.40q", ErrMalformed, m.Type)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
		return nil, fmt.Errorf("%w: bad Timestamp", ErrMalformed)
	}
	return &m, nil
}

// Time returns the parsed Timestamp (ParseSNS checked it).
func (m *SNSMessage) Time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, m.Timestamp)
	return t
}

// StringToSign returns the bytes SNS signs for m: "key\nvalue\n" for the
// keys of its type in byte order, Subject only when present.
func (m *SNSMessage) StringToSign() string {
	var b strings.Builder
	add := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('\n')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	add("Message", m.Message)
	add("MessageId", m.MessageID)
	if m.Type == SNSNotification {
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
		add("Timestamp", m.Timestamp)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
		return b.String()
	}
	add("SubscribeURL", m.SubscribeURL)
	add("Timestamp", m.Timestamp)
	add("Token", m.Token)
	add("TopicArn", m.TopicArn)
	add("Type", m.Type)
	return b.String()
}

// snsHost is an SNS host: sns.<region>.amazonaws.com, or .amazonaws.com.cn
// for the China regions, with a region of the shape AWS names them
// (us-east-1, us-gov-west-1, us-isob-east-1, cn-north-1), never any label:
// sns.s3-us-west-2.amazonaws.com is an S3 host shape, not SNS.
var snsHost = regexp.MustCompile(`^sns\.([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2})\.amazonaws\.com(\.cn)?$`)

// CheckSNSURL checks that raw is an https URL on an SNS host
// (sns.<region>.amazonaws.com, or sns.cn-<...>.amazonaws.com.cn) without
// userinfo or port, and, when regions is not empty, that the region is one
// of them. It returns the parsed URL.
func CheckSNSURL(raw string, regions []string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > 2048 {
		return nil, fmt.Errorf("%w: unparsable URL", ErrForged)
	}
	if u.Scheme != "https" || u.User != nil || u.Port() != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: URL %.100q is not plain https", ErrForged, raw)
	}
	sub := snsHost.FindStringSubmatch(u.Hostname())
	if sub == nil || strings.HasPrefix(sub[1], "cn-") != (sub[2] == ".cn") {
		return nil, fmt.Errorf("%w: URL host %.100q is not an SNS host", ErrForged, u.Host)
	}
	if len(regions) > 0 && !slices.Contains(regions, sub[1]) {
		return nil, fmt.Errorf("%w: URL region %q not allowed", ErrForged, sub[1])
	}
	return u, nil
}

// CheckCertURL is CheckSNSURL plus a path ending in .pem.
func CheckCertURL(raw string, regions []string) error {
	u, err := CheckSNSURL(raw, regions)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(u.Path, ".pem") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: SigningCertURL path %.100q is not a .pem", ErrForged, u.Path)
	}
	return nil
}

// CertFetcher downloads the certificate at a SigningCertURL that already
// passed CheckCertURL.
type CertFetcher interface {
	FetchCert(ctx context.Context, url string) (*x509.Certificate, error)
}

// ErrCertUnavailable wraps fetch failures a retry may cure (network,
// timeout, 5xx); other fetch failures wrap ErrForged.
var ErrCertUnavailable = errors.New("SNS signing certificate unavailable")

// HTTPCertFetcher fetches certificates over HTTPS with a timeout, a size
// cap and no redirects.
type HTTPCertFetcher struct {
	Client  *http.Client  // default: a client with Timeout and no redirects
	Timeout time.Duration // default DefaultCertTimeout
}

// FetchCert implements CertFetcher.
func (f *HTTPCertFetcher) FetchCert(ctx context.Context, url string) (*x509.Certificate, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultCertTimeout
	}
	client := f.Client
	if client == nil {
		client = noRedirectClient(timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForged, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("%w: status %d", ErrCertUnavailable, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: certificate fetch answered %d", ErrForged, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxCertBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertUnavailable, err)
	}
	if len(body) > MaxCertBytes {
		return nil, fmt.Errorf("%w: certificate larger than %d bytes", ErrForged, MaxCertBytes)
	}
	return ParseCertPEM(body)
}

// ParseCertPEM parses the first CERTIFICATE block of data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PEM certificate", ErrForged)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrForged, err)
			}
			return c, nil
		}
	}
}

func noRedirectClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirect refused")
		},
	}
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Fetcher downloads certificates; default an HTTPCertFetcher. Tests
	// inject one that serves their own certificate for an SNS URL.
	Fetcher CertFetcher
	// Regions, when not empty, restricts the SNS hosts to these regions.
	Regions  []string
	CacheTTL time.Duration // default DefaultCertCacheTTL
	CacheMax int           // certificates kept; default DefaultCertCacheMax
	Now      func() time.Time
}

// Verifier checks SNS signatures. It is safe for concurrent use.
type Verifier struct {
	fetcher CertFetcher
	regions []string
	ttl     time.Duration
	max     int
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]cachedCert
}

type cachedCert struct {
	cert    *x509.Certificate
	expires time.Time
}

// NewVerifier returns a Verifier built from opts.
func NewVerifier(opts VerifierOptions) *Verifier {
	v := &Verifier{fetcher: opts.Fetcher, regions: opts.Regions, ttl: opts.CacheTTL, max: opts.CacheMax, now: opts.Now, cache: map[string]cachedCert{}}
	if v.fetcher == nil {
		v.fetcher = &HTTPCertFetcher{}
	}
	if v.ttl <= 0 {
		v.ttl = DefaultCertCacheTTL
	}
	if v.max <= 0 {
		v.max = DefaultCertCacheMax
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v
}

// Verify checks m's SigningCertURL (before any fetch), then its signature
// with the certificate found there. Errors wrap ErrForged, ErrMalformed or
// ErrCertUnavailable.
func (v *Verifier) Verify(ctx context.Context, m *SNSMessage) error {
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return fmt.Errorf("%w: SignatureVersion %.10q", ErrForged, m.SignatureVersion)
	}
	if m.Signature == "" || len(m.Signature) > maxSignatureBytes {
		return fmt.Errorf("%w: signature missing or too long", ErrForged)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature not base64", ErrForged)
	}
	if err := CheckCertURL(m.SigningCertURL, v.regions); err != nil {
		return err
	}
	cert, err := v.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is not RSA", ErrForged)
	}
	digest := digestOf(hash, m.StringToSign())
	if err := rsa.VerifyPKCS1v15(pub, hash, digest, sig); err != nil {
		return fmt.Errorf("%w: bad signature", ErrForged)
	}
	return nil
}

func digestOf(h crypto.Hash, s string) []byte {
	if h == crypto.SHA1 {
		d := sha1.Sum([]byte(s))
		return d[:]
	}
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// cert returns the certificate at url from the cache or the fetcher.
func (v *Verifier) cert(ctx context.Context, url string) (*x509.Certificate, error) {
	now := v.now()
	v.mu.Lock()
	c, ok := v.cache[url]
	v.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.cert, nil
	}
	cert, err := v.fetcher.FetchCert(ctx, url)
	if err != nil {
		if errors.Is(err, ErrCertUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrForged, err)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%w: certificate not valid now", ErrForged)
	}
	exp := now.Add(v.ttl)
	if cert.NotAfter.Before(exp) {
		exp = cert.NotAfter
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= v.max {
		// Drop the entry closest to expiry; the cache is tiny.
		var victim string
		for k, e := range v.cache {
			if victim == "" || e.expires.Before(v.cache[victim].expires) {
				victim = k
			}
		}
		delete(v.cache, victim)
	}
	v.cache[url] = cachedCert{cert: cert, expires: exp}
	return cert, nil
}
