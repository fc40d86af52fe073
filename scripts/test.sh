#!/usr/bin/env bash
# Runs every check and test of sesgate on a fresh machine: gofmt, go vet and
# go test -race over all packages. Installs what the tests need first.
# Extra arguments go to go test (e.g. -run TestX); SESGATE_TEST_JSON=FILE
# keeps the raw go test -json stream.
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

# go test -json, summed up by scripts/testsummary: failed tests with their
# output, skipped tests by name, and a closing line "N passed, N failed,
# N skipped". Any failure or skip fails the run (set CI=true, as .ci/run
# does, and a test missing redis-server or chromium fails at once).
echo "== go test -race"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testsummary" ./scripts/testsummary
json=${SESGATE_TEST_JSON:-$tmp/test.json}
go test -race -count=1 -timeout 15m -json "$@" ./... | tee "$json" | "$tmp/testsummary"
