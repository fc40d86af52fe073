// Package bench holds the measuring instruments of sesgate-bench: a latency
// histogram of bounded size, the CPU time of a process from /proc, the
// command statistics and CPU time of a Redis server, and a middleware that
// times an SES server's own handling of each request by the MessageId it
// answers with.
//
// Invariants:
//   - Memory is bounded whatever the run length: a Histogram is a fixed
//     array of counters (relative error under 1%), and SESTimer keeps at most
//     Options.MaxPending unclaimed timings, counting the ones it drops.
//   - Nothing here sends mail or changes state: ProcCPU reads /proc, and
//     RedisStats sends only INFO (and AUTH/SELECT from the URL) with a
//     deadline on every connection.
package bench
