#!/usr/bin/env bash
# Browser tests of the dashboard: Debian's Chromium, driven by playwright-core, against the
# real server binary. Installs what is missing (Chromium from Debian's packages, the npm
# packages from package-lock.json), builds target/debug/intake, and runs the tests.
# Screenshots land in tests/browser/screenshots/.
set -euo pipefail
cd "$(dirname "$0")"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if ! command -v python3 >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error
(cd ../.. && cargo build --quiet)
# The binary cargo just built, wherever its target directory is.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    export INTAKE_BIN="${INTAKE_BIN:-$CARGO_TARGET_DIR/debug/intake}"
fi
node --test --test-concurrency=1 dashboard.test.js
