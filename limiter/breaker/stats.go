package breaker

import (
	"cmp"
	"slices"
	"time"
)

// Stats are the window sums the rules look at.
type Stats struct {
	Sent, HardBounces int64   // send time, over Window
	BounceRate        float64 // HardBounces / Sent; 0 when nothing was sent
	FastSent          int64   // send time, over FastWindow
	FastBounces       int64   // event time, over FastWindow
	Sent24            int64   // send time, over ComplaintWindow
	Complaints24      int64
	ComplaintRate     float64
	BurstComplaints   int64 // event time, over ComplaintBurstWindow
}

// Stats returns the window sums of s at now.
func (s Snapshot) Stats(c Config, now time.Time) Stats {
	minute, hour := now.Unix()/60, now.Unix()/3600
	slow := sumRing(s.Minutes, minute, int(c.Window/time.Minute))
	fast := sumRing(s.Minutes, minute, int(c.FastWindow/time.Minute))
	day := sumRing(s.Hours, hour, int(c.ComplaintWindow/time.Hour))
	ev := sumRing(s.Events, minute, int(c.FastWindow/time.Minute))
	burst := sumRing(s.Events, minute, int(c.ComplaintBurstWindow/time.Minute))
	st := Stats{
		Sent: slow.Sent, HardBounces: slow.Bounces,
		FastSent: fast.Sent, FastBounces: ev.Bounces,
		Sent24: day.Sent, Complaints24: day.Complaints,
		BurstComplaints: burst.Complaints,
	}
	if st.Sent > 0 {
		st.BounceRate = float64(st.HardBounces) / float64(st.Sent)
	}
	if st.Sent24 > 0 {
		st.ComplaintRate = float64(st.Complaints24) / float64(st.Sent24)
	}
	return st
}

// Contribution is one tenant's share of the account's hard bounces.
type Contribution struct {
	Tenant      string
	HardBounces int64   // over the slow window, by send time
	Sent        int64   // over the slow window
	BounceRate  float64 // HardBounces / Sent
	Share       float64 // HardBounces / all tenants' hard bounces
}

// RankByBounces orders tenants for the account guard to shed, worst first:
// most hard bounces over c's window, then highest bounce rate, then id.
// Tenants without hard bounces are left out.
func RankByBounces(c Config, now time.Time, tenants map[string]Snapshot) []Contribution {
	var out []Contribution
	var total int64
	for id, s := range tenants {
		st := s.Stats(c, now)
		if st.HardBounces == 0 {
			continue
		}
		total += st.HardBounces
		out = append(out, Contribution{Tenant: id, HardBounces: st.HardBounces, Sent: st.Sent, BounceRate: st.BounceRate})
	}
	for i := range out {
		out[i].Share = float64(out[i].HardBounces) / float64(total)
	}
	slices.SortFunc(out, func(a, b Contribution) int {
		return cmp.Or(cmp.Compare(b.HardBounces, a.HardBounces), cmp.Compare(b.BounceRate, a.BounceRate), cmp.Compare(a.Tenant, b.Tenant))
	})
	return out
}
