#!/usr/bin/env bash
# Takes the figures of docs/BENCHMARKS.md: builds sesgate and sesgate-bench,
# then runs every measurement with medians over several runs, writing each
# report (text and JSON) to the directory given (default
# /tmp/sesgate-bench-results).
# Needs redis-server and about 2 GB of memory (10 million suppressed
# addresses in Redis). Takes about 12-14 minutes on 2 cores; run it on a
# quiet machine (check `uptime`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${TMPDIR:-/tmp}/sesgate-bench-results}
mkdir -p "$out"
go build -o "$out/sesgate" ./cmd/sesgate
go build -o "$out/sesgate-bench" ./cmd/sesgate-bench
b="$out/sesgate-bench"
common=(--sesgate "$out/sesgate" --gateway-log-level warn)

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  go version
  redis-server --version
  uname -sr
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

run() { # name, then the arguments of sesgate-bench
  local name=$1; shift
  echo "== $name: sesgate-bench $*"
  "$b" "$@" --json "$out/$name.json" > "$out/$name.txt"
  cat "$out/$name.txt"
}

# The default matrix: tenant full (every limit set, none reached), 50% known
# recipients over 50 domains; the thin relay, the SDK baseline, then HTTP and
# SMTP on the Redis store and on the embedded store, at C=1, 8 and 32 in turn,
# three times; medians per phase and concurrency, ratios within each run.
run matrix load "${common[@]}" -c 1,8,32 --store redis,embedded -n 3000 --runs 3
# The dev tenant (no limits), the second table.
run dev load "${common[@]}" --tenant dev -c 8 --store redis,embedded -n 5000 --runs 3
# Added latency at a stated rate (open loop), tenant full, Redis store.
run latency-1000 load "${common[@]}" --store redis --rate 1000 -n 5000 --runs 3
# The same over SMTP with PIPELINING (MAIL, RCPT and DATA in one write), as MTAs send.
run latency-1000-pipelining load "${common[@]}" --store redis --proto smtp --smtp-pipelining --rate 1000 -n 5000 --runs 3
# Admission cost against size: 10 vs 10,000 tenants, 0 vs 10 million suppressed addresses.
run scale scale --sesgate "$out/sesgate" --runs 3 -n 3000
# Memory: 1,000 idle authenticated SMTP sessions, then one 40 MB message over
# SMTP, HTTP message/rfc822 and the JSON API (a fresh gateway per phase).
run memory memory --sesgate "$out/sesgate"
run memory-redis memory --sesgate "$out/sesgate" --start-redis
# Refusals of a tenant over its limit (rate 1/s, burst 1), HTTP keep-alive.
run refuse refuse "${common[@]}" --start-redis --runs 5
# The leaked-token drill, built-in scenario, three times.
for i in 1 2 3; do
  echo "== drill $i"
  "$b" drill --sesgate "$out/sesgate" --json "$out/drill-$i.json" > "$out/drill-$i.txt" || echo "drill $i FAILED"
  cat "$out/drill-$i.txt"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
