package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sesgate/sesgate/internal/bench/load"
	"github.com/sesgate/sesgate/internal/bench/scale"
)

// Bounds of scale's flags: a policy file of maxTenants stays under the
// gateway's 16 MB limit; maxSuppressions keeps Redis under ~10 GB.
const (
	maxTenants      = 40_000
	maxSuppressions = 50_000_000
)

func parseScale(args []string, stderr io.Writer) (*scale.Options, error) {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &scale.Options{}
	fs.StringVar(&o.Sesgate, "sesgate", "", "sesgate binary to start; default: go build ./cmd/sesgate from the repository, else sesgate on PATH")
	fs.StringVar(&o.LogLevel, "gateway-log-level", "warn", "log level of the started gateways (their logs go to files)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (logs, policies) and print its name")
	fs.StringVar(&o.Proto, "proto", "smtp", "http or smtp")
	fs.IntVar(&o.Concurrency, "c", 8, "concurrent workers")
	fs.Int64Var(&o.Count, "n", 5000, "messages per measurement")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "time cap per measurement")
	fs.Int64Var(&o.Warmup, "warmup", 200, "messages before each measurement, not counted")
	fs.IntVar(&o.Runs, "runs", 3, "runs; each measures every setup in turn, the report shows medians")
	fs.IntVar(&o.Size, "size", 1000, "approximate raw message size in bytes")
	fs.IntVar(&o.Tenants, "tenants", 10_000, "tenants in the large policy file (the small one has 10)")
	fs.Int64Var(&o.Suppressions, "suppressions", 10_000_000, "suppressed addresses loaded into the large setup's Redis")
	fs.IntVar(&o.ActiveTenants, "active-tenants", 100, "tenants of the large policy that send, for Redis memory per active tenant")
	fs.StringVar(&o.JSONPath, "json", "", "write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{Msg: err.Error()}
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if fs.NArg() > 0 {
		bad("scale takes no arguments")
	}
	if o.Proto != "http" && o.Proto != "smtp" {
		bad("--proto %q: want http or smtp", o.Proto)
	}
	if o.Concurrency < 1 || o.Concurrency > maxConcurrency {
		bad("-c must be 1 to %d", maxConcurrency)
	}
	if o.Count < 1 || o.Count > maxCount {
		bad("-n must be 1 to %d", maxCount)
	}
	if o.Duration < time.Second || o.Duration > maxDuration {
		bad("--duration must be 1s to %s", maxDuration)
	}
	if o.Warmup < 0 || o.Warmup > maxWarmup {
		bad("--warmup must be 0 to %d", maxWarmup)
	}
	if o.Runs < 1 || o.Runs > maxRuns {
		bad("--runs must be 1 to %d", maxRuns)
	}
	if o.Size < 1 || o.Size > load.MaxMessageSize {
		bad("--size must be 1 to %d", load.MaxMessageSize)
	}
	if o.Tenants <= scale.BaseTenants || o.Tenants > maxTenants {
		bad("--tenants must be %d to %d", scale.BaseTenants+1, maxTenants)
	}
	if o.Suppressions < 1 || o.Suppressions > maxSuppressions {
		bad("--suppressions must be 1 to %d", maxSuppressions)
	}
	if o.ActiveTenants < 1 || o.ActiveTenants >= o.Tenants {
		bad("--active-tenants must be 1 to --tenants - 1")
	}
	if len(problems) > 0 {
		return nil, usageError{Msg: strings.Join(problems, "; ")}
	}
	return o, nil
}

func scaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseScale(args, stderr)
	if err != nil {
		return err
	}
	return scale.Run(ctx, *o, stdout, stderr)
}
