// Package redisstore is the Redis implementation of store.Store, for a
// fleet of gateway replicas sharing one Redis (standalone, Sentinel or
// Cluster, through one go-redis UniversalClient).
//
// Hot path: Admit is ONE EVALSHA of admit.lua on the tenant's slot, and
// CheckSuppressed (every SMTP RCPT) sends nothing, once the view (below) is
// ready. Without it (starting, subscription lost, ViewOptions.Off) Admit
// adds, in parallel with the script, ONE pipelined read of the global
// state (EXISTS gw:{g}:frozen and HMGET gw:{g}:sup <recipients>; the
// latency is the slower of the two, not their sum) and CheckSuppressed
// reads both lists. The script reads Redis's TIME (never a gateway clock; tests
// pass an explicit time instead, Options.Now). Its reply carries
// Decision.Remaining as one string "hour:day:first hour:first day", which
// costs the client one allocation, not one per figure.
//
// Keys. Every key of a tenant carries the hash tag {t:<tenant>}, so the
// script touches one slot of a Cluster. Their names and fields are the key*
// and field* constants; admitScript binds them in admit.lua with every other
// constant it uses (reasons, breaker states, durations), so the script holds
// no literal of its own:
//
//	gw:{t:<id>}:brk             hash    frozen (operator flag), state, open_until (unix ms), probes (+ feedback's own fields)
//	gw:{t:<id>}:sup             hash    lowercased address -> "reason|added_ms|expires_ms"
//	gw:{t:<id>}:st              hash    gcra (rate TAT, ms); qh, qd, fh, fd: "<window>:<count>" for the
//	                                    hour/day quota and first-contact counters (a new window resets;
//	                                    qh and qd are counted for every tenant, quota or not)
//	gw:{t:<id>}:kn:<period>     hash    known recipients: hmac -> expiry (ms); period = KnownTTL; the
//	                                    current period is read, the previous one only for recipients
//	                                    the current one does not know; each hash expires after the
//	                                    next period ends, set once (its field _ttl says it is set)
//	gw:{t:<id>}:d:<domain>      string  per-domain rate TAT (ms), PX = time to drain
//	gw:{t:<id>}:sent:<minute>   string  recipients admitted that minute, PX = SentTTL
//	gw:{g}:frozen               string  global freeze flag
//	gw:{g}:frozen:v             string  the flag's write version (INCR by SetFrozen(""); the view's order)
//	gw:{g}:sup                  hash    global suppression list
//	gw:{g}:ses                  string  account send rate TAT, leased by replicas
//
// The script reads and writes few keys whatever the limits: one HMGET each
// of brk, sup and st, one HMGET of the current known-recipient hash and
// one of the previous period's for the recipients the current one does not
// know (only with a first-contact budget), one MGET of the domain TATs
// (only with a domain rate), then one HSET of st, one HSET of the known
// hash, one SET per domain and one INCRBY of the minute counter: 6
// commands for a tenant without limits, 10-11 with every limit (TIME
// included). Expiries are set once, when a key is created, not on every
// hit.
//
// Batching (admitbatch.go). An admission that finds its Redis node idle
// is sent at once, alone: one round trip, no timer, no added wait. While a
// call is in flight to a node, further admissions for that node queue;
// when it returns, the queue goes as ONE pipeline (at most
// Options.AdmitBatch, 64, admissions), and so on until it is empty (group
// commit). In a pipeline the admissions of one tenant with the same limits
// are ONE admit.lua call: the script reads the tenant's state once, decides
// the messages in arrival order, each exactly as if admitted alone after
// the ones before it (first contacts become known, counters, TATs and
// probes move, the stored rounding of TATs is applied in between), and
// writes once. So N concurrent admissions of a tenant cost about N/2 per
// call, and the script's reads, writes and round trip are shared. Each
// caller keeps its own context: one that ends while queued gets ctx.Err()
// at once and its slot is left out; the pipeline runs until the latest
// deadline of its callers. An error (Redis down, a timeout) reaches every
// caller of that pipeline, and the limiter's degraded mode takes over as
// for a single call. A pipeline's calls that meet NOSCRIPT are sent again
// with EVAL. One batcher per Cluster node (by the tenant's slot), so a
// stalled node holds only the admissions of its own slots. The bound this
// changes: a queued admission waits for the call in flight, then its own:
// two calls' time instead of one (more when over AdmitBatch are queued),
// always within the caller's deadline, else the caller gets its deadline
// error and the limiter's degraded mode decides. The st and brk hashes do not expire:
// one each per tenant of the policy file. The derived keys (kn, d, sent)
// are not declared in KEYS; they hash to the declared keys' slot, which
// Redis 7 allows on a Cluster.
//
// Scripts are loaded with SCRIPT LOAD at New (on every shard of a Cluster)
// and again on every new connection (Dial sets an OnConnect hook), so a
// restarted or promoted primary has them before the first EVALSHA;
// Script.Run still falls back to EVAL on NOSCRIPT (after SCRIPT FLUSH).
//
// AddUsage (the limiter's reconcile after an outage, never on the hot path)
// runs usage.lua on the tenant's state hash: one HMGET and one HSET of the
// window counters. It is loaded at New, not on every new connection
// (Script.Run loads it on NOSCRIPT).
//
// Every client NewClient builds has go-redis's ContextTimeoutEnabled set, so
// a call's context deadline (the limiter's call timeout) bounds the socket
// read and write themselves. Without it go-redis reads with ReadTimeout
// (500 ms by default) whatever the deadline, so a stalled server (SIGSTOP,
// a full network buffer) held every admission and RCPT check that long.
//
// The view. Each Store keeps, in process, a Bloom filter over every
// suppression list's entries, keyed (tenant, lowercased address) and ("",
// address) for the global list, and the global freeze flag:
//
//   - Fed by pub/sub: every write of a list or of the global flag
//     (AddSuppression, RemoveSuppression, SetFrozen(""): the admin API, the
//     CLI, the guard's bounce and complaint suppressions, any replica) runs
//     a script that writes and PUBLISHes on ViewChannel in one step. The
//     writer also applies it to its own view at once (read your writes).
//   - Loaded by a build: SCAN MATCH gw:{t:*}:sup TYPE hash (on every primary
//     of a Cluster, ForEachMaster) plus the global list, sized from their
//     HLEN, filled by HSCAN; adds that arrive meanwhile go to both filters.
//     A build runs after every (re)subscription, when the entries added
//     since the last build pass its capacity (the new one is sized 1.5x the
//     lists' length, at least MinCapacity), and every Rebuild (1 h): a
//     removed address cannot leave a Bloom filter, so until then it costs
//     one confirming read per message that names it (never a wrong answer),
//     and a write that published nothing (an older replica, a hand-made
//     HSET) is picked up then. A build reads every key name once (SCAN) and
//     every entry once (HSCAN, 1,000 a call): measured 1.1 s of
//     redis-server CPU and 2 s wall at 1M entries (BenchmarkViewBuild), so
//     about 11 s of Redis CPU per replica at 10M, hence hourly (jittered
//     10%) and not more often.
//   - Answers: a filter miss on both lists is "not suppressed" with no
//     call; a hit (false positives at the chosen rate, 1% at capacity, plus
//     the real entries) is confirmed by HMGET of the hit addresses only.
//     Admit reads only the global list's hits: the tenant's list stays read
//     inside the script, authoritative.
//   - Ready only between a build's end and the subscription's loss; the
//     subscription is pinged every FreezePoll and counts as lost when
//     nothing answers for two. Not ready, every answer reads Redis as
//     before.
//   - The global flag: set from each push (which carries the flag's write
//     version, gw:{g}:frozen:v, so a late push or poll never overwrites a
//     newer value) and polled every FreezePoll (1 s; one GET+EXISTS
//     pipeline per replica), and read again on every resubscription. A
//     polled version below the one held is taken when no push came in
//     during the poll (the version key was lost: FLUSHALL, a restart
//     without persistence). A frozen flag refuses with no call. When
//     neither has confirmed it for 3 polls, Admit reads it per message.
//
// Propagation window. A suppression or a global freeze written anywhere
// reaches every replica's view in the pub/sub latency (sub-millisecond on
// one network). Pub/sub delivers at most once: with the subscription lost,
// answers fall back to Redis reads within 2 FreezePoll (the ping) and the
// view is rebuilt on resubscription; the global flag is then polled, so it
// lags by at most one FreezePoll, and by 3 before Admit reads it per
// message. What this means for the leaked-token bound: a tenant's own
// list is still checked by the admission script, at every message, so it
// never lags; the global list and the global freeze can lag by the window
// above (an admission in that window is one more message to an address
// just suppressed globally, or sent under a freeze set less than a poll
// ago).
//
// Memory: -ln(p)/ln(2)^2 bits per entry of capacity: 9.6 bits (1.2 bytes)
// at 1%, so 10M entries ~12 MB, times 1.5 for the headroom, and twice that
// while a build runs (old and new filter).
//
// The account SES rate: Lease runs lease.lua, a GCRA on gw:{g}:ses that
// grants up to a batch of tokens in one call; limiter.Account spends them
// locally (see there for the over-admission bound).
package redisstore
