package drill

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Text writes the report as tables for a person.
func (r *Report) Text(w io.Writer) {
	fmt.Fprintf(w, "sesgate-bench drill  %s  %s\n", r.Date.Format(time.RFC3339), r.Scenario)
	fmt.Fprintf(w, "%.1f s of traffic and events\n\n", r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "sender\ttenant\tsent\t200\tSES msgs\tSES rcpts\tbounces\tcomplaints\trefusals by code\tfirst breaker_open")
	for _, rw := range r.Rows {
		var ref []string
		for _, k := range slices.Sorted(maps.Keys(rw.Refusals)) {
			ref = append(ref, fmt.Sprintf("%s=%d", k, rw.Refusals[k]))
		}
		for _, k := range slices.Sorted(maps.Keys(rw.Rejected)) {
			ref = append(ref, fmt.Sprintf("rcpt:%s=%d", k, rw.Rejected[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", rw.Name, rw.Tenant, rw.Sent, rw.Accepted,
			rw.SESMessages, rw.SESRecipients, rw.Bounces, rw.Complaints, orNone(ref), secs(rw.FirstBreakerOpen))
	}
	tw.Flush()
	a := r.Account
	fmt.Fprintf(w, "\naccount (as SES counts it): %d recipients, %d bounces (%.2f%%), %d complaints (%.3f%%); events %d, refused by the gateway %d, lost %d\n",
		a.Recipients, a.Bounces, 100*a.BounceRate, a.Complaints, 100*a.ComplaintRate, a.Events, a.EventsRefused, a.EventsLost)
	r.firstContactsText(w)
	if r.Trip.Victim != "" {
		r.tripText(w)
	} else {
		fmt.Fprintln(w)
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %-23s %s\n", mark, c.Name, c.Detail)
	}
	for _, rw := range r.Rows {
		for _, k := range slices.Sorted(maps.Keys(rw.Examples)) {
			fmt.Fprintf(w, "     %s %s e.g. %s\n", rw.Name, k, strings.TrimSpace(rw.Examples[k]))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if r.Passed {
		fmt.Fprintln(w, "\nPASS")
	} else {
		fmt.Fprintln(w, "\nFAIL")
	}
}

// tripText writes the victim's breaker.
func (r *Report) tripText(w io.Writer) {
	t := r.Trip
	fmt.Fprintf(w, "breaker of %s: first bounce event %s, threshold crossed %s", t.Victim, secs(t.FirstBounce), secs(t.Threshold))
	if t.ThresholdReason != "" {
		fmt.Fprintf(w, " (%s)", t.ThresholdReason)
	}
	fmt.Fprintf(w, ", first breaker_open %s", secs(t.Tripped))
	if t.AfterFirstBounce != nil {
		fmt.Fprintf(w, " = first bounce %+.2fs", *t.AfterFirstBounce)
	}
	if t.AfterThreshold != nil {
		fmt.Fprintf(w, " = threshold %+.2fs", *t.AfterThreshold)
	}
	fmt.Fprintf(w, "; attacker messages after the trip: %d\n\n", t.AttackerAfterTrip)
}

// firstContactsText writes, per tenant with traffic, its first contacts
// per second, its ramp and its window refusals.
func (r *Report) firstContactsText(w io.Writer) {
	for _, rw := range r.Rows {
		if rw.FirstContacts == nil {
			continue
		}
		fmt.Fprintf(w, "first contacts of %s: held by the window %d", rw.Name, rw.WindowHeld)
		if rw.OfferedNew > 0 {
			fmt.Fprintf(w, "; offered %g new/s, %g%% of it (over %v) reached at %s", rw.OfferedNew, rw.RampPercent, RampSpan, secs(rw.Ramp))
		}
		fmt.Fprintf(w, "; second half %.1f new/s; per second: %s\n", rw.SecondHalfNew, ints(rw.FirstContacts))
	}
}

func ints(v []int64) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " ")
}
