#!/usr/bin/env bash
# The whole test suite on both backends: SQLite, then PostgreSQL (with sources in the object
# store of INTAKE_TEST_BLOB_URL, when set). PostgreSQL runs are skipped, saying so, when
# INTAKE_TEST_DATABASE_URL is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== tests on SQLite, sources in each data directory"
INTAKE_TEST_BACKEND=sqlite INTAKE_TEST_BLOB_URL= cargo test "$@"
if [ -z "${INTAKE_TEST_DATABASE_URL:-}" ]; then
    echo "== PostgreSQL suite skipped: INTAKE_TEST_DATABASE_URL is unset"
    exit 0
fi
echo "== tests on PostgreSQL (${INTAKE_TEST_BLOB_URL:-sources in each data directory})"
INTAKE_TEST_BACKEND=postgres cargo test "$@"
