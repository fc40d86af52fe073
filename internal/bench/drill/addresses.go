package drill

import (
	"fmt"
	"strings"
)

// The local-part prefixes the SES test server bounces and complains on.
const (
	BouncePrefix    = "bounce"
	ComplaintPrefix = "complaint"
)

// List is a recipient list of N addresses at Domain, of which
// BounceFraction (exactly, rounded down) bounce and ComplaintFraction (to
// within one address) complain, spread evenly over the list.
type List struct {
	Domain            string
	N                 int
	BounceFraction    float64
	ComplaintFraction float64
}

// Address returns the i-th address (i modulo N).
func (l List) Address(i int64) string {
	i %= int64(l.N)
	switch {
	case picked(i, l.BounceFraction):
		return fmt.Sprintf("%s-%d@%s", BouncePrefix, i, l.Domain)
	case l.BounceFraction < 1 && picked(i-int64(float64(i)*l.BounceFraction), l.ComplaintFraction/(1-l.BounceFraction)):
		// the k-th of the addresses that do not bounce
		return fmt.Sprintf("%s-%d@%s", ComplaintPrefix, i, l.Domain)
	}
	return fmt.Sprintf("rcpt-%d@%s", i, l.Domain)
}

// picked reports whether index i is one of the fraction f of indexes,
// spread evenly: floor((i+1)f) > floor(i f).
func picked(i int64, f float64) bool {
	if f <= 0 {
		return false
	}
	return int64(float64(i+1)*f) > int64(float64(i)*f)
}

// Fate is what SES does with a recipient, by its local part (the SES test
// server's rule).
type Fate int

// Fates.
const (
	Delivered Fate = iota
	Bounced
	Complained
)

// FateOf returns the fate of addr.
func FateOf(addr string) Fate {
	local := strings.ToLower(addr)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	switch {
	case strings.HasPrefix(local, BouncePrefix):
		return Bounced
	case strings.HasPrefix(local, ComplaintPrefix):
		return Complained
	}
	return Delivered
}
