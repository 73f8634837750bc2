#!/usr/bin/env bash
# The API fuzzer: schemathesis (from PyPI, pinned by requirements.txt) reads the server's own
# /openapi.json and sends every native operation generated requests, valid and invalid, with
# the owner key, against the real server binary: once on SQLite, once on PostgreSQL (a database
# of its own, created and dropped here, on the server of INTAKE_TEST_DATABASE_URL; skipped,
# saying so, when that is unset). The bar: no 5xx answer (not_a_server_error) and every answer
# shaped as the document says (response_schema_conformance). The owner key is the instance-admin
# key too, so that the workspace routes of /admin are fuzzed as well. FUZZ_EXAMPLES sets the number
# of cases per operation (default 40).
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
command -v python3 >/dev/null || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
command -v curl >/dev/null || apt_install curl

# A directory of its own (not the system's site-packages), so no virtualenv package is needed.
pydeps="$here/.pydeps"
python3 -m pip install --quiet --disable-pip-version-check --target "$pydeps" --upgrade -r requirements.txt
export PYTHONPATH="$pydeps${PYTHONPATH:+:$PYTHONPATH}"

(cd ../.. && cargo build --quiet)
bin="${INTAKE_BIN:-${CARGO_TARGET_DIR:-$here/../../target}/debug/intake}"

tmp=$(mktemp -d -t intake-fuzz-XXXXXX)
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

start_server() {
    local name=$1
    shift
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url="http://127.0.0.1:$port"
    key="intake_fuzz_owner_key_$name"
    INTAKE_BOOTSTRAP_KEY="$key" RUST_LOG="${RUST_LOG:-warn}" \
        "$bin" serve --bind "127.0.0.1:$port" --data-dir "$tmp/$name" --admin-key "$key" "$@" >"$tmp/$name.log" 2>&1 &
    server=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$url/healthz" 2>/dev/null && return 0
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

# The streams are left out: they answer with an event stream that stays open while an
# import runs (the workspace stream never ends), which a request-per-case fuzzer cannot read.
fuzz() {
    echo "== API fuzzer on $1"
    # A table, so that generated requests reach past "no such table" now and then.
    curl -fsS -o /dev/null -X POST "$url/v1/tables" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' \
        -d '{"name":"orders","columns":[{"name":"id","type":"integer"},{"name":"note","type":"string"}],"primary_key":"id"}'
    python3 -m schemathesis.cli run "$url/openapi.json" \
        --header "Authorization: Bearer $key" \
        --checks not_a_server_error,response_schema_conformance \
        --exclude-path-regex '/stream$' \
        --max-examples "${FUZZ_EXAMPLES:-40}" \
        --seed "${FUZZ_SEED:-1}" \
        --workers 2 \
        --suppress-health-check all \
        --request-timeout 30 \
        --warnings off
    # A 5xx is a bug whatever the check says; the server log names the cause.
    if grep -q '"a handler panicked"\|panicked at' "$tmp/$1.log"; then
        grep -m5 'panicked' "$tmp/$1.log" >&2
        return 1
    fi
}

start_server sqlite
fuzz sqlite
stop_server

if [ -z "${INTAKE_TEST_DATABASE_URL:-}" ]; then
    echo "== API fuzzer on PostgreSQL skipped: INTAKE_TEST_DATABASE_URL is unset"
    exit 0
fi
database="intake_fuzz_$$_$(date +%s)"
psql -q "$INTAKE_TEST_DATABASE_URL" -c "CREATE DATABASE \"$database\""
start_server postgres --database-url "${INTAKE_TEST_DATABASE_URL%/*}/$database"
fuzz postgres
stop_server
