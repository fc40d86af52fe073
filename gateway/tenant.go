package gateway

import (
	"math"
	"net/netip"
	"strings"
	"time"
)

// Tenant is the resolved policy of one sending app. It is immutable once
// built; a policy reload builds new Tenants.
type Tenant struct {
	ID string
	// Identities the tenant may send as: "user@example.com" (exact address),
	// "@example.com" (any address at that domain) or "*" (any address).
	Identities []string
	// RecipientDomains, when not empty, restricts recipients to these
	// domains: "example.com" (exactly) or "*.example.com" (any subdomain).
	RecipientDomains []string
	// SourceNets, when not empty, restricts the client addresses.
	SourceNets []netip.Prefix
	Limits     Limits
	SES        SESOptions
	// Frozen refuses every message (CodeFrozen) before any shared state is
	// read: the policy file's kill switch. The store holds another, set at
	// run time by an operator.
	Frozen bool
}

// Limits bound what one tenant may do. Zero means the gateway default for
// MaxRecipients and MaxMessageBytes, and no limit for the others.
type Limits struct {
	Rate            float64 // messages (or recipients, RatePerRecipient) per second; 0 means unlimited
	Burst           int     // in Rate's unit; 0: the default, see EffectiveBurst
	MaxRecipients   int     // per message
	MaxMessageBytes int64   // raw message size, as SES counts it

	// RatePerRecipient makes Rate and Burst count recipients, as SES does,
	// instead of messages.
	RatePerRecipient bool
	// Quotas in recipients per UTC clock hour and day.
	PerHour, PerDay int64
	// First-contact budget: recipients the tenant has not mailed within the
	// store's known-recipient memory, per UTC clock hour and day.
	FirstContactPerHour, FirstContactPerDay int64
	// PerDomainRate bounds recipients per second to any one recipient
	// domain, with PerDomainBurst (0: the default, see
	// EffectivePerDomainBurst).
	PerDomainRate  float64
	PerDomainBurst int
	// FirstContactWindow bounds the tenant's outstanding first contacts
	// (sent, no SES event yet), clocked by SES Delivery events; zero: off.
	// It applies only with SESOptions.DeliveryEvents (see WindowActive).
	FirstContactWindow FirstContactWindow
	// Shadow names limits (LimitRate, LimitPerHour, ...) that are evaluated,
	// counted and logged but not enforced.
	Shadow []string
}

// EffectiveBurst is the burst of Rate: Burst, or by default max(1, ceil(Rate)).
func (l Limits) EffectiveBurst() int { return defaultBurst(l.Burst, l.Rate) }

// EffectivePerDomainBurst is the burst of PerDomainRate: PerDomainBurst, or
// by default max(1, ceil(PerDomainRate)).
func (l Limits) EffectivePerDomainBurst() int { return defaultBurst(l.PerDomainBurst, l.PerDomainRate) }

// defaultBurst is burst when set, else one second of rate, at least 1.
func defaultBurst(burst int, rate float64) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(rate)))
}

// Names of the limits, as used in Limits.Shadow, logs and metrics.
const (
	LimitRate                = "rate"
	LimitPerHour             = "per_hour"
	LimitPerDay              = "per_day"
	LimitFirstContactPerHour = "first_contact_per_hour"
	LimitFirstContactPerDay  = "first_contact_per_day"
	LimitPerDomainRate       = "per_domain_rate"
	LimitFirstContactWindow  = "first_contact_window"
)

// LimitNames lists every limit that can run in shadow mode.
func LimitNames() []string {
	return []string{LimitRate, LimitPerHour, LimitPerDay, LimitFirstContactPerHour, LimitFirstContactPerDay, LimitPerDomainRate, LimitFirstContactWindow}
}

// FirstContactWindow is a TCP-like window on a tenant's first contacts:
// first contacts that are outstanding (sent, no Delivery, Bounce or
// Complaint event yet) may not exceed the window. Each Delivery of an
// outstanding first contact grows it (+1 below Threshold, slow start; +1/window
// above, additive). Hard bounces shrink it by rate, not one by one: every
// Sample settled first contacts (delivered or hard-bounced) end an epoch,
// and the window halves (and sets the threshold) when more than
// ShrinkBounceRate of them bounced. Each complaint halves it at once. All
// within Min..Max. Outstanding entries expire after OutstandingTimeout
// without growing it. Max 0 means no window.
type FirstContactWindow struct {
	Initial, Min, Max, Threshold int64
	OutstandingTimeout           time.Duration
	// Sample is the settled first contacts per epoch (0: DefaultWindowSample).
	Sample int64
	// ShrinkBounceRate is the bounce rate of an epoch above which the window
	// halves (0: DefaultWindowShrinkBounceRate).
	ShrinkBounceRate float64
}

// SampleSize is Sample, or its default when unset.
func (w FirstContactWindow) SampleSize() int64 {
	if w.Sample <= 0 {
		return DefaultWindowSample
	}
	return w.Sample
}

// BounceRate is ShrinkBounceRate, or its default when unset.
func (w FirstContactWindow) BounceRate() float64 {
	if w.ShrinkBounceRate <= 0 {
		return DefaultWindowShrinkBounceRate
	}
	return w.ShrinkBounceRate
}

// On reports whether a window is configured.
func (w FirstContactWindow) On() bool { return w.Max > 0 }

// Defaults of a configured window (package config fills them in).
const (
	DefaultWindowInitial   = 20
	DefaultWindowMin       = 5
	DefaultWindowMax       = 2000
	DefaultWindowThreshold = 1000
	DefaultWindowTimeout   = 10 * time.Minute
	// DefaultWindowSample: 20 settled first contacts per epoch, so one
	// bounce in 20 (5%) is tolerated and two are not.
	DefaultWindowSample = 20
	// DefaultWindowShrinkBounceRate is SES's review line for bounces (5%).
	DefaultWindowShrinkBounceRate = 0.05
)

// WindowActive reports whether the first-contact window applies to the
// tenant: configured, and its configuration set declared to publish
// Delivery events (without them the window could never open, so the static
// first-contact budget applies alone).
func (t *Tenant) WindowActive() bool {
	return t.Limits.FirstContactWindow.On() && t.SES.DeliveryEvents
}

// SESOptions are the per-tenant fields of the SES send.
type SESOptions struct {
	ConfigurationSet string // the default when the app names none
	// ConfigurationSets the app may name (SESParams.ConfigurationSet); empty:
	// ConfigurationSet only.
	ConfigurationSets []string
	TenantName        string // optional SES tenant
	// DeliveryEvents declares that the tenant's configuration set publishes
	// Delivery events (with Bounce and Complaint) to the gateway's event
	// intake: the first-contact window needs them.
	DeliveryEvents bool
}

// Defaults applied when a limit is zero: SES's own hard limits.
const (
	DefaultMaxRecipients   = 50
	DefaultMaxMessageBytes = 40 << 20
)

// MaxRecipients returns the effective per-message recipient limit.
func (t *Tenant) MaxRecipients() int {
	if t.Limits.MaxRecipients > 0 {
		return t.Limits.MaxRecipients
	}
	return DefaultMaxRecipients
}

// MaxMessageBytes returns the effective message size limit.
func (t *Tenant) MaxMessageBytes() int64 {
	if t.Limits.MaxMessageBytes > 0 {
		return t.Limits.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}

// AllowsSender reports whether addr (already validated) is one of the
// tenant's identities.
func (t *Tenant) AllowsSender(addr string) bool {
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	domain := addr[at:]
	for _, id := range t.Identities {
		id = strings.ToLower(id)
		if id == "*" || id == addr || id == domain {
			return true
		}
	}
	return false
}

// AllowsRecipient reports whether addr (already validated) may be mailed.
func (t *Tenant) AllowsRecipient(addr string) bool {
	if len(t.RecipientDomains) == 0 {
		return true
	}
	domain := strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
	for _, d := range t.RecipientDomains {
		d = strings.ToLower(d)
		if d == domain {
			return true
		}
		if suffix, ok := strings.CutPrefix(d, "*"); ok && strings.HasSuffix(domain, suffix) && len(domain) > len(suffix) {
			return true
		}
	}
	return false
}

// AllowsSource reports whether a client at addr may use this tenant.
func (t *Tenant) AllowsSource(addr netip.Addr) bool {
	if len(t.SourceNets) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range t.SourceNets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
