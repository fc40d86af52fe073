#!/bin/sh
# Regenerates the dashboard screenshots under docs/screenshots/ (PNG, from
# headless Chromium's screenshot API). The test starts everything it needs:
# the admin API over an embedded store with the account guard, a bounce
# spike on a test clock, the fleet-wide views (two replicas on one store),
# and Chromium (apt-get install -y chromium).
set -eu
cd "$(dirname "$0")/.."
mkdir -p docs/screenshots
SCREENSHOT_DIR="$PWD/docs/screenshots" CI=true \
	go test -count=1 -run '^(TestDashboardIncidentInChromium|TestDashboardSharedInChromium)$' ./internal/admin/
ls -l docs/screenshots/*.png
