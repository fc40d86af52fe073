package load

import "fmt"

// Bounds and defaults of the recipient mix.
const (
	// KnownPool is how many known addresses the mix draws from: each is
	// mailed once per gateway before the first phase (Seed), so the
	// gateway has seen it when a phase sends to it again.
	KnownPool  = 1000
	MaxDomains = 10_000
	// MinSeeded is how many of the pool must be accepted when it is
	// mailed, or the run stops.
	MinSeeded = KnownPool * 95 / 100
)

// Mix is the recipients of the realistic scenario: a share KnownFraction
// of the sends go to a pool of KnownPool addresses mailed before (known
// recipients), the rest to addresses never used before (first contacts),
// spread over Domains recipient domains d<N>.<Domain>.
//
// Which sends are known is fixed by the sequence number, evenly: send seq
// is known when floor((seq+1)*f) > floor(seq*f), so any run of n
// consecutive sends has floor(n*f) or one fewer or more known ones.
type Mix struct {
	KnownFraction float64
	Domains       int    // >= 1
	Domain        string // suffix; default example.net
	// Tag makes the first contacts of one phase unique over the whole
	// invocation (with the sequence number, which Options.SeqBase keeps
	// apart between a warm-up and its phase).
	Tag string
	// Seed: recipient seq is known address seq (mod KnownPool), for the run
	// that makes the pool known.
	Seed bool
}

// Known reports whether send seq goes to a known address.
func (m *Mix) Known(seq int64) bool {
	if m.Seed {
		return true
	}
	f := m.KnownFraction
	return int64(float64(seq+1)*f) > int64(float64(seq)*f)
}

// Recipient returns the address of send seq.
func (m *Mix) Recipient(seq int64) string {
	dom := m.Domain
	if dom == "" {
		dom = "example.net"
	}
	d := int64(max(m.Domains, 1))
	if m.Known(seq) {
		k := seq % KnownPool
		return fmt.Sprintf("known%d@d%d.%s", k, k%d, dom)
	}
	return fmt.Sprintf("new-%s-%d@d%d.%s", m.Tag, seq, seq%d, dom)
}
