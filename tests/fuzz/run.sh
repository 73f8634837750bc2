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

# shellcheck source=../live-server.sh
source ../live-server.sh
pip_install "$here/.pydeps" requirements.txt

# The streams are left out: they answer with an event stream that stays open while an
# import runs (the workspace stream never ends), which a request-per-case fuzzer cannot read.
fuzz() {
    echo "== API fuzzer on $1"
    # A table, so that generated requests reach past "no such table" now and then.
    curl -fsS -o /dev/null -X POST "$INTAKE_URL/v1/tables" -H "Authorization: Bearer $INTAKE_KEY" \
        -H 'Content-Type: application/json' \
        -d '{"name":"orders","columns":[{"name":"id","type":"integer"},{"name":"note","type":"string"}],"primary_key":"id"}'
    python3 -m schemathesis.cli run "$INTAKE_URL/openapi.json" \
        --header "Authorization: Bearer $INTAKE_KEY" \
        --checks not_a_server_error,response_schema_conformance \
        --exclude-path-regex '/stream$' \
        --max-examples "${FUZZ_EXAMPLES:-40}" \
        --seed "${FUZZ_SEED:-1}" \
        --workers 2 \
        --suppress-health-check all \
        --request-timeout 30 \
        --warnings off
    # A 5xx is a bug whatever the check says; the server log names the cause.
    if grep -q 'panicked at' "$tmp/$1.log"; then
        grep -m5 'panicked' "$tmp/$1.log" >&2
        return 1
    fi
}

# The owner key is the instance-admin key too, so that /admin/workspaces is fuzzed as well.
on_both_backends fuzz "API fuzzer" --admin-key "$live_key"
