package drill

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A cold start: a new tenant mailing new recipients, whose first-contact
// window opens as SES Delivery events come back, next to a steady tenant
// mailing recipients it already knows. The drill measures, per tenant, the
// first contacts SES accepted in each second of the run, the time until
// that rate first reaches a share of the rate of new recipients the tenant
// offers (its ramp), and the answers its window held back.

// Bounds and defaults of the cold-start measures.
const (
	// DefaultRampPercent is the share of its offered rate of new
	// recipients a tenant must reach (expect.ramp_percent).
	DefaultRampPercent = 90
	// RampSpan is the span over which the rate of first contacts is
	// averaged: the ramp ends with the first RampSpan, in whole seconds
	// from the start, whose average reaches the share.
	RampSpan = 5 * time.Second
	// MaxWarmRecipients bounds the list of a warm tenant.
	MaxWarmRecipients = 10_000
	// warmLimit bounds a warm-up, and warmRetry paces the retries of a
	// message held back during it.
	warmLimit = 3 * time.Minute
	warmRetry = 250 * time.Millisecond
)

// Expect is a tenant's expect: what must hold for it.
type Expect struct {
	// RampWithin: the tenant's rate of first contacts must reach
	// RampPercent of its offered rate of new recipients within this time
	// from the start. Needs traffic that mails only new recipients.
	RampWithin  time.Duration `yaml:"ramp_within"`
	RampPercent float64       `yaml:"ramp_percent"`
	// NeverHeld: the tenant's first-contact window must hold back none of
	// its messages.
	NeverHeld bool `yaml:"never_held"`
	// SustainPercent: the tenant's mean rate of first contacts over the
	// second half of the run must be at least this share of its offered
	// rate of new recipients (the ramp held). Needs ramp_within.
	SustainPercent float64 `yaml:"sustain_percent"`
}

// OfferedNew is the rate of new recipients t offers: its traffic rate when
// every send of the run goes to a new address (not warm, a list at least
// rate × duration long), else 0 (not measured).
func (t *Tenant) OfferedNew(d time.Duration) float64 {
	tr := t.Traffic
	if tr.Rate <= 0 || tr.Warm || float64(tr.Recipients) < tr.Rate*d.Seconds() {
		return 0
	}
	return tr.Rate
}

// expectProblems checks t's expect and warm-up keys.
func (t *Tenant) expectProblems(key string, d time.Duration) []string {
	var errs []string
	bad := func(k, format string, a ...any) { errs = append(errs, key+k+": "+fmt.Sprintf(format, a...)) }
	if t.Traffic.Warm && (t.Traffic.Recipients > MaxWarmRecipients || t.Traffic.Rate <= 0) {
		bad(".traffic.warm", "needs traffic.rate above 0 and at most %d traffic.recipients", MaxWarmRecipients)
	}
	e := t.Expect
	if e == nil {
		return errs
	}
	if e.RampWithin == 0 && !e.NeverHeld {
		bad(".expect", "set ramp_within, or never_held: true")
	}
	if e.RampWithin != 0 {
		if e.RampWithin < RampSpan || e.RampWithin > d {
			bad(".expect.ramp_within", "%v outside [%v, duration %v]", e.RampWithin, RampSpan, d)
		}
		if t.OfferedNew(d) == 0 {
			bad(".expect.ramp_within", "needs traffic that mails only new recipients: traffic.rate above 0, not warm, traffic.recipients at least rate × duration (%.0f)",
				t.Traffic.Rate*d.Seconds())
		}
	}
	switch {
	case e.RampWithin == 0 && e.RampPercent != 0:
		bad(".expect.ramp_percent", "only with ramp_within")
	case e.RampPercent < 0 || e.RampPercent > 100:
		bad(".expect.ramp_percent", "%v outside (0, 100]", e.RampPercent)
	}
	switch {
	case e.RampWithin == 0 && e.SustainPercent != 0:
		bad(".expect.sustain_percent", "only with ramp_within")
	case e.SustainPercent < 0 || e.SustainPercent > 100:
		bad(".expect.sustain_percent", "%v outside (0, 100]", e.SustainPercent)
	}
	if e.NeverHeld && t.Limits.FirstContactWindow == nil {
		bad(".expect.never_held", "the tenant has no first_contact_window to hold it back")
	}
	return errs
}

// firstContacts counts, per tenant, the recipients SES accepted from it for
// the first time (earlier messages, a warm-up's included, make an address
// known), in each second since start; n is the number of seconds.
func firstContacts(msgs []SESMessage, start time.Time, n int) map[string][]int64 {
	seen := map[string]map[string]struct{}{}
	out := map[string][]int64{}
	for _, m := range msgs {
		known := seen[m.Tenant]
		if known == nil {
			known = map[string]struct{}{}
			seen[m.Tenant] = known
		}
		for _, a := range m.Recipients {
			if _, ok := known[a]; ok {
				continue
			}
			known[a] = struct{}{}
			if m.At.Before(start) {
				continue
			}
			s := out[m.Tenant]
			if s == nil {
				s = make([]int64, n)
			}
			i := int(m.At.Sub(start) / time.Second)
			for len(s) <= i {
				s = append(s, 0)
			}
			s[i]++
			out[m.Tenant] = s
		}
	}
	return out
}

// rampTime is the end, in seconds since the start, of the first RampSpan
// within the first `seconds` seconds whose average of perSecond reaches
// want; nil when none does.
func rampTime(perSecond []int64, seconds int, want float64) *float64 {
	span := int(RampSpan / time.Second)
	var sum int64
	for i := 0; i < min(len(perSecond), seconds); i++ {
		sum += perSecond[i]
		if i >= span {
			sum -= perSecond[i-span]
		}
		if i+1 >= span && float64(sum) >= want*float64(span) {
			v := float64(i + 1)
			return &v
		}
	}
	return nil
}

// warmUp mails s's whole list once, each address until it is admitted,
// over s.Workers connections: afterwards every address is a recipient the
// tenant has mailed. It fails when an address is refused by something
// other than a limit, or when the warm-up takes longer than warmLimit.
func warmUp(ctx context.Context, url string, s Sender) (held int64, err error) {
	workers := max(s.Workers, 1)
	client := senderClient(workers)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, warmLimit)
	defer cancel()
	var next, heldN atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(s.List.N) {
					return
				}
				for {
					if ctx.Err() != nil {
						mu.Lock()
						firstErr = cmp.Or(firstErr, fmt.Errorf("warm-up of %s: address %d of %d not admitted within %v", s.Name, i, s.List.N, warmLimit))
						mu.Unlock()
						return
					}
					code, _, example, isHeld := send(ctx, client, url, s, i)
					if code == CodeOK {
						break
					}
					if isHeld {
						heldN.Add(1)
					}
					switch code {
					case codeFirstContactLimited, "rate_limited", "store_unavailable": // temporary: retried, as a client would
						sleepUntil(ctx, time.Now().Add(warmRetry))
					default:
						mu.Lock()
						firstErr = cmp.Or(firstErr, fmt.Errorf("warm-up of %s: address %d answered %s %s", s.Name, i, code, example))
						mu.Unlock()
						cancel()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return heldN.Load(), firstErr
}
