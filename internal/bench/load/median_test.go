package load

import (
	"math"
	"testing"

	"github.com/sesgate/sesgate/internal/bench"
)

func TestMedian(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	phase := func(tp, p99, gw, redisCPU float64, ok int64) Phase {
		return Phase{Name: "http", OKCode: "200", Messages: ok + 1, Throughput: tp, Codes: map[string]int64{"200": ok, "429": 1},
			Latency: bench.Summary{Count: uint64(ok + 1), P50: tp / 1000, P99: p99}, SESTime: &bench.Summary{P50: 0.1}, Added: &bench.Summary{P99: p99 - 0.1},
			GatewayCPUPerMsgUs: f(gw), SESAccepted: n(ok), Redis: &Redis{CPUUsecPerMsg: redisCPU, CallsByCommand: map[string]float64{"evalsha": 1}}}
	}
	tests := []struct {
		name          string
		runs          []Measurement
		wantTP, wantP float64 // throughput and p99
		wantGW        float64
		wantOK        int64
		wantAddedP50  float64
	}{
		{name: "one run is itself", runs: []Measurement{{Phases: []Phase{phase(3000, 2, 250, 40, 100)}, Ratios: []Ratio{{Phase: "http", AddedP50Ms: 0.4}}}},
			wantTP: 3000, wantP: 2, wantGW: 250, wantOK: 100, wantAddedP50: 0.4},
		{name: "odd: middle values, figure by figure", runs: []Measurement{
			{Phases: []Phase{phase(3000, 9, 250, 40, 100)}, Ratios: []Ratio{{Phase: "http", AddedP50Ms: 0.4}}},
			{Phases: []Phase{phase(1000, 2, 300, 45, 100)}, Ratios: []Ratio{{Phase: "http", AddedP50Ms: 0.9}}},
			{Phases: []Phase{phase(2000, 3, 200, 50, 100)}, Ratios: []Ratio{{Phase: "http", AddedP50Ms: 0.5}}},
		}, wantTP: 2000, wantP: 3, wantGW: 250, wantOK: 300, wantAddedP50: 0.5},
		{name: "even: mean of the middle two", runs: []Measurement{
			{Phases: []Phase{phase(3000, 4, 250, 40, 10)}, Ratios: []Ratio{{Phase: "http", AddedP50Ms: 0.4}}},
			{Phases: []Phase{phase(1000, 2, 300, 45, 10)}, Ratios: []Ratio{{Phase: "http", AddedP50Ms: 0.8}}},
		}, wantTP: 2000, wantP: 3, wantGW: 275, wantOK: 20, wantAddedP50: (0.4 + 0.8) / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Runs: tt.runs}
			r.median()
			if len(r.Phases) != 1 || len(r.Ratios) != 1 {
				t.Fatalf("phases %d ratios %d", len(r.Phases), len(r.Ratios))
			}
			p := r.Phases[0]
			if p.Throughput != tt.wantTP || p.Latency.P99 != tt.wantP || *p.GatewayCPUPerMsgUs != tt.wantGW ||
				p.Codes["200"] != tt.wantOK || *p.SESAccepted != tt.wantOK || p.Codes["429"] != int64(len(tt.runs)) ||
				p.Messages != tt.wantOK+int64(len(tt.runs)) || math.Abs(r.Ratios[0].AddedP50Ms-tt.wantAddedP50) > 1e-9 || p.Redis.CallsByCommand["evalsha"] != 1 {
				t.Fatalf("median phase %+v ratio %+v", p, r.Ratios[0])
			}
		})
	}
}
