#!/usr/bin/env bash
# The vendors' own client libraries against the compatibility dialects, unchanged but for their
# base URL: Commerce Layer's JS SDK (@commercelayer/sdk, from npm, pinned by package-lock.json)
# and the PyPI client rocketchat-api (pinned by requirements.txt), each through every call its
# dialect page lists, against the real server binary: once on SQLite, once on PostgreSQL (a
# database of its own, created and dropped here, on the server of INTAKE_TEST_DATABASE_URL;
# skipped, saying so, when that is unset). Installs what is missing (node and npm, python3 and
# pip from Debian's packages; the clients from their registries) and builds target/debug/intake.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)

# shellcheck source=../live-server.sh
source ../live-server.sh
command -v node >/dev/null || apt_install nodejs npm

npm ci --no-audit --no-fund --loglevel=error
pip_install "$here/.pydeps" requirements.txt

# Rocket.Chat's client first: it starts from an empty workspace and forgets its imports, so
# Commerce Layer's SDK starts from an empty one too.
run_clients() {
    echo "== client libraries on $1"
    python3 rocketchat_test.py
    node --test --test-concurrency=1 --test-reporter=spec commercelayer.test.js
}

on_both_backends run_clients "client libraries"
