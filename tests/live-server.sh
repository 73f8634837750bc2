# Sourced by the suites that drive the real server binary from outside (tests/clients,
# tests/fuzz): installs what is missing from Debian's packages, builds target/debug/intake,
# and starts and stops it on a free port with a fresh data directory, on SQLite or on a
# PostgreSQL database of its own (created here and dropped on exit). After start_server,
# INTAKE_URL and INTAKE_KEY (an owner key) name it.

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

# Installs a requirements file into a directory of its own (not the system's site-packages),
# so that no virtualenv package is needed.
pip_install() {
    local target=$1 requirements=$2
    python3 -m pip install --quiet --disable-pip-version-check --target "$target" --upgrade -r "$requirements"
    export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
}

live_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
(cd "$live_root" && cargo build --quiet)
bin="${INTAKE_BIN:-${CARGO_TARGET_DIR:-$live_root/target}/debug/intake}"

# The owner key of every server started here.
live_key="intake_live_test_owner_key"
tmp=$(mktemp -d -t intake-live-XXXXXX)
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

# start_server NAME [FLAGS...]: the server on a free port with a fresh data directory.
start_server() {
    local name=$1
    shift
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export INTAKE_URL="http://127.0.0.1:$port"
    export INTAKE_KEY="$live_key"
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

# on_both_backends RUN LABEL [FLAGS...]: RUN (a function taking the backend's name) against
# a server on SQLite, then on a PostgreSQL database of its own (skipped, saying so, when
# INTAKE_TEST_DATABASE_URL is unset). FLAGS go to both servers.
on_both_backends() {
    local run=$1 label=$2
    shift 2
    start_server sqlite "$@"
    "$run" sqlite
    stop_server
    if [ -z "${INTAKE_TEST_DATABASE_URL:-}" ]; then
        echo "== $label on PostgreSQL skipped: INTAKE_TEST_DATABASE_URL is unset"
        return 0
    fi
    database="intake_live_$$_$(date +%s)"
    psql -q "$INTAKE_TEST_DATABASE_URL" -c "CREATE DATABASE \"$database\""
    start_server postgres "$@" --database-url "${INTAKE_TEST_DATABASE_URL%/*}/$database"
    "$run" postgres
    stop_server
}
