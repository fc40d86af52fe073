package gateway

import (
	"slices"
	"strings"
)

// SES's rules for message tags (SendEmail EmailTags, X-SES-MESSAGE-TAGS):
// names and values of ASCII letters, digits, '_' and '-', at most 256
// characters each.
const (
	MaxTagLength = 256
	// MaxMessageTags bounds the tags an app may set on one message: SES
	// takes at most 50 per message and the sink adds its own two.
	MaxMessageTags = 48
)

// ReservedTagPrefix starts the names of the tags sesgate sets itself
// (tenant, gateway message id): an app may not set or override them.
const ReservedTagPrefix = "sesgate-"

// MessageTag is one SES message tag an app set on a message.
type MessageTag struct {
	Name, Value string
}

// ListManagement is SES's ListManagementOptions: the contact list and
// topic a message belongs to, for SES's subscription management.
type ListManagement struct {
	ContactListName string
	TopicName       string // optional
}

// SESParams are the SES parameters an app chose for one message, whichever
// door it came through (SMTP X-SES-* headers, sesgate's HTTP JSON fields,
// the SES API). The zero value asks for nothing: the tenant's defaults.
// Identity ARNs, feedback forwarding and the SES TenantName are the
// policy's and never come from the app.
type SESParams struct {
	// ConfigurationSet, when not empty, must be one the tenant may use
	// (Tenant.AllowsConfigurationSet).
	ConfigurationSet string
	Tags             []MessageTag
	ListManagement   *ListManagement
}

// CheckSESParams refuses (CodeBadParameter, naming the parameter) what t may
// not ask for or SES would refuse: a configuration set outside the tenant's
// list, a malformed, duplicate or reserved tag name, a malformed tag value,
// more than MaxMessageTags tags, a list management option without its
// contact list or with a malformed name.
func (t *Tenant) CheckSESParams(p *SESParams) error {
	if p == nil {
		return nil
	}
	if p.ConfigurationSet != "" && !t.AllowsConfigurationSet(p.ConfigurationSet) {
		return Errorf(CodeBadParameter, "configuration set %q is not allowed for this tenant", p.ConfigurationSet)
	}
	if len(p.Tags) > MaxMessageTags {
		return Errorf(CodeBadParameter, "more than %d message tags", MaxMessageTags)
	}
	for i, tag := range p.Tags {
		switch {
		case !validTagText(tag.Name):
			return Errorf(CodeBadParameter, "message tag name %q: 1 to %d characters of A-Z, a-z, 0-9, '_' and '-'", clip(tag.Name), MaxTagLength)
		case !validTagText(tag.Value):
			return Errorf(CodeBadParameter, "message tag %q value: 1 to %d characters of A-Z, a-z, 0-9, '_' and '-'", tag.Name, MaxTagLength)
		case strings.HasPrefix(strings.ToLower(tag.Name), ReservedTagPrefix):
			return Errorf(CodeBadParameter, "message tag name %q is reserved (names starting %q are sesgate's)", tag.Name, ReservedTagPrefix)
		case slices.ContainsFunc(p.Tags[:i], func(o MessageTag) bool { return o.Name == tag.Name }):
			return Errorf(CodeBadParameter, "message tag %q set twice", tag.Name)
		}
	}
	if lm := p.ListManagement; lm != nil {
		if !validTagText(lm.ContactListName) {
			return Errorf(CodeBadParameter, "list management contact list name: 1 to %d characters of A-Z, a-z, 0-9, '_' and '-'", MaxTagLength)
		}
		if lm.TopicName != "" && !validTagText(lm.TopicName) {
			return Errorf(CodeBadParameter, "list management topic name: 1 to %d characters of A-Z, a-z, 0-9, '_' and '-'", MaxTagLength)
		}
	}
	return nil
}

// AllowsConfigurationSet reports whether t may send with the SES
// configuration set name: one of SES.ConfigurationSets, or, when that list
// is empty, SES.ConfigurationSet (the policy's default) only.
func (t *Tenant) AllowsConfigurationSet(name string) bool {
	if len(t.SES.ConfigurationSets) == 0 {
		return name == t.SES.ConfigurationSet
	}
	return slices.Contains(t.SES.ConfigurationSets, name)
}

// validTagText reports whether s is a valid SES tag name or value.
func validTagText(s string) bool {
	if s == "" || len(s) > MaxTagLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// clip cuts s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
