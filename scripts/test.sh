#!/usr/bin/env bash
# Runs every check and test of sesgate on a fresh machine: gofmt, go vet, a
# short run of each fuzz target and go test -race over all packages.
# Installs what the tests need first. Extra arguments go to go test (e.g.
# -run TestX) and skip the fuzz step; SESGATE_FUZZTIME (default 10s; 0 skips
# the step) is each target's run; SESGATE_TEST_JSON=FILE keeps the raw go
# test -json stream.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# swaks is not needed by the tests; the tests speak SMTP themselves.
if ! command -v redis-server >/dev/null 2>&1; then need_apt+=(redis-server redis-tools); fi
# the dashboard test drives a real headless Chromium
if ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ] && [ "${SESGATE_TEST_NO_INSTALL:-}" != "1" ]; then
  echo "installing: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

echo "== go vet"
go vet ./...
# deploy/ is a module of its own (Helm, Kubernetes and Prometheus stay out
# of the gateway's go.mod): its tests render and lint the Helm chart, decode
# every object strictly into the API types, parse and evaluate the alert
# rules and check the dashboard against a real gateway's metrics.
go -C deploy vet ./...

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Each fuzz target (the parsers that face the network, and the policy file)
# runs for SESGATE_FUZZTIME from its seed corpus in testdata/fuzz, two
# targets at a time with one worker each; a crash or a broken property fails
# the run, and go test writes the input to testdata/fuzz/<target>/ (make it a
# regression seed). Before the tests, so that testsummary's closing line
# stays the last line.
# The targets are every func Fuzz* of the main module's tests, found in the
# source so that a new one is run without being listed here.
mapfile -t fuzz_targets < <(grep -rE --include='*_test.go' --exclude-dir=deploy '^func Fuzz[A-Za-z0-9_]*\(' . |
  sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort)
fuzz_one() {
  local pkg=$1 target=$2 start=$SECONDS log="$FUZZ_TMP/$2.log"
  if go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZ_TIME" -parallel 1 "$pkg" >"$log" 2>&1; then
    echo "fuzz: $pkg $target ok ($((SECONDS - start))s, $(grep -o 'execs: [0-9]*' "$log" | tail -n 1))"
  else
    tail -n 40 "$log"
    echo "fuzz: $pkg $target FAILED"
    return 1
  fi
}
export -f fuzz_one
export FUZZ_TMP=$tmp FUZZ_TIME=${SESGATE_FUZZTIME:-10s}
if [ $# -eq 0 ] && [ "$FUZZ_TIME" != "0" ]; then
  echo "== fuzz (${FUZZ_TIME} each)"
  start=$SECONDS
  if ! printf '%s\n' "${fuzz_targets[@]}" | xargs -P 2 -L 1 bash -c 'fuzz_one "$0" "$1"'; then
    echo "fuzz: a target failed"
    exit 1
  fi
  echo "fuzz: ${#fuzz_targets[@]} targets in $((SECONDS - start))s"
fi

# go test -json, summed up by internal/testsummary: failed tests with their
# output, skipped tests by name, and a closing line "N passed, N failed,
# N skipped". Any failure or skip fails the run (set CI=true, as .ci/run
# does, and a test missing redis-server or chromium fails at once).
echo "== go test -race"
go build -o "$tmp/testsummary" ./internal/testsummary
json=${SESGATE_TEST_JSON:-$tmp/test.json}
# -p 1: one package at a time. Several packages run whole gateways, Redis
# servers and Chromium and check propagation within a second; two of them at
# once on a 2-core machine measure the machine, not the gateway.
# The deploy module's tests run after the main suite, in the same stream,
# so that one closing line counts both (testsummary fails the run on any
# failure in either; a failed `go test` is seen there, hence `|| true`).
# Not when extra arguments select tests of the main module.
{
  go test -race -count=1 -p 1 -timeout 15m -json "$@" ./... || true
  if [ $# -eq 0 ]; then go -C deploy test -count=1 -timeout 10m -json ./... || true; fi
} | tee "$json" | "$tmp/testsummary"
