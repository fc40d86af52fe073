#!/usr/bin/env bash
# Takes the figures of docs/BENCHMARKS.md: builds sesgate and sesgate-bench,
# then runs every measurement with medians over several runs, writing each
# report (text and JSON) to the directory given (default
# /tmp/sesgate-bench-results).
# Needs redis-server. Takes about 6 minutes on 2 cores; run it on a quiet
# machine (check `uptime`).
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

# Throughput, closed loop, 16 workers; SMTP reuses one connection per worker.
run load-redis load "${common[@]}" --start-redis -n 10000 --runs 5
run load-embedded load "${common[@]}" -n 10000 --runs 5
# Added latency at a stated rate (open loop).
run latency-1000 load "${common[@]}" --start-redis --rate 1000 -n 10000 --runs 3
# The same over SMTP with PIPELINING (MAIL, RCPT and DATA in one write), as MTAs send.
run latency-1000-pipelining load "${common[@]}" --start-redis --proto smtp --smtp-pipelining --rate 1000 -n 10000 --runs 3
# Refusals of a tenant over its limit (rate 1/s, burst 1), HTTP keep-alive.
run refuse refuse "${common[@]}" --start-redis --runs 5
# The leaked-token drill, built-in scenario, three times.
for i in 1 2 3; do
  echo "== drill $i"
  "$b" drill --sesgate "$out/sesgate" --json "$out/drill-$i.json" > "$out/drill-$i.txt" || echo "drill $i FAILED"
  cat "$out/drill-$i.txt"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
