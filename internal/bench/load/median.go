package load

import (
	"maps"
	"slices"

	"github.com/sesgate/sesgate/internal/bench"
)

// median sets r.Phases and r.Ratios to the medians of r.Runs, figure by
// figure: rates, percentiles, CPU and Redis work per message are medians;
// counts (messages, answers by code) are totals over the runs. Ratios are
// taken within each run, then their medians, so they hold on a noisy
// machine.
func (r *Report) median() {
	if len(r.Runs) == 0 {
		return
	}
	if len(r.Runs) == 1 {
		r.Phases, r.Ratios = r.Runs[0].Phases, r.Runs[0].Ratios
		return
	}
	r.Notes = append(r.Notes, "figures are medians over the runs (counts are totals); \"runs\" in the JSON has each run")
	r.Phases = nil
	for i := range r.Runs[0].Phases {
		var ps []Phase
		for _, run := range r.Runs {
			if i < len(run.Phases) {
				ps = append(ps, run.Phases[i])
			}
		}
		r.Phases = append(r.Phases, medianPhase(ps))
	}
	r.Ratios = nil
	for i := range r.Runs[0].Ratios {
		var rs []Ratio
		for _, run := range r.Runs {
			if i < len(run.Ratios) {
				rs = append(rs, run.Ratios[i])
			}
		}
		var thins []ThinRatio
		for _, x := range rs {
			if x.Thin != nil {
				thins = append(thins, *x.Thin)
			}
		}
		var thin *ThinRatio
		if len(thins) > 0 {
			thin = &ThinRatio{
				ThroughputRatio: med(thins, func(x ThinRatio) float64 { return x.ThroughputRatio }),
				CPURatio:        med(thins, func(x ThinRatio) float64 { return x.CPURatio }),
				AddedP50Ms:      med(thins, func(x ThinRatio) float64 { return x.AddedP50Ms }),
				AddedP99Ms:      med(thins, func(x ThinRatio) float64 { return x.AddedP99Ms }),
				AddedP50Ratio:   med(thins, func(x ThinRatio) float64 { return x.AddedP50Ratio }),
			}
		}
		r.Ratios = append(r.Ratios, Ratio{
			Phase: rs[0].Phase, Store: rs[0].Store, Concurrency: rs[0].Concurrency, Thin: thin,
			ThroughputRatio: med(rs, func(x Ratio) float64 { return x.ThroughputRatio }),
			LatencyP50Ratio: med(rs, func(x Ratio) float64 { return x.LatencyP50Ratio }),
			AddedP50Ms:      med(rs, func(x Ratio) float64 { return x.AddedP50Ms }),
			AddedP99Ms:      med(rs, func(x Ratio) float64 { return x.AddedP99Ms }),
			AddedP999Ms:     med(rs, func(x Ratio) float64 { return x.AddedP999Ms }),
		})
	}
}

// med returns the median of f over xs (the mean of the middle two for an
// even count).
func med[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func medSummary(ss []bench.Summary) bench.Summary {
	out := bench.Summary{
		P50: med(ss, func(s bench.Summary) float64 { return s.P50 }), P90: med(ss, func(s bench.Summary) float64 { return s.P90 }),
		P99: med(ss, func(s bench.Summary) float64 { return s.P99 }), P999: med(ss, func(s bench.Summary) float64 { return s.P999 }),
		Min: med(ss, func(s bench.Summary) float64 { return s.Min }), Max: med(ss, func(s bench.Summary) float64 { return s.Max }),
		Mean: med(ss, func(s bench.Summary) float64 { return s.Mean }),
	}
	for _, s := range ss {
		out.Count += s.Count
	}
	return out
}

// medianPhase folds one phase's runs.
func medianPhase(ps []Phase) Phase {
	p := Phase{Name: ps[0].Name, Store: ps[0].Store, Concurrency: ps[0].Concurrency, OKCode: ps[0].OKCode, Codes: map[string]int64{}}
	var lat, ses, added []bench.Summary
	var gw, self []float64
	var redis []*Redis
	var accepted int64
	haveAccepted := false
	for _, x := range ps {
		p.Messages += x.Messages
		p.Matched += x.Matched
		p.Late += x.Late
		p.MaxLagMs = max(p.MaxLagMs, x.MaxLagMs)
		for k, v := range x.Codes {
			p.Codes[k] += v
		}
		for k, v := range x.Errors {
			if p.Errors == nil {
				p.Errors = map[string]string{}
			}
			p.Errors[k] = v
		}
		lat = append(lat, x.Latency)
		if x.SESTime != nil && x.Added != nil {
			ses, added = append(ses, *x.SESTime), append(added, *x.Added)
		}
		if x.GatewayCPUPerMsgUs != nil {
			gw = append(gw, *x.GatewayCPUPerMsgUs)
		}
		if x.BenchCPUPerMsgUs != nil {
			self = append(self, *x.BenchCPUPerMsgUs)
		}
		if x.Redis != nil {
			redis = append(redis, x.Redis)
		}
		if x.SESAccepted != nil {
			accepted += *x.SESAccepted
			haveAccepted = true
		}
	}
	p.Seconds = med(ps, func(x Phase) float64 { return x.Seconds })
	p.Throughput = med(ps, func(x Phase) float64 { return x.Throughput })
	p.OKPerSec = med(ps, func(x Phase) float64 { return x.OKPerSec })
	p.Latency = medSummary(lat)
	if len(ses) == len(ps) {
		s, a := medSummary(ses), medSummary(added)
		p.SESTime, p.Added = &s, &a
	}
	if len(gw) == len(ps) {
		v := med(gw, func(x float64) float64 { return x })
		p.GatewayCPUPerMsgUs = &v
	}
	if len(self) == len(ps) {
		v := med(self, func(x float64) float64 { return x })
		p.BenchCPUPerMsgUs = &v
	}
	if haveAccepted {
		p.SESAccepted = &accepted
	}
	if len(redis) == len(ps) {
		r := &Redis{
			CallsPerMsg:      med(redis, func(x *Redis) float64 { return x.CallsPerMsg }),
			CmdUsecPerMsg:    med(redis, func(x *Redis) float64 { return x.CmdUsecPerMsg }),
			ScriptUsecPerMsg: med(redis, func(x *Redis) float64 { return x.ScriptUsecPerMsg }),
			CPUUsecPerMsg:    med(redis, func(x *Redis) float64 { return x.CPUUsecPerMsg }),
			CallsByCommand:   map[string]float64{},
		}
		keys := map[string]bool{}
		for _, x := range redis {
			r.TotalCalls += x.TotalCalls
			r.TotalCPUSeconds += x.TotalCPUSeconds
			for k := range x.CallsByCommand {
				keys[k] = true
			}
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			r.CallsByCommand[k] = med(redis, func(x *Redis) float64 { return x.CallsByCommand[k] })
		}
		p.Redis = r
	}
	return p
}
