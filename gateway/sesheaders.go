package gateway

import (
	"strings"
)

// The SES header fields an app may set on a raw message (SMTP, HTTP
// message/rfc822), as SES's SMTP interface reads them. PrepareMessage
// consumes them into PreparedMessage.SES and never forwards them.
const (
	HeaderConfigurationSet = "X-SES-CONFIGURATION-SET"
	HeaderMessageTags      = "X-SES-MESSAGE-TAGS"
	HeaderListManagement   = "X-SES-LIST-MANAGEMENT-OPTIONS"
)

// sesHeaders collects the X-SES-* fields of one message.
type sesHeaders struct {
	p    SESParams
	seen map[string]bool // canonical names already given
}

// add consumes one X-SES-* field (lowercased name, raw value with its
// folding). Every X-SES-* field other than the three above (the identity
// ARNs X-SES-SOURCE-ARN, X-SES-FROM-ARN, X-SES-RETURN-PATH-ARN, or any
// other) is the policy's: refused with CodeBadParameter naming it, as is a
// repeated or malformed field. Whether the values are allowed for the
// tenant is Tenant.CheckSESParams'.
func (h *sesHeaders) add(lower, rawValue string) error {
	name := strings.ToUpper(lower)
	switch name {
	case HeaderConfigurationSet, HeaderMessageTags, HeaderListManagement:
	default:
		return Errorf(CodeBadParameter, "%s header is not allowed: identity ARNs and other SES options are set by the gateway's policy", clip(name))
	}
	if h.seen[name] {
		return Errorf(CodeBadParameter, "%s header given more than once", name)
	}
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	h.seen[name] = true
	v := strings.TrimSpace(strings.NewReplacer("\r\n", "", "\n", "").Replace(rawValue))
	if v == "" {
		return Errorf(CodeBadParameter, "%s header is empty", name)
	}
	switch name {
	case HeaderConfigurationSet:
		if !validTagText(v) {
			return Errorf(CodeBadParameter, "%s header: not a configuration set name (1 to %d characters of A-Z, a-z, 0-9, '_' and '-')", name, MaxTagLength)
		}
		h.p.ConfigurationSet = v
	case HeaderMessageTags:
		tags, err := parseMessageTags(v)
		if err != nil {
			return err
		}
		h.p.Tags = tags
	case HeaderListManagement:
		lm, err := parseListManagement(v)
		if err != nil {
			return err
		}
		h.p.ListManagement = lm
	}
	return nil
}

// parseMessageTags parses SES's X-SES-MESSAGE-TAGS syntax:
// "name1=value1, name2=value2". Spaces around names and values are
// ignored; the names and values themselves are checked by CheckSESParams.
func parseMessageTags(v string) ([]MessageTag, error) {
	items := strings.Split(v, ",")
	if len(items) > MaxMessageTags {
		return nil, Errorf(CodeBadParameter, "%s header: more than %d message tags", HeaderMessageTags, MaxMessageTags)
	}
	tags := make([]MessageTag, 0, len(items))
	for _, item := range items {
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, Errorf(CodeBadParameter, "%s header: want name1=value1, name2=value2, got %q", HeaderMessageTags, clip(strings.TrimSpace(item)))
		}
		tags = append(tags, MessageTag{Name: name, Value: value})
	}
	return tags, nil
}

// parseListManagement parses SES's X-SES-LIST-MANAGEMENT-OPTIONS syntax:
// "contactListName" or "contactListName; topic=topicName".
func parseListManagement(v string) (*ListManagement, error) {
	parts := strings.Split(v, ";")
	lm := &ListManagement{ContactListName: strings.TrimSpace(parts[0])}
	bad := Errorf(CodeBadParameter, "%s header: want contactListName or contactListName; topic=topicName, got %q", HeaderListManagement, clip(v))
	if lm.ContactListName == "" || len(parts) > 2 {
		return nil, bad
	}
	if len(parts) == 2 {
		k, topic, ok := strings.Cut(parts[1], "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "topic") || strings.TrimSpace(topic) == "" {
			return nil, bad
		}
		lm.TopicName = strings.TrimSpace(topic)
	}
	return lm, nil
}

// MergeSESParams merges the parameters a front end set (fromRequest: JSON
// fields, the SES API) with those of the message's X-SES-* header fields
// (fromHeaders). A parameter given by both must agree: a configuration set
// or list management option that differs, or a tag name with two values,
// is refused with CodeBadParameter naming both sources. Tags of both are
// kept (once when both give the same tag).
func MergeSESParams(fromRequest, fromHeaders SESParams) (SESParams, error) {
	out := fromRequest
	if cs := fromHeaders.ConfigurationSet; cs != "" {
		if out.ConfigurationSet != "" && out.ConfigurationSet != cs {
			return out, Errorf(CodeBadParameter, "configuration set: the %s header (%q) and the request's configuration_set (%q) differ", HeaderConfigurationSet, clip(cs), clip(out.ConfigurationSet))
		}
		out.ConfigurationSet = cs
	}
	if lm := fromHeaders.ListManagement; lm != nil {
		if out.ListManagement != nil && *out.ListManagement != *lm {
			return out, Errorf(CodeBadParameter, "list management: the %s header and the request's list_management differ", HeaderListManagement)
		}
		out.ListManagement = lm
	}
	if len(fromHeaders.Tags) > 0 {
		tags := append([]MessageTag(nil), out.Tags...)
	next:
		for _, ht := range fromHeaders.Tags {
			for _, rt := range out.Tags {
				if rt.Name != ht.Name {
					continue
				}
				if rt.Value != ht.Value {
					return out, Errorf(CodeBadParameter, "message tag %q: the %s header (%q) and the request's tags (%q) differ", clip(ht.Name), HeaderMessageTags, clip(ht.Value), clip(rt.Value))
				}
				continue next
			}
			tags = append(tags, ht)
		}
		out.Tags = tags
	}
	return out, nil
}
