package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	rest := " S 1 2 3 4 5 6 7 8 9 10 %s %s 0 0 20 0 4 0 100 0 0"
	tests := []struct {
		name    string
		line    string
		want    time.Duration
		wantErr string
	}{
		{name: "plain", line: "42 (sesgate)" + sprintf(rest, "150", "25"), want: 1750 * time.Millisecond},
		{name: "name with spaces and parentheses", line: "42 (a ) b) c)" + sprintf(rest, "1", "2"), want: 30 * time.Millisecond},
		{name: "no name", line: "42 sesgate S 1", wantErr: "no command name"},
		{name: "short", line: "42 (x) S 1 2 3", wantErr: "too few fields"},
		{name: "not a number", line: "42 (x)" + sprintf(rest, "abc", "2"), wantErr: "invalid syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func sprintf(format, a, b string) string {
	return strings.Replace(strings.Replace(format, "%s", a, 1), "%s", b, 1)
}

func TestProcCPUOfThisProcess(t *testing.T) {
	start, err := SelfCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Burn at least 50 ms of CPU, then both readings must have moved.
	x := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for i := range 1_000_000 {
			x += i
		}
		if now, _ := SelfCPU(); now-start >= 50*time.Millisecond {
			break
		}
	}
	self, _ := SelfCPU()
	proc, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self-start < 50*time.Millisecond {
		t.Fatalf("SelfCPU moved %v, want >= 50ms (x=%d)", self-start, x)
	}
	// /proc counts in 10 ms ticks; the two clocks agree to a few ticks.
	if diff := proc - self; diff < -50*time.Millisecond || diff > 50*time.Millisecond {
		t.Errorf("ProcCPU = %v, SelfCPU = %v: too far apart", proc, self)
	}
	if _, err := ProcCPU(-1); err == nil {
		t.Error("ProcCPU(-1): no error")
	}
}
