#!/usr/bin/env bash
# Starts a local S3-compatible server (moto, from PyPI) on loopback for the tests, in a
# virtualenv of its own, and creates the test bucket. Prints the variables to export:
#   eval "$(scripts/s3-server.sh)"
set -euo pipefail
port="${INTAKE_S3_PORT:-9555}"
venv="${INTAKE_S3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/intake/s3-venv}"
if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet 'moto[server]==5.2.5' >&2
fi
if ! curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/intake-s3.log" 2>&1 &
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
fi
curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "the S3 server did not start" >&2; exit 1; }
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$port/intake-test" || true
cat <<VARS
export AWS_ACCESS_KEY_ID=intake-test
export AWS_SECRET_ACCESS_KEY=intake-test
export AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT=http://127.0.0.1:$port
export AWS_ALLOW_HTTP=true
export INTAKE_TEST_BLOB_URL=s3://intake-test
VARS
