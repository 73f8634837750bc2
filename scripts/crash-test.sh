#!/usr/bin/env bash
# The kill -9 test at a larger size than CI runs: a release build, a 1M-row file, 40 kills per
# scenario (insert, replace, rollback). Override with ROWS, KILLS, SEED.
#   scripts/crash-test.sh            # ROWS=1000000 KILLS=40
#   ROWS=300000 KILLS=20 SEED=42 scripts/crash-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export INTAKE_CRASH_ROWS="${ROWS:-1000000}"
export INTAKE_CRASH_KILLS="${KILLS:-40}"
if [ -n "${SEED:-}" ]; then export INTAKE_CRASH_SEED="$SEED"; fi
cargo test --release --test integration crash:: -- --nocapture --test-threads 1
