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

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
apt_install() {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v node >/dev/null || apt_install nodejs npm
command -v python3 >/dev/null || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

npm ci --no-audit --no-fund --loglevel=error
# A directory of its own (not the system's site-packages), so no virtualenv package is needed.
pydeps="$here/.pydeps"
python3 -m pip install --quiet --disable-pip-version-check --target "$pydeps" --upgrade -r requirements.txt
export PYTHONPATH="$pydeps${PYTHONPATH:+:$PYTHONPATH}"

(cd ../.. && cargo build --quiet)
bin="${INTAKE_BIN:-${CARGO_TARGET_DIR:-$here/../../target}/debug/intake}"

tmp=$(mktemp -d -t intake-clients-XXXXXX)
server=""
database=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" && wait "$server" || true
    fi
    if [ -n "$database" ]; then
        psql -q "$INTAKE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" || true
    fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

# Starts the server on a free port with a fresh data directory (and the given extra flags).
start_server() {
    local name=$1
    shift
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export INTAKE_URL="http://127.0.0.1:$port"
    export INTAKE_KEY="intake_client_test_owner_key_$name"
    INTAKE_BOOTSTRAP_KEY="$INTAKE_KEY" RUST_LOG="${RUST_LOG:-warn}" \
        "$bin" serve --bind "127.0.0.1:$port" --data-dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 &
    server=$!
    # Ready once /healthz answers (or failed, if the process is gone).
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$INTAKE_URL/healthz" 2>/dev/null && return 0
        kill -0 "$server" 2>/dev/null || { cat "$tmp/$name.log" >&2; return 1; }
        sleep 0.1
    done
    echo "the server did not start: see $tmp/$name.log" >&2
    return 1
}

stop_server() {
    kill -TERM "$server" && wait "$server" || true
    server=""
}

# Rocket.Chat's client first: it starts from an empty workspace and forgets its imports, so
# Commerce Layer's SDK starts from an empty one too.
run_clients() {
    echo "== client libraries on $1"
    python3 rocketchat_test.py
    node --test --test-concurrency=1 --test-reporter=spec commercelayer.test.js
}

start_server sqlite
run_clients SQLite
stop_server

if [ -z "${INTAKE_TEST_DATABASE_URL:-}" ]; then
    echo "== PostgreSQL run skipped: INTAKE_TEST_DATABASE_URL is unset"
    exit 0
fi
database="intake_clients_$$_$(date +%s)"
psql -q "$INTAKE_TEST_DATABASE_URL" -c "CREATE DATABASE \"$database\""
start_server postgres --database-url "${INTAKE_TEST_DATABASE_URL%/*}/$database"
run_clients PostgreSQL
stop_server
