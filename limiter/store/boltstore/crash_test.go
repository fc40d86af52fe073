package boltstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// The crash child: a process that admits messages against crashLimits and
// prints each admission's answer time (unix ns) as it answers, until it is
// killed. Run by TestCrash through the test binary itself.
const (
	envCrashDB   = "BOLTSTORE_CRASH_DB"
	envCrashSync = "BOLTSTORE_CRASH_SYNC"
)

// crashLimits is a tenant whose rate never replenishes within the test: the
// burst is a count limit (the tenant may send crashBurst messages in all).
const crashBurst = 5000

var crashLimits = gateway.Limits{Rate: 0.0001, Burst: crashBurst, PerHour: 1e9, PerDay: 1e9,
	FirstContactPerHour: 1e9, FirstContactPerDay: 1e9, PerDomainRate: 1e6, PerDomainBurst: 1e6}

func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashDB); path != "" {
		if err := crashChild(path, os.Getenv(envCrashSync)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func parseSync(v string) (time.Duration, error) {
	if v == "always" {
		return Always, nil
	}
	return time.ParseDuration(v)
}

func crashChild(path, sync string) error {
	every, err := parseSync(sync)
	if err != nil {
		return err
	}
	s, err := Open(Options{Path: path, RecipientKey: testKey, SyncEvery: every})
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(os.Stdout, 64)
	for i := 0; ; i++ {
		d, err := s.Admit(context.Background(), store.AdmitRequest{Tenant: "crash",
			Recipients: []string{fmt.Sprintf("r%d@d%d.example", i, i%50)}, Limits: crashLimits})
		if err != nil {
			return err
		}
		if !d.Admitted {
			return fmt.Errorf("refused at %d: %+v", i, d)
		}
		// One write per answer: what the parent reads was answered.
		fmt.Fprintln(out, time.Now().UnixNano())
		if err := out.Flush(); err != nil {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestCrash kills a process that admits messages (SIGKILL, no Close) and
// reopens its file: every admission answered more than one SyncEvery
// before the last answer is counted (always: every answered one), none is
// counted twice, and a restarted store lets through at most the burst plus
// the forgotten admissions.
func TestCrash(t *testing.T) {
	for _, mode := range []string{"100ms", "always"} {
		t.Run("sync="+mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envCrashDB+"="+path, envCrashSync+"="+mode)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var answered []int64
			sc := bufio.NewScanner(stdout)
			killed := false
			for sc.Scan() {
				ns, err := strconv.ParseInt(sc.Text(), 10, 64)
				if err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				answered = append(answered, ns)
				if len(answered) == 1500 && !killed {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					killed = true
				}
			}
			err = cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child ended with %v before it was killed (answered %d)", err, len(answered))
			}

			s, err := Open(Options{Path: path, RecipientKey: testKey})
			if err != nil {
				t.Fatalf("reopen after the crash: %v", err)
			}
			defer s.Close()
			ctx := context.Background()
			counted, err := s.Sent(ctx, "crash", time.Now().Add(-10*time.Minute), time.Now().Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			p := int64(len(answered))
			lost := p - counted
			t.Logf("answered %d, counted after the crash %d", p, counted)
			switch {
			case counted > p+1:
				t.Fatalf("counted %d, more than the %d answered plus the one in flight", counted, p)
			case mode == "always" && lost > 0:
				t.Fatalf("always: %d answered admissions lost", lost)
			case lost > 0:
				// The forgotten answers are the newest; they span at most
				// one SyncEvery.
				if span := time.Duration(answered[p-1] - answered[counted]); span > 100*time.Millisecond {
					t.Fatalf("lost %d admissions answered over %v, more than SyncEvery", lost, span)
				}
			}
			// The restarted store lets through what the count leaves of
			// the burst: the tenant exceeds its limit by at most the lost.
			more := int64(0)
			for {
				d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "crash", Recipients: []string{fmt.Sprintf("after%d@x.example", more)}, Limits: crashLimits})
				if err != nil {
					t.Fatal(err)
				}
				if !d.Admitted {
					break
				}
				more++
			}
			if total := p + more; total > crashBurst+max(lost, 0) {
				t.Fatalf("%d admitted in all, beyond the burst %d plus the %d lost", total, crashBurst, lost)
			}
		})
	}
}

// TestCloseLosesNothing: admissions answered without a commit (SyncEvery
// longer than the test) are all in the file after Close, rate and counts.
func TestCloseLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	c := time.Date(2026, 11, 30, 10, 30, 0, 0, time.UTC)
	open := func() *Store {
		s, err := Open(Options{Path: path, RecipientKey: testKey, SyncEvery: MaxSyncEvery, Now: func() time.Time { return c }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	lim := gateway.Limits{Rate: 0.001, Burst: 300, PerHour: 1000, FirstContactPerHour: 1000}
	ctx := context.Background()
	s := open()
	before := commits(t, s.db)
	for i := range 250 {
		if d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "t", Recipients: []string{fmt.Sprintf("r%d@x.example", i)}, Limits: lim}); err != nil || !d.Admitted {
			t.Fatalf("admit %d: %+v %v", i, d, err)
		}
	}
	if n := commits(t, s.db) - before; n != 0 {
		t.Fatalf("%d commits while answering 250 admissions; want none before the flush", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	if n := commits(t, s.db) - before - openCommits(t); n != 1 {
		t.Fatalf("%d commits for 250 admissions and Close; want 1", n)
	}
	u, err := s.Usage(ctx, "t")
	if err != nil || u.Hour != 250 || u.FirstContactHour != 250 {
		t.Fatalf("usage after close and reopen %+v %v; want 250 and 250", u, err)
	}
	admitted := 0
	for i := range 100 {
		d, err := s.Admit(ctx, store.AdmitRequest{Tenant: "t", Recipients: []string{fmt.Sprintf("r%d@x.example", i)}, Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if d.Admitted {
			admitted++
			if d.NewRecipients != 0 {
				t.Fatalf("known recipient r%d forgotten", i)
			}
		}
	}
	if admitted != 50 {
		t.Fatalf("admitted %d after reopening; the rate's burst leaves exactly 50", admitted)
	}
}

// openCommits is how many commits Open makes (buckets, sweep).
func openCommits(t *testing.T) int64 {
	path := filepath.Join(t.TempDir(), "open.db")
	var n [2]int64
	for i := range n {
		s, err := Open(Options{Path: path, RecipientKey: testKey})
		if err != nil {
			t.Fatal(err)
		}
		n[i] = commits(t, s.db)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return n[1] - n[0]
}

// TestConcurrentExact: more concurrent callers than the burst admit exactly
// the burst, in both modes.
func TestConcurrentExact(t *testing.T) {
	for _, every := range []time.Duration{DefaultSyncEvery, Always} {
		t.Run(fmt.Sprint(every), func(t *testing.T) {
			s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, SyncEvery: every})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const callers, burst = 64, 20
			lim := gateway.Limits{Rate: 0.001, Burst: burst, FirstContactPerHour: 1e6}
			var admitted atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range callers {
				wg.Go(func() {
					<-start
					d, err := s.Admit(context.Background(), store.AdmitRequest{Tenant: "t", Recipients: []string{fmt.Sprintf("r%d@x.example", i)}, Limits: lim})
					if err != nil {
						t.Error(err)
					}
					if d.Admitted {
						admitted.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			if admitted.Load() != burst {
				t.Fatalf("%d callers admitted %d; want exactly the burst %d", callers, admitted.Load(), burst)
			}
		})
	}
}

// TestFsyncsPerAdmission counts commits (2 fdatasyncs each): with
// SyncEvery, answering takes none (one commit per flush for all); always
// commits before answering, one commit per admission when they come one
// after another, shared when they come together.
func TestFsyncsPerAdmission(t *testing.T) {
	tests := []struct {
		name    string
		every   time.Duration
		callers int
		max     int64 // commits for 200 admissions, before any flush of the ticker
		min     int64
	}{
		{"write behind, one caller", MaxSyncEvery, 1, 0, 0},
		{"write behind, 8 callers", MaxSyncEvery, 8, 0, 0},
		{"always, one caller", Always, 1, 200, 200},
		{"always, 8 callers", Always, 8, 200, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(Options{Path: filepath.Join(t.TempDir(), "store.db"), RecipientKey: testKey, SyncEvery: tc.every})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			before := commits(t, s.db)
			var next atomic.Int64
			var wg sync.WaitGroup
			for range tc.callers {
				wg.Go(func() {
					for i := next.Add(1); i <= 200; i = next.Add(1) {
						d, err := s.Admit(context.Background(), store.AdmitRequest{Tenant: "t", Recipients: []string{benchRecipient(i)}, Limits: fullPolicy})
						if err != nil || !d.Admitted {
							t.Errorf("admit %d: %+v %v", i, d, err)
						}
					}
				})
			}
			wg.Wait()
			n := commits(t, s.db) - before
			t.Logf("%d commits (%d fsyncs) for 200 admissions", n, fsyncsPerCommit*n)
			if n < tc.min || n > tc.max {
				t.Fatalf("%d commits for 200 admissions; want %d to %d", n, tc.min, tc.max)
			}
		})
	}
}
