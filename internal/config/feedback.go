package config

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sesgate/sesgate/limiter/breaker"
)

// Events configures the SES feedback: the SNS endpoint, the SQS queue and
// the suppression list fed by events.
type Events struct {
	SNS SNSEvents `yaml:"sns"`
	SQS SQSEvents `yaml:"sqs"`
	// SuppressionScope: global (default) or tenant.
	SuppressionScope string `yaml:"suppression_scope"`
	// SuppressionTTL: suppressions from events expire after it; 0 never.
	SuppressionTTL time.Duration `yaml:"suppression_ttl"`
	// MessageTTL: how long SES MessageId -> tenant is remembered for
	// events without tags (default 168h).
	MessageTTL time.Duration `yaml:"message_ttl"`
}

// SNSEvents is the SNS HTTPS subscription endpoint.
type SNSEvents struct {
	// Path on the HTTP listener; default /v1/events/sns.
	Path string `yaml:"path"`
	// TopicARNs whose messages are accepted; none disables the endpoint.
	TopicARNs []string `yaml:"topic_arns"`
	// Regions restrict the SNS certificate and subscribe hosts.
	Regions []string `yaml:"regions"`
}

// SQSEvents is the SQS queue alternative (AWS default credentials).
type SQSEvents struct {
	QueueURL string `yaml:"queue_url"`
	// Raw accepts bare SES JSON (SNS raw message delivery); only when the
	// queue policy admits nothing but your topic.
	Raw bool `yaml:"raw"`
}

// Alerts is where breaker trips are announced.
type Alerts struct {
	// WebhookURL receives JSON with a Slack-compatible "text" field; env
	// SESGATE_ALERT_WEBHOOK wins.
	WebhookURL string `yaml:"webhook_url"`
}

// AccountGuard runs the breaker over all tenants (defaults
// breaker.AccountDefaults: 3% bounces, 0.08% complaints).
type AccountGuard struct {
	Enabled bool    `yaml:"enabled"`
	Breaker Breaker `yaml:",inline"`
}

// Breaker overrides breaker settings; a key left out keeps the default.
type Breaker struct {
	Window               *time.Duration `yaml:"window"`
	MinSent              *int64         `yaml:"min_sent"`
	BounceRate           *float64       `yaml:"bounce_rate"`
	WarnBounceRate       *float64       `yaml:"warn_bounce_rate"`
	FastWindow           *time.Duration `yaml:"fast_window"`
	FastBounceRate       *float64       `yaml:"fast_bounce_rate"`
	FastMinBounces       *int64         `yaml:"fast_min_bounces"`
	ComplaintWindow      *time.Duration `yaml:"complaint_window"`
	ComplaintMinSent     *int64         `yaml:"complaint_min_sent"`
	ComplaintRate        *float64       `yaml:"complaint_rate"`
	WarnComplaintRate    *float64       `yaml:"warn_complaint_rate"`
	ComplaintBurst       *int64         `yaml:"complaint_burst"`
	ComplaintBurstWindow *time.Duration `yaml:"complaint_burst_window"`
	OpenFor              *time.Duration `yaml:"open_for"`
	MaxOpenFor           *time.Duration `yaml:"max_open_for"`
	ForceAfter           *int           `yaml:"force_after"`
	ForceWindow          *time.Duration `yaml:"force_window"`
	ProbeRecipients      *int           `yaml:"probe_recipients"`
	ProbeHold            *time.Duration `yaml:"probe_hold"`
	ProbeMaxBounces      *int64         `yaml:"probe_max_bounces"`
}

// Apply returns base with b's overrides (b may be nil).
func (b *Breaker) Apply(base breaker.Config) breaker.Config {
	if b == nil {
		return base
	}
	set := func(dst any, src any) {
		switch d := dst.(type) {
		case *time.Duration:
			if s := src.(*time.Duration); s != nil {
				*d = *s
			}
		case *int64:
			if s := src.(*int64); s != nil {
				*d = *s
			}
		case *float64:
			if s := src.(*float64); s != nil {
				*d = *s
			}
		case *int:
			if s := src.(*int); s != nil {
				*d = *s
			}
		}
	}
	c := base
	set(&c.Window, b.Window)
	set(&c.MinSent, b.MinSent)
	set(&c.TripBounceRate, b.BounceRate)
	set(&c.WarnBounceRate, b.WarnBounceRate)
	set(&c.FastWindow, b.FastWindow)
	set(&c.FastBounceRate, b.FastBounceRate)
	set(&c.FastMinBounces, b.FastMinBounces)
	set(&c.ComplaintWindow, b.ComplaintWindow)
	set(&c.ComplaintMinSent, b.ComplaintMinSent)
	set(&c.TripComplaintRate, b.ComplaintRate)
	set(&c.WarnComplaintRate, b.WarnComplaintRate)
	set(&c.ComplaintBurst, b.ComplaintBurst)
	set(&c.ComplaintBurstWindow, b.ComplaintBurstWindow)
	set(&c.OpenFor, b.OpenFor)
	set(&c.MaxOpenFor, b.MaxOpenFor)
	set(&c.ForceAfter, b.ForceAfter)
	set(&c.ForceWindow, b.ForceWindow)
	set(&c.ProbeRecipients, b.ProbeRecipients)
	set(&c.ProbeHold, b.ProbeHold)
	set(&c.ProbeMaxBounces, b.ProbeMaxBounces)
	return c
}

// BreakerConfig returns tenant t's breaker config.
func (t *Tenant) BreakerConfig() breaker.Config { return t.Breaker.Apply(breaker.TenantDefaults()) }

// AccountConfig returns the account guard's config, or nil when it is off.
func (p *Policy) AccountConfig() *breaker.Config {
	if p.AccountGuard == nil || !p.AccountGuard.Enabled {
		return nil
	}
	c := p.AccountGuard.Breaker.Apply(breaker.AccountDefaults())
	return &c
}

var (
	topicARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
)

// breakerKeys renames breaker.Config fields to their policy keys (in
// Validate's messages).
var breakerKeys = strings.NewReplacer(
	"ComplaintBurstWindow", "complaint_burst_window", "ComplaintWindow", "complaint_window", "FastWindow", "fast_window",
	"TripBounceRate", "bounce_rate", "WarnBounceRate", "warn_bounce_rate", "FastBounceRate", "fast_bounce_rate",
	"TripComplaintRate", "complaint_rate", "WarnComplaintRate", "warn_complaint_rate", "MaxOpenFor", "max_open_for",
	"OpenFor", "open_for", "ForceWindow", "force_window", "ForceAfter", "force_after", "ProbeRecipients", "probe_recipients",
	"ProbeHold", "probe_hold", "Window", "window",
)

// shortDurations writes 1h0m0s as 1h and 5m0s as 5m.
var shortDurations = strings.NewReplacer("h0m0s", "h", "m0s", "m")

// breakerProblems names the key of each value the breaker refuses in
// override b: the first key its message names that b sets (the defaults
// are valid). A message that names no key b sets follows from b's other
// values: it is reported, on the section at path, only when nothing else
// is. A negative count is found here, as the breaker's message does not
// say which.
func breakerProblems(path string, b *Breaker, c breaker.Config) []problem {
	t := reflect.TypeFor[Breaker]()
	fields := yamlFields(t)
	set := func(key string) reflect.Value {
		if idx, ok := fields[key]; ok {
			if v := reflect.ValueOf(b).Elem().FieldByIndex(idx); !v.IsNil() {
				return v.Elem()
			}
		}
		return reflect.Value{}
	}
	var probs, others []problem
	for _, key := range fieldNames(t) {
		if v := set(key); v.IsValid() && v.CanInt() && v.Type() != reflect.TypeFor[time.Duration]() && v.Int() < 0 {
			probs = append(probs, problem{path: path + "." + key, msg: "must not be negative"})
		}
	}
	err := c.Validate()
	if err == nil {
		return probs
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		msg := shortDurations.Replace(breakerKeys.Replace(strings.TrimPrefix(line, "breaker: ")))
		words := strings.FieldsFunc(msg, func(r rune) bool { return r != '_' && (r < 'a' || r > 'z') })
		if i := slices.IndexFunc(words, func(w string) bool { return set(w).IsValid() }); i >= 0 {
			probs = append(probs, problem{path: path + "." + words[i], msg: strings.TrimPrefix(msg, words[i]+" ")})
		} else {
			others = append(others, problem{path: path, msg: msg})
		}
	}
	if len(probs) == 0 {
		return others
	}
	return probs
}

func (p *Policy) validateFeedback() []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path: path, msg: fmt.Sprintf(format, args...)})
	}
	e := p.Events
	if e.SNS.Path != "" && (!strings.HasPrefix(e.SNS.Path, "/") || e.SNS.Path == "/" || strings.HasPrefix(e.SNS.Path, "/v1/messages")) {
		add("events.sns.path", "must be an absolute path other than / and /v1/messages")
	}
	for i, a := range e.SNS.TopicARNs {
		if !topicARNRE.MatchString(a) {
			add(fmt.Sprintf("events.sns.topic_arns[%d]", i), "%q is not an SNS topic ARN", a)
		}
	}
	for i, r := range e.SNS.Regions {
		if !regionRE.MatchString(r) {
			add(fmt.Sprintf("events.sns.regions[%d]", i), "%q is not an AWS region", r)
		}
	}
	if q := e.SQS.QueueURL; q != "" {
		if u, err := url.Parse(q); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("events.sqs.queue_url", "must be an http(s) SQS queue URL")
		} else if len(e.SNS.TopicARNs) == 0 && !e.SQS.Raw {
			add("events.sqs.queue_url", "needs events.sns.topic_arns (SNS-wrapped messages are verified against them) or events.sqs.raw: true")
		}
	}
	switch e.SuppressionScope {
	case "", "global", "tenant":
	default:
		add("events.suppression_scope", "must be global or tenant")
	}
	if e.SuppressionTTL < 0 {
		add("events.suppression_ttl", "must be >= 0 (0: never expires)")
	}
	if e.MessageTTL < 0 || e.MessageTTL > 30*24*time.Hour {
		add("events.message_ttl", "must be between 0 and 720h")
	}
	if w := p.Alerts.WebhookURL; w != "" {
		if u, err := url.Parse(w); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("alerts.webhook_url", "must be an http(s) URL")
		}
	}
	if a := p.AccountGuard; a != nil {
		probs = append(probs, breakerProblems("account_guard", &a.Breaker, a.Breaker.Apply(breaker.AccountDefaults()))...)
	}
	for i := range p.Tenants {
		if p.Tenants[i].Breaker != nil {
			probs = append(probs, breakerProblems(fmt.Sprintf("tenants[%d].breaker", i), p.Tenants[i].Breaker, p.Tenants[i].BreakerConfig())...)
		}
	}
	return probs
}
