package gateway

import (
	"errors"
	"strings"
	"testing"
)

// refParseAddressHeader is parseAddressHeader as it was before the
// dot-atom fast path: always through net/mail.
func refParseAddressHeader(field, v string) ([]string, error) {
	v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	return parseAddressList(field, strings.TrimSpace(v))
}

// TestParseAddressHeaderFastPathMatchesNetMail: a bare address answered
// without net/mail gives exactly what net/mail followed by ParseAddress
// gives (address or error message), for plain, odd and hostile values.
func TestParseAddressHeaderFastPathMatchesNetMail(t *testing.T) {
	for _, v := range []string{
		"app@acme.example", " App.Ops@ACME.Example \r\n", "a+b@x.example", "a..b@x.example", ".a@x.example",
		"a.@x.example", "a@x", "a@x..example", "a@-x.example", "a@@x.example", "@x.example", "a@", "",
		"a@x.example,b@y.example", "Ann <a@x.example>", "a@x.example (c)", `"a b"@x.example`, "a@[1.2.3.4]",
		"a@x.example.", "\r\n a@x.example \r\n", "a@x.example\r", "\ra@x.example", "a\r\n@x.example", "a@x.\r\n\r\n example", "!#$%&'*+-/=?^_`{|}~@x.example", "a@x_y.example", "a@\r\n x.example", "é@x.example",
		strings.Repeat("a", 65) + "@x.example", "a@" + strings.Repeat("b.", 130) + "example",
	} {
		got, gerr := parseAddressHeader("From", v)
		want, werr := refParseAddressHeader("From", v)
		if (gerr == nil) != (werr == nil) || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%q: got %q, %v; want %q, %v", v, got, gerr, want, werr)
			continue
		}
		var ge, we *Error
		if gerr != nil && (!errors.As(gerr, &ge) || !errors.As(werr, &we) || ge.Error() != we.Error()) {
			t.Errorf("%q: error %v, want %v", v, gerr, werr)
		}
	}
}

// TestParseAddressCanonicalAllocatesNothing counts: an address already in
// canonical form (lowercase domain) comes back without a copy, and a
// plain From header value costs only its one-element result slice.
func TestParseAddressCanonicalAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseAddress("app.ops@mail.acme.example") }); n != 0 {
		t.Errorf("ParseAddress allocates %.0f times, want 0", n)
	}
	if a, _ := ParseAddress("App@ACME.example"); a != "App@acme.example" {
		t.Errorf("ParseAddress lowercased to %q", a)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = parseAddressHeader("From", " app@acme.example\r\n") }); n > 1 {
		t.Errorf("parseAddressHeader allocates %.0f times, want <= 1", n)
	}
}
