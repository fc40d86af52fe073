// Package stack starts what sesgate-bench drives, on free loopback ports,
// and stops it: the SES v2 test server in the process (every request
// timed), the gateway (`sesgate serve`, built from the repository or
// given) pointed at it, a redis-server, and the thin relay
// (`sesgate-bench thin-relay`, StartThinRelay); and the files they need (a
// self-signed certificate, a policy with one tenant over its limit).
//
// Invariants:
//   - Every start and stop is bounded: a build by BuildTimeout, readiness by
//     ReadyTimeout, a stop by StopTimeout (then SIGKILL).
//   - Children get none of this process's SESGATE_ or AWS_ settings, so no
//     real AWS credentials leak into a started gateway.
package stack

import "time"

// The key pair and region the in-process SES server accepts.
const (
	AccessKey = "sesgatebench"
	SecretKey = "sesgate-bench-local-secret"
	Region    = "us-east-1"
)

// Bounds of the stack's start and stop.
const (
	BuildTimeout = 3 * time.Minute
	ReadyTimeout = 20 * time.Second
	StopTimeout  = 10 * time.Second
)
