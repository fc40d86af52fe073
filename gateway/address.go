package gateway

import (
	"strings"
)

// MaxAddressLength is the RFC 5321 limit on a forward path.
const MaxAddressLength = 254

// ParseAddress validates an envelope address (no display name, no angle
// brackets) and returns it with the domain lowercased. SES takes only 7-bit
// local parts and ASCII (Punycode) domains, so anything else is refused here
// rather than by SES after the client was told yes.
func ParseAddress(s string) (string, error) {
	if s == "" {
		return "", Errorf(CodeInvalidAddress, "empty address")
	}
	if len(s) > MaxAddressLength {
		return "", Errorf(CodeInvalidAddress, "address too long")
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", Errorf(CodeInvalidAddress, "address must be local@domain")
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 || !validLocal(local) {
		return "", Errorf(CodeInvalidAddress, "invalid local part")
	}
	if !validDomain(domain) {
		return "", Errorf(CodeInvalidAddress, "invalid domain")
	}
	if lower := strings.ToLower(domain); lower != domain {
		return local + "@" + lower, nil
	}
	return s, nil // already canonical: no copy
}

// validLocal accepts an RFC 5322 dot-atom of ASCII atext.
func validLocal(s string) bool {
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validDomain accepts an ASCII hostname of at least two labels.
func validDomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	if strings.IndexByte(s, '.') < 0 {
		return false // fewer than two labels
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
