// Package load drives message senders (HTTP to the gateway, SMTP to the
// gateway, the SES v2 SDK straight to an SES endpoint) with a fixed number
// of workers, and gathers latencies and answers by code (Run).
//
// Bench and Refuse are the load and refuse measurements of sesgate-bench:
// for each concurrency of the -c list in turn, the thin relay (a child
// process, package thinrelay), the SDK baseline and every self-started
// gateway (one per store) over HTTP and SMTP, interleaved within each run;
// on a stack they start (package stack) or on a target gateway, each phase
// runs after a warm-up with the gateway's CPU, the Redis server's work and
// the SES server's count read around it; a Report gives the figures per
// phase, the ratios against the SDK baseline and the thin relay, and the
// medians over repeated runs.
//
// Invariants:
//   - Every Run ends by itself: Options must bound it by a message count, a
//     duration or both, every send has a deadline (Options.SendTimeout), and
//     cancelling the context stops it early.
//   - With a Rate, sends are paced open-loop from one schedule (send i is due
//     at start + i/Rate) whatever the answers' latency; sends that start late
//     because every worker was busy are counted, so a rate that was not held
//     is visible.
//   - Memory does not grow with the run: latencies go to per-worker
//     histograms, merged at the end.
//   - Ratios are taken between phases of the same run and concurrency only
//     (then their medians over the runs), so a noisy machine moves both
//     sides of a ratio together.
//   - With the recipient Mix, a phase's first contacts are new to the
//     gateway: each phase has its own tag and its warm-up its own sequence
//     numbers (Options.SeqBase).
//   - A sender is used by one worker only; shared state (HTTP connection
//     pools, SDK clients) is safe for concurrent use.
package load
