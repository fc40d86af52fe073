package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
)

// MaxFileBytes bounds the policy file.
const MaxFileBytes = 16 << 20

// Policy is the policy file.
type Policy struct {
	SES     SES      `yaml:"ses"`
	Store   Store    `yaml:"store"`
	Tenants []Tenant `yaml:"tenants"`
	// Plans are named limit templates tenants refer to (config/plans.go).
	Plans map[string]Plan `yaml:"plans"`
	// AdminTokens are the tokens of the admin API (hashed, like tenant
	// tokens; `sesgate token new --admin --name NAME` prints one).
	AdminTokens []AdminToken `yaml:"admin_tokens"`
	Metrics     Metrics      `yaml:"metrics"`
	// Events, Alerts and AccountGuard: the bounce and complaint feedback
	// (config/feedback.go).
	Events       Events        `yaml:"events"`
	Alerts       Alerts        `yaml:"alerts"`
	AccountGuard *AccountGuard `yaml:"account_guard"`
}

// AdminToken is one admin API token: a name (for the audit log), its key id
// and SHA-256.
type AdminToken struct {
	Name   string `yaml:"name"`
	KeyID  string `yaml:"key_id"`
	SHA256 string `yaml:"sha256"`
}

// Metrics tunes the Prometheus metrics.
type Metrics struct {
	// MaxTenantLabels bounds the tenant label values (default 100); the
	// tenants beyond it are counted as "other".
	MaxTenantLabels int `yaml:"max_tenant_labels"`
}

// Store selects the shared store and its failure behaviour. Without
// store.redis the embedded store under the data directory is used.
type Store struct {
	Redis *Redis `yaml:"redis"`
	// CallTimeout bounds one store call: admission, the RCPT suppression
	// check (default 50ms).
	CallTimeout time.Duration `yaml:"call_timeout"`
	// DegradedWindow: how long after the store fails each replica still
	// admits within a tenant's degraded budget (default 60s; negative:
	// none). The budget is the replica's share (1/Replicas) of what the
	// store last said the tenant's quotas and first-contact budgets have
	// left, and DegradedFraction of its rate (package limiter).
	DegradedWindow time.Duration `yaml:"degraded_window"`
	// DegradedFraction of a tenant's rate the whole fleet may admit in the
	// window (default 0.5), split over Replicas (default 1); also the share
	// of its quotas for a tenant the store has not answered for since the
	// replica started.
	DegradedFraction float64 `yaml:"degraded_fraction"`
	Replicas         int     `yaml:"replicas"`
	// KnownRecipientTTL: how long a mailed recipient stays known (not a
	// first contact); default 180 days (4320h).
	KnownRecipientTTL time.Duration `yaml:"known_recipient_ttl"`
	// RecipientKeyFile holds the HMAC key of the first-contact memory (at
	// least 16 bytes); env SESGATE_RECIPIENT_KEY wins. Every replica must
	// use the same key.
	RecipientKeyFile string `yaml:"recipient_key_file"`
	// MaxCache caps how long a refusal is cached in process (default 60s).
	MaxCache time.Duration `yaml:"max_cache"`
}

// Redis is the Redis deployment: a URL (env SESGATE_REDIS_URL wins) or
// addresses. The password comes from the URL or env SESGATE_REDIS_PASSWORD,
// never from this file.
type Redis struct {
	// URL: redis://host:port (standalone), redis://sentinel:26379?master_name=NAME
	// (Sentinel), redis+cluster://host:port?addr=host2:port (Cluster);
	// rediss for TLS.
	URL string `yaml:"url"`
	// Addrs: one is standalone, several a Cluster (or sentinels with
	// master_name).
	Addrs        []string      `yaml:"addrs"`
	MasterName   string        `yaml:"master_name"`
	Username     string        `yaml:"username"`
	PoolSize     int           `yaml:"pool_size"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// SES holds account-wide SES client settings.
type SES struct {
	Region string `yaml:"region"`
	// Endpoint overrides the SES endpoint (AWS_ENDPOINT_URL_SESV2 works too).
	Endpoint string `yaml:"endpoint"`
	// MaxAttempts for throttled sends (SES certainly did not take the message).
	MaxAttempts int `yaml:"max_attempts"`
	// Timeout for one SendEmail call, retries included.
	Timeout time.Duration `yaml:"timeout"`
	// MaxSendRate is the account's SES send rate (recipients per second)
	// shared by all replicas; 0 reads it once from SES GetAccount (sink
	// ses) or leaves it unlimited (outbox).
	MaxSendRate float64 `yaml:"max_send_rate"`
}

// Tenant is one sending app.
type Tenant struct {
	ID               string    `yaml:"id"`
	Tokens           []Token   `yaml:"tokens"`
	Identities       []string  `yaml:"identities"`
	RecipientDomains []string  `yaml:"recipient_domains"`
	SourceCIDRs      []string  `yaml:"source_cidrs"`
	Limits           Limits    `yaml:"limits"`
	SES              TenantSES `yaml:"ses"`
	// Frozen refuses every message of the tenant (temporary answer).
	Frozen bool `yaml:"frozen"`
	// Breaker overrides the tenant's breaker defaults (breaker.TenantDefaults).
	Breaker *Breaker `yaml:"breaker"`
	// Webhooks tell the app what happened to its mail (config/webhooks.go).
	Webhooks []Webhook `yaml:"webhooks"`
	// Plan names the limit template (Policy.Plans) the tenant's limits and
	// breaker settings start from; after Parse, Limits and Breaker hold
	// the effective values.
	Plan string `yaml:"plan"`
}

// Token is a stored token: key id and SHA-256, never the token itself; or
// an AWS key (SigV4, the SES API): its access key id alone, the secret
// being derived from the server key (`sesgate token new --aws`).
type Token struct {
	KeyID          string `yaml:"key_id"`
	SHA256         string `yaml:"sha256"`
	AWSAccessKeyID string `yaml:"aws_access_key_id"`
}

// record returns the token's auth record (the policy is valid).
func (t Token) record(tenant string) auth.Record {
	if t.AWSAccessKeyID != "" {
		kid, _ := auth.ParseAccessKeyID(t.AWSAccessKeyID)
		return auth.Record{KeyID: kid, Hash: auth.AWSKeyMarker(kid), Tenant: tenant}
	}
	h, _ := auth.ParseHash(t.SHA256)
	return auth.Record{KeyID: t.KeyID, Hash: h, Tenant: tenant}
}

// HasAWSKeys reports whether any tenant has an AWS key.
func (p *Policy) HasAWSKeys() bool {
	for _, t := range p.Tenants {
		for _, tok := range t.Tokens {
			if tok.AWSAccessKeyID != "" {
				return true
			}
		}
	}
	return false
}

// Limits of one tenant. Zero means the default.
type Limits struct {
	Rate           float64  `yaml:"rate"`
	Burst          int      `yaml:"burst"`
	MaxRecipients  int      `yaml:"max_recipients"`
	MaxMessageSize ByteSize `yaml:"max_message_size"`
	// RatePer is what rate and burst count: message (default) or recipient.
	RatePer string `yaml:"rate_per"`
	// Quotas in recipients per UTC hour and day.
	PerHour int64 `yaml:"per_hour"`
	PerDay  int64 `yaml:"per_day"`
	// First-contact budget: never-mailed recipients per UTC hour and day.
	FirstContactPerHour int64 `yaml:"first_contact_per_hour"`
	FirstContactPerDay  int64 `yaml:"first_contact_per_day"`
	// Recipients per second to one recipient domain, with a burst.
	PerDomainRate  float64 `yaml:"per_domain_rate"`
	PerDomainBurst int     `yaml:"per_domain_burst"`
	// FirstContactWindow bounds first contacts awaiting an SES event
	// (window.go); absent: no window.
	FirstContactWindow *FirstContactWindow `yaml:"first_contact_window"`
	// Shadow: limits evaluated, counted and logged but not enforced.
	Shadow []string `yaml:"shadow"`
}

// TenantSES is the tenant's part of the SES send.
type TenantSES struct {
	ConfigurationSet string `yaml:"configuration_set"`
	// ConfigurationSets the app may name per message (X-SES-CONFIGURATION-SET,
	// the JSON configuration_set); empty: configuration_set only. When both
	// are set, configuration_set must be one of them.
	ConfigurationSets []string `yaml:"configuration_sets"`
	TenantName        string   `yaml:"tenant_name"`
	// DeliveryEvents declares that the configuration set publishes Delivery
	// events (with Bounce and Complaint) to the gateway: the first-contact
	// window needs them.
	DeliveryEvents bool `yaml:"delivery_events"`
}

// ByteSize is a size in bytes, written as a number or with a unit
// (KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024).
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

var sizeRE = regexp.MustCompile(`^\s*([0-9]+)\s*([KMG]i?B|B)?\s*$`)

// ParseByteSize reads "40MB", "512KiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (want a number of bytes or e.g. 10MB, 512KiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]
	return ByteSize(n * mult), nil
}

// Load reads and validates a policy file.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readBounded(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func readBounded(f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("policy file larger than %d bytes", MaxFileBytes)
	}
	return data, nil
}

// ErrEmpty is the error of a policy file that sets no key.
var ErrEmpty = errors.New("the policy file is empty (no keys, only blank lines or comments)")

// Parse decodes and validates a policy document. The returned *Error lists
// every problem, one per line, each naming its key and line.
func Parse(data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 || root.Content[0].ShortTag() == "!!null" {
		return nil, ErrEmpty
	}
	doc := root.Content[0]
	var p Policy
	d := newDecoder(len(data))
	d.at("", doc)
	d.decode(doc, reflect.ValueOf(&p).Elem(), "")
	if d.budget < 0 {
		return nil, errors.New("invalid YAML: its aliases (*name) and merge keys (<<) expand to too many values")
	}
	checks := append(p.resolvePlans(d.written), p.validate()...)
	checks = p.dropPlanEchoes(checks, d.written)
	if probs := append(nonFinite(&root), d.report(checks)...); len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	return &p, nil
}

// Error lists every problem of a policy file.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return fmt.Sprintf("%d problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// nonFinite names every float written .nan or .inf: no limit, rate or
// fraction may be one (a NaN passes every range check).
func nonFinite(root *yaml.Node) []string {
	var out []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			var f float64
			if n.ShortTag() == "!!float" && n.Decode(&f) == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
				out = append(out, fmt.Sprintf("%s (line %d): must be a finite number", path, n.Line))
			}
		}
	}
	walk(root, "")
	return out
}

var (
	tenantIDRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	sesNameRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	identityDom = regexp.MustCompile(`^@[A-Za-z0-9.-]+$`)
)

// The rules of tenantIDRE and sesNameRE in words.
const (
	idRule      = "must be 1 to 63 lower-case letters, digits, - or _, the first a letter or digit"
	sesNameRule = "must be 1 to 64 letters, digits, - or _"
)

// validate checks the values; each problem names its key path.
func (p *Policy) validate() []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path: path, msg: fmt.Sprintf(format, args...)})
	}
	if p.SES.MaxAttempts < 0 || p.SES.MaxAttempts > 10 {
		add("ses.max_attempts", "must be between 0 and 10")
	}
	if p.SES.Timeout < 0 || p.SES.Timeout > 5*time.Minute {
		add("ses.timeout", "must be between 0 and 5m")
	}
	if p.SES.Endpoint != "" && !strings.HasPrefix(p.SES.Endpoint, "https://") && !strings.HasPrefix(p.SES.Endpoint, "http://") {
		add("ses.endpoint", "must be an http(s) URL")
	}
	if p.SES.MaxSendRate < 0 || p.SES.MaxSendRate > 100000 {
		add("ses.max_send_rate", "must be between 0 and 100000")
	}
	probs = append(probs, p.Store.validate()...)
	probs = append(probs, p.validateFeedback()...)
	probs = append(probs, p.validateWebhooks()...)
	probs = append(probs, p.validatePlans()...)
	if p.Metrics.MaxTenantLabels < 0 || p.Metrics.MaxTenantLabels > 10000 {
		add("metrics.max_tenant_labels", "must be between 0 and 10000")
	}
	ids := map[string]int{}
	keys := map[string]string{}
	names := map[string]int{}
	for i, a := range p.AdminTokens {
		ap := fmt.Sprintf("admin_tokens[%d]", i)
		if !tenantIDRE.MatchString(a.Name) {
			add(ap+".name", idRule)
		} else if j, dup := names[a.Name]; dup {
			add(ap+".name", "duplicate of admin_tokens[%d]", j)
		} else {
			names[a.Name] = i
		}
		if !auth.ValidKeyID(a.KeyID) {
			add(ap+".key_id", "not a key id (use `sesgate token new --admin`)")
		} else if other, dup := keys[a.KeyID]; dup {
			add(ap+".key_id", "already used by %s", other)
		} else {
			keys[a.KeyID] = ap
		}
		if _, err := auth.ParseHash(a.SHA256); err != nil {
			add(ap+".sha256", "%v", err)
		}
	}
	for i, t := range p.Tenants {
		tp := fmt.Sprintf("tenants[%d]", i)
		if !tenantIDRE.MatchString(t.ID) {
			add(tp+".id", idRule)
		} else if j, dup := ids[t.ID]; dup {
			add(tp+".id", "duplicate of tenants[%d]", j)
		} else {
			ids[t.ID] = i
		}
		for j, tok := range t.Tokens {
			kp := fmt.Sprintf("%s.tokens[%d]", tp, j)
			if tok.AWSAccessKeyID != "" {
				kid, ok := auth.ParseAccessKeyID(tok.AWSAccessKeyID)
				switch {
				case tok.KeyID != "" || tok.SHA256 != "":
					add(kp, "aws_access_key_id goes without key_id and sha256")
				case !ok:
					add(kp+".aws_access_key_id", "not an access key id (use `sesgate token new --aws`)")
				case keys[kid] != "":
					add(kp+".aws_access_key_id", "already used by %s", keys[kid])
				default:
					keys[kid] = kp
				}
				continue
			}
			if !auth.ValidKeyID(tok.KeyID) {
				add(kp+".key_id", "not a key id (use `sesgate token new`)")
			} else if other, dup := keys[tok.KeyID]; dup {
				add(kp+".key_id", "already used by %s", other)
			} else {
				keys[tok.KeyID] = kp
			}
			if _, err := auth.ParseHash(tok.SHA256); err != nil {
				add(kp+".sha256", "%v", err)
			}
		}
		if len(t.Identities) == 0 {
			add(tp+".identities", "at least one identity is required")
		}
		for j, id := range t.Identities {
			if id == "*" || identityDom.MatchString(id) {
				continue
			}
			if _, err := gateway.ParseAddress(id); err != nil {
				add(fmt.Sprintf("%s.identities[%d]", tp, j), "%q is not an address, @domain or *", id)
			}
		}
		for j, d := range t.RecipientDomains {
			if _, err := gateway.ParseAddress("x@" + strings.TrimPrefix(d, "*.")); err != nil {
				add(fmt.Sprintf("%s.recipient_domains[%d]", tp, j), "%q is not a domain or *.domain", d)
			}
		}
		for j, c := range t.SourceCIDRs {
			if _, err := netip.ParsePrefix(c); err != nil {
				add(fmt.Sprintf("%s.source_cidrs[%d]", tp, j), "%q is not a CIDR", c)
			}
		}
		l := t.Limits
		if l.Rate < 0 {
			add(tp+".limits.rate", "must be >= 0")
		}
		if l.Burst < 0 {
			add(tp+".limits.burst", "must be >= 0")
		}
		if l.MaxRecipients < 0 || l.MaxRecipients > gateway.DefaultMaxRecipients {
			add(tp+".limits.max_recipients", "must be between 0 and %d (SES's limit)", gateway.DefaultMaxRecipients)
		}
		if l.MaxMessageSize < 0 || l.MaxMessageSize > gateway.DefaultMaxMessageBytes {
			add(tp+".limits.max_message_size", "must be between 0 and %d bytes (SES's limit)", gateway.DefaultMaxMessageBytes)
		}
		if l.RatePer != "" && l.RatePer != "message" && l.RatePer != "recipient" {
			add(tp+".limits.rate_per", "must be message or recipient")
		}
		if l.RatePer == "recipient" && l.Rate > 0 {
			maxR := l.MaxRecipients
			if maxR == 0 {
				maxR = gateway.DefaultMaxRecipients
			}
			burst := l.Burst
			if burst == 0 {
				burst = gateway.Limits{Rate: l.Rate}.EffectiveBurst()
			}
			if burst < maxR {
				add(tp+".limits.burst", "with rate_per: recipient the burst (%d) must be at least max_recipients (%d), or large messages never pass", burst, maxR)
			}
		}
		for name, v := range map[string]int64{"per_hour": l.PerHour, "per_day": l.PerDay,
			"first_contact_per_hour": l.FirstContactPerHour, "first_contact_per_day": l.FirstContactPerDay} {
			if v < 0 {
				add(tp+".limits."+name, "must be >= 0")
			}
		}
		if l.PerDomainRate < 0 {
			add(tp+".limits.per_domain_rate", "must be >= 0")
		}
		if l.PerDomainBurst < 0 {
			add(tp+".limits.per_domain_burst", "must be >= 0")
		}
		if l.FirstContactWindow != nil {
			l.FirstContactWindow.validate(tp+".limits.first_contact_window", add)
		}
		if t.SES.DeliveryEvents && len(p.Events.SNS.TopicARNs) == 0 && p.Events.SQS.QueueURL == "" {
			add(tp+".ses.delivery_events", "needs an event input to receive them (events.sns.topic_arns or events.sqs.queue_url)")
		}
		for j, n := range l.Shadow {
			if !slices.Contains(gateway.LimitNames(), n) {
				add(fmt.Sprintf("%s.limits.shadow[%d]", tp, j), "%q is not a limit (want one of %s)", n, strings.Join(gateway.LimitNames(), ", "))
			}
		}
		if s := t.SES.ConfigurationSet; s != "" && !sesNameRE.MatchString(s) {
			add(tp+".ses.configuration_set", sesNameRule)
		}
		for j, s := range t.SES.ConfigurationSets {
			if !sesNameRE.MatchString(s) {
				add(fmt.Sprintf("%s.ses.configuration_sets[%d]", tp, j), sesNameRule)
			} else if slices.Contains(t.SES.ConfigurationSets[:j], s) {
				add(fmt.Sprintf("%s.ses.configuration_sets[%d]", tp, j), "%q is listed twice", s)
			}
		}
		if s := t.SES.ConfigurationSet; s != "" && len(t.SES.ConfigurationSets) > 0 && !slices.Contains(t.SES.ConfigurationSets, s) {
			add(tp+".ses.configuration_set", "%q must be one of configuration_sets (the default must be a set the tenant may use)", s)
		}
		if s := t.SES.TenantName; s != "" && !sesNameRE.MatchString(s) {
			add(tp+".ses.tenant_name", sesNameRule)
		}
	}
	return probs
}

func (s *Store) validate() []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path: "store." + path, msg: fmt.Sprintf(format, args...)})
	}
	if r := s.Redis; r != nil {
		if (r.URL == "") == (len(r.Addrs) == 0) {
			add("redis", "set url or addrs (one of them)")
		}
		if r.URL != "" {
			u, err := url.Parse(r.URL)
			switch {
			case err != nil:
				add("redis.url", "not a URL")
			case !slices.Contains([]string{"redis", "rediss", "redis+cluster", "rediss+cluster"}, u.Scheme):
				add("redis.url", "scheme must be redis, rediss, redis+cluster or rediss+cluster")
			case u.User != nil:
				if _, hasPass := u.User.Password(); hasPass {
					add("redis.url", "must not carry a password; use env SESGATE_REDIS_PASSWORD or SESGATE_REDIS_URL")
				}
			}
		}
		for j, a := range r.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				add(fmt.Sprintf("redis.addrs[%d]", j), "%q is not host:port", a)
			}
		}
		if r.PoolSize < 0 || r.PoolSize > 10000 {
			add("redis.pool_size", "must be between 0 and 10000")
		}
		for name, d := range map[string]time.Duration{"dial_timeout": r.DialTimeout, "read_timeout": r.ReadTimeout, "write_timeout": r.WriteTimeout} {
			if d < 0 || d > time.Minute {
				add("redis."+name, "must be between 0 and 1m")
			}
		}
	}
	if s.CallTimeout < 0 || s.CallTimeout > 5*time.Second {
		add("call_timeout", "must be between 0 and 5s")
	}
	if s.DegradedWindow > time.Hour {
		add("degraded_window", "must be at most 1h (negative: no degraded window)")
	}
	if s.DegradedFraction < 0 || s.DegradedFraction > 1 {
		add("degraded_fraction", "must be between 0 and 1")
	}
	if s.Replicas < 0 || s.Replicas > 10000 {
		add("replicas", "must be between 0 and 10000")
	}
	if s.KnownRecipientTTL < 0 || s.KnownRecipientTTL > 3*365*24*time.Hour {
		add("known_recipient_ttl", "must be between 0 and 26280h (3 years)")
	}
	if s.MaxCache < 0 || s.MaxCache > time.Hour {
		add("max_cache", "must be between 0 and 1h")
	}
	return probs
}

// Build turns a valid policy into tenants and token entries.
func (p *Policy) Build() ([]*gateway.Tenant, []auth.Entry) {
	var tenants []*gateway.Tenant
	var entries []auth.Entry
	for _, t := range p.Tenants {
		gt := &gateway.Tenant{
			ID:               t.ID,
			Identities:       t.Identities,
			RecipientDomains: t.RecipientDomains,
			Limits: gateway.Limits{
				Rate: t.Limits.Rate, Burst: t.Limits.Burst,
				MaxRecipients: t.Limits.MaxRecipients, MaxMessageBytes: int64(t.Limits.MaxMessageSize),
				RatePerRecipient: t.Limits.RatePer == "recipient",
				PerHour:          t.Limits.PerHour, PerDay: t.Limits.PerDay,
				FirstContactPerHour: t.Limits.FirstContactPerHour, FirstContactPerDay: t.Limits.FirstContactPerDay,
				PerDomainRate: t.Limits.PerDomainRate, PerDomainBurst: t.Limits.PerDomainBurst,
				Shadow: t.Limits.Shadow,
			},
			SES: gateway.SESOptions{ConfigurationSet: t.SES.ConfigurationSet, TenantName: t.SES.TenantName,
				ConfigurationSets: slices.Clone(t.SES.ConfigurationSets), DeliveryEvents: t.SES.DeliveryEvents},
			Frozen: t.Frozen,
		}
		if w := t.Limits.FirstContactWindow; w != nil {
			gt.Limits.FirstContactWindow = w.Resolved()
		}
		for _, c := range t.SourceCIDRs {
			gt.SourceNets = append(gt.SourceNets, netip.MustParsePrefix(c).Masked())
		}
		tenants = append(tenants, gt)
		for _, tok := range t.Tokens {
			entries = append(entries, auth.Entry{Record: tok.record(t.ID), Tenant: gt})
		}
	}
	return tenants, entries
}
