#!/usr/bin/env python3
"""Intake against the databases' own bulk loaders, in one run on one machine.

    python3 bench/run.py --results bench/RESULTS.md     # the full run (about 15 minutes)
    python3 bench/run.py --rows 100000 --runs 1 --skip-10m --list-imports 2000   # smoke

Generates the data (bench/gen.py, cached), builds the release binary, installs the peers it
lacks (apt: sqlite3, postgresql-client, pgloader, wrk, time; pip: duckdb), then times, on the
same files and identically typed tables:

  Intake -> SQLite, sqlite3 .import, Intake -> PostgreSQL, psql \\copy, pgloader, DuckDB
  read_csv; Intake on the 1%-invalid file (every reported row error checked against the
  generator's manifest), on NDJSON, an upsert into a table holding the rows (half changed,
  with the same upsert done by sqlite3 and psql), with an SSE client and a 20 Hz poller
  attached, and on the 10M-row file; then the API under load with wrk: GET /v1/imports/{id}
  while an import runs, and a page of GET /v1/imports with --list-imports imports stored.

Intake is timed as a user sees it: a fresh server (new data directory or database), the
table created, then from the first byte of the upload until GET /v1/imports/{id} answers a
terminal status; validation is on. Peak RSS is the server's VmHWM (peers: their process's,
from /usr/bin/time). Each load is the median of --runs runs.
"""
import argparse
import gzip
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen  # noqa: E402

KEY = "intake_bench_owner_key_000000000000"
TABLE = "orders"
PHYSICAL = "default__orders"
TERMINAL = {"complete", "partially_complete", "failed", "cancelled", "unsupported", "rolled_back"}
SCHEMA = {
    "name": TABLE,
    "columns": [
        {"name": "id", "type": "integer", "required": True},
        {"name": "email", "type": "email", "required": True},
        {"name": "full_name", "type": "string", "required": True},
        {"name": "country", "type": "string", "required": True, "max_length": 2},
        {"name": "amount", "type": "decimal", "required": True, "min": 0},
        {"name": "quantity", "type": "integer", "required": True},
        {"name": "active", "type": "boolean", "required": True},
        {"name": "created_at", "type": "datetime", "required": True},
        {"name": "notes", "type": "string"},
    ],
    "primary_key": ["id"],
}
# The PostgreSQL table of the peers when this build cannot say what Intake creates.
PG_COLUMNS = [("id", "bigint", True), ("email", "text", True), ("full_name", "text", True),
              ("country", "text", True), ("amount", "numeric", True), ("quantity", "bigint", True),
              ("active", "boolean", True), ("created_at", "timestamp with time zone", True),
              ("notes", "text", False)]
DUCKDB_DDL = ("CREATE TABLE orders (id BIGINT PRIMARY KEY, email VARCHAR NOT NULL, full_name VARCHAR NOT NULL, "
              "country VARCHAR NOT NULL, amount DECIMAL(18,2) NOT NULL, quantity BIGINT NOT NULL, "
              "active BOOLEAN NOT NULL, created_at TIMESTAMPTZ NOT NULL, notes VARCHAR)")
PG = "postgres://postgres@127.0.0.1:5432"
APT = {"sqlite3": "sqlite3", "psql": "postgresql-client", "pgloader": "pgloader", "wrk": "wrk",
       "/usr/bin/time": "time"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------- setup

def install(args):
    missing = sorted({pkg for tool, pkg in APT.items() if not shutil.which(tool)})
    if missing:
        if args.no_install:
            log("missing (not installed: --no-install):", " ".join(missing))
        else:
            log("installing with apt-get:", " ".join(missing))
            root = [] if os.geteuid() == 0 else ["sudo"]
            sh(root + ["apt-get", "update", "-qq"])
            sh(root + ["apt-get", "install", "-y", "-qq"] + missing,
               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not args.skip_duckdb and subprocess.run([sys.executable, "-c", "import duckdb"],
                                               capture_output=True).returncode != 0:
        if args.no_install:
            log("duckdb is not installed (--no-install): its row is skipped")
        else:
            log("installing with pip: duckdb")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "duckdb"])


def has_xlsxwriter(args):
    """Whether Python's XlsxWriter (which writes the workbook of the xlsx row) is there,
    installing it with pip unless --no-install."""
    probe = [sys.executable, "-c", "import xlsxwriter"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return True
    if args.no_install:
        log("XlsxWriter is not installed (--no-install): the xlsx row is skipped")
        return False
    log("installing with pip: XlsxWriter")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "XlsxWriter"])
    return subprocess.run(probe, capture_output=True).returncode == 0


def gzipped(path):
    """`path` gzip-compressed beside it (cached with it)."""
    out = path + ".gz"
    if not os.path.exists(out):
        log("compressing", os.path.basename(path))
        with open(path, "rb") as src, gzip.open(out + ".part", "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(out + ".part", out)
    return out


def workbook(path, rows):
    """The first `rows` rows of the CSV at `path` as an xlsx sheet (cached beside it), each
    cell typed as a spreadsheet user types it: numbers, booleans, text (the RFC 3339
    timestamps stay text: their offsets are no spreadsheet date)."""
    out = "%s.%d.xlsx" % (path, rows)
    if os.path.exists(out):
        return out
    import csv
    import xlsxwriter
    log("writing", os.path.basename(out))
    book = xlsxwriter.Workbook(out + ".part.xlsx", {"constant_memory": True})
    sheet = book.add_worksheet("Orders")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        sheet.write_row(0, 0, header)
        for r, rec in enumerate(reader, start=1):
            if r > rows:
                break
            for c, (name, value) in enumerate(zip(header, rec)):
                if value == "":
                    continue
                if name in ("id", "quantity"):
                    sheet.write_number(r, c, int(value))
                elif name == "amount":
                    sheet.write_number(r, c, float(value))
                elif name == "active":
                    sheet.write_boolean(r, c, value == "true")
                else:
                    sheet.write_string(r, c, value)
    book.close()
    os.replace(out + ".part.xlsx", out)
    return out


def build(args):
    if args.binary:
        return args.binary
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    log("building the release binary (cargo build --release)")
    sh(["cargo", "build", "--release", "--quiet", "--bin", "intake"], cwd=ROOT)
    return os.path.join(target, "release", "intake")


def cache_dir():
    base = os.environ.get("INTAKE_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "intake-bench")
    os.makedirs(base, exist_ok=True)
    return base


def dataset(cache, rows, fmt="csv", invalid=0.0, changed=0.0):
    """The cached file for these parameters, generated when missing or when gen.py changed."""
    version = hashlib.sha256(open(os.path.join(HERE, "gen.py"), "rb").read()).hexdigest()[:10]
    kind = "clean" if not invalid and not changed else (
        "invalid%g" % (invalid * 100) if invalid else "changed%g" % (changed * 100))
    path = os.path.join(cache, "orders_%d_%s_%s.%s" % (rows, kind, version, fmt))
    if not os.path.exists(path):
        for f in os.listdir(cache):  # files of an older generator
            if f.startswith("orders_") and version not in f:
                os.remove(os.path.join(cache, f))
        log("generating", os.path.basename(path))
        t = time.time()
        gen.generate(rows, path, fmt, invalid, changed)
        log("  %.1f s, %.1f MB" % (time.time() - t, os.path.getsize(path) / 1e6))
    return path


def machine(binary):
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) // 1024
    duck = out([sys.executable, "-c", "import duckdb; print(duckdb.__version__)"])
    pgv = out(["psql", PG + "/postgres", "-Atc", "SHOW server_version"])
    rev = out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = " (modified)" if out(["git", "-C", ROOT, "status", "--porcelain", "--", "src"]) else ""
    return [
        ("cores", "%d (%s)" % (os.cpu_count(), cpu)),
        ("memory", "%d MiB" % mem),
        ("os", "%s, kernel %s" % (out(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]), platform.release())),
        ("intake", "%s%s, release build (%s)" % (rev, dirty, out(["rustc", "--version"]))),
        ("sqlite3", out(["sqlite3", "--version"]).split(" ")[0] or "missing"),
        ("PostgreSQL", pgv or "not reachable"),
        ("psql", out(["psql", "--version"]) or "missing"),
        ("pgloader", (out(["pgloader", "--version"]).splitlines() or ["missing"])[0]),
        ("wrk", (out(["sh", "-c", "wrk -v 2>&1"]).splitlines() or ["missing"])[0]),
        ("duckdb", duck or "missing"),
        ("python", platform.python_version()),
    ]


# ---------------------------------------------------------------- Intake

class Server:
    """A fresh Intake server: its own data directory, and for PostgreSQL its own database."""
    count = 0

    def __init__(self, binary, work, port=None, backend="sqlite"):
        Server.count += 1
        port = port or free_port()
        self.dir = os.path.join(work, "server%d" % Server.count)
        self.backend = backend
        self.port = port
        cmd = [binary, "serve", "--bind", "127.0.0.1:%d" % port, "--data-dir", self.dir]
        self.db = None
        if backend == "postgres":
            self.db = "intake_bench_%d_%d" % (os.getpid(), Server.count)
            pg_create(self.db)
            cmd += ["--database-url", "%s/%s" % (PG, self.db)]
        self.log = open(os.path.join(work, "server%d.log" % Server.count), "wb")
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, INTAKE_BOOTSTRAP_KEY=KEY),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.conn = None
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited: %s" % open(self.log.name).read()[-500:])
            try:
                self.call("GET", "/healthz", raw=True)
                if self.proc.poll() is not None:  # another process answered on the port
                    raise RuntimeError("the server exited: %s" % open(self.log.name).read()[-500:])
                break
            except OSError:
                self.conn = None
                time.sleep(0.05)
        else:
            raise RuntimeError("the server did not start")

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600, blocksize=1 << 20)

    def call(self, method, path, body=None, ctype="application/json", raw=False, ok=(200, 201, 202)):
        if self.conn is None:
            self.conn = self.connection()
        headers = {"Authorization": "Bearer " + KEY}
        if body is not None:
            headers["Content-Type"] = ctype
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closes a kept-alive connection left idle for 30 s (while wrk ran,
            # say): a read is sent again once on a new connection.
            self.conn.close()
            self.conn = None
            if method != "GET":
                raise
            self.conn = self.connection()
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = None
            raise
        if raw:
            return data
        if resp.status not in ok:
            raise RuntimeError("%s %s: %d %s" % (method, path, resp.status, data[:500]))
        return json.loads(data)

    def upload(self, path, ctype, query):
        """POSTs the file as the raw body, streamed."""
        conn = self.connection()
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            conn.request("POST", "/v1/imports?" + urllib.parse.urlencode(query), body=f,
                         headers={"Authorization": "Bearer " + KEY, "Content-Type": ctype,
                                  "Content-Length": str(size)})
            resp = conn.getresponse()
            data = resp.read()
        conn.close()
        if resp.status != 202:
            raise RuntimeError("upload: %d %s" % (resp.status, data[:500]))
        return json.loads(data)

    def wait(self, import_id, every=0.01):
        while True:
            imp = self.call("GET", "/v1/imports/" + import_id)
            if imp["status"] in TERMINAL:
                return imp
            time.sleep(every)

    def rss_mib(self):
        for line in open("/proc/%d/status" % self.proc.pid):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self):
        f = open("/proc/%d/stat" % self.proc.pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.db:
            pg_drop(self.db)


def free_port():
    """A port nothing listens on (each server gets its own: no answer from a stranger)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ctype_of(path):
    if path.endswith(".ndjson"):
        return "application/x-ndjson"
    # Compressed files and workbooks are recognised by their first bytes.
    if path.endswith((".gz", ".xlsx")):
        return "application/octet-stream"
    return "text/csv"


def same_rows(rows, digests=None, key=None):
    """A check that an import created exactly `rows` rows and rejected none; with `digests`,
    also that the table holds what the load of the same rows in another form left (the
    first load of `key` records the digest, the others must match it)."""
    def check(srv, imp):
        c = imp["counts"]
        if c["created"] != rows or c["invalid"] != 0:
            raise RuntimeError("created %s and rejected %s of %d rows" % (c["created"], c["invalid"], rows))
        if digests is not None:
            d = table_digest(srv)
            if digests.setdefault(key, d) != d:
                raise RuntimeError("the table differs from the plain file's load (%s, not %s)" % (d, digests[key]))
    return check


def table_digest(srv):
    """An MD5 of the loaded table's rows in key order (bookkeeping columns left out), each
    value as the database holds it: two loads of the same rows give the same digest."""
    cols = ", ".join('"%s"' % c["name"] for c in SCHEMA["columns"])
    if srv.backend == "postgres":
        return out(["psql", "%s/%s" % (PG, srv.db), "-Atc",
                    "SELECT md5(string_agg(concat_ws('|', %s), E'\\n' ORDER BY id)) FROM \"default\".%s"
                    % (cols, TABLE)])
    import hashlib
    import sqlite3
    h = hashlib.md5()
    conn = sqlite3.connect(os.path.join(srv.dir, "intake.db"))
    for row in conn.execute('SELECT %s FROM "%s" ORDER BY id' % (cols, PHYSICAL)):
        h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()


def intake_run(ctx, backend, path, mode="insert", preload=None, observe=False, check=None, create=False):
    """One timed Intake load on a fresh server; returns (seconds, peak RSS MiB, import).
    With `create`, the table does not exist: the import infers it from the whole file."""
    srv = Server(ctx.binary, ctx.work, None, backend)
    try:
        if not create:
            srv.call("POST", "/v1/tables", SCHEMA)
        if preload:
            imp = srv.upload(preload, ctype_of(preload), {"table": TABLE})
            imp = srv.wait(imp["id"], 0.05)
            assert imp["status"] == "complete", imp
        stop = threading.Event()
        watchers = []
        settle()
        cpu0 = srv.cpu_seconds()
        started = time.perf_counter()
        options = {"table": TABLE, "mode": mode}
        if create:
            options["create_table"] = "true"
        imp = srv.upload(path, ctype_of(path), options)
        uploaded = time.perf_counter() - started
        if observe:
            watchers = observers(srv, imp["id"], stop)
        imp = srv.wait(imp["id"])
        took = time.perf_counter() - started
        imp["_cpu"] = srv.cpu_seconds() - cpu0
        imp["_upload"] = uploaded
        stop.set()
        for w in watchers:
            w.join()
        rss = srv.rss_mib()
        if imp["status"] not in ("complete", "partially_complete"):
            raise RuntimeError("import ended %s: %s" % (imp["status"], imp.get("error")))
        if check:
            check(srv, imp)
        if backend == "postgres" and ctx.pg_ddl is None:
            ctx.pg_ddl = pg_table_ddl(srv.db)
        if backend == "sqlite" and ctx.sqlite_ddl is None:
            ctx.sqlite_ddl = sqlite_table_ddl(os.path.join(srv.dir, "intake.db"))
        return took, rss, imp
    finally:
        srv.stop()


def observers(srv, import_id, stop):
    """An SSE client reading the import's stream and a poller at 20 Hz."""
    def stream():
        conn = srv.connection()
        conn.request("GET", "/v1/imports/%s/stream" % import_id,
                     headers={"Authorization": "Bearer " + KEY, "Accept": "text/event-stream"})
        resp = conn.getresponse()
        while resp.readline():
            pass
        conn.close()

    def poll():
        conn = srv.connection()
        while not stop.is_set():
            conn.request("GET", "/v1/imports/" + import_id, headers={"Authorization": "Bearer " + KEY})
            conn.getresponse().read()
            time.sleep(0.05)
        conn.close()

    ws = [threading.Thread(target=stream), threading.Thread(target=poll)]
    for w in ws:
        w.start()
    return ws


def verify_errors(manifest_path):
    """Checks that the import reported exactly the manifest's rows, each at its line."""
    expected = {}
    with open(manifest_path, encoding="utf-8") as f:
        next(f)
        for line in f:
            i, record, ln, kind, column, value = line.rstrip("\n").split("\t")
            expected[int(ln)] = (int(record), column, kind)

    def check(srv, imp):
        got = {}
        cursor = None
        while True:
            q = {"limit": 1000}
            if cursor:
                q["cursor"] = cursor
            page = srv.call("GET", "/v1/imports/%s/errors?%s" % (imp["id"], urllib.parse.urlencode(q)))
            for e in page["data"]:
                got[e["line"]] = (e["record"], e["column"], e["code"])
            cursor = page.get("next_cursor")
            if not page.get("has_more"):
                break
        missing = [ln for ln in expected if ln not in got]
        extra = [ln for ln in got if ln not in expected]
        wrong = [ln for ln in expected if ln in got and
                 (got[ln][0] != expected[ln][0] or got[ln][1] != expected[ln][1])]
        invalid = imp["counts"]["invalid"]
        verdict = {"expected": len(expected), "reported": len(got), "invalid": invalid,
                   "missing": len(missing), "extra": len(extra), "wrong": len(wrong)}
        verdict["ok"] = not missing and not extra and not wrong and invalid == len(expected)
        if not verdict["ok"]:
            log("  error report mismatch:", verdict, "missing", missing[:5], "extra", extra[:5],
                "wrong", [(ln, got[ln], expected[ln]) for ln in wrong[:5]])
        check.verdict = verdict
    check.verdict = None
    return check


# ---------------------------------------------------------------- peers

def settle():
    """Flushes what earlier loads left dirty (the kernel's page cache, PostgreSQL's shared
    buffers), so that no load pays for the one before it."""
    subprocess.run(["sync"])
    if shutil.which("psql"):  # absent on a run without PostgreSQL
        subprocess.run(["psql", PG + "/postgres", "-qAtc", "CHECKPOINT"], capture_output=True)


def timed(cmd, stdin=None, env=None):
    """Runs a peer under /usr/bin/time; returns (seconds, peak RSS MiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        settle()
        started = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name] + cmd, input=stdin,
                           capture_output=True, text=True, env=env)
        took = time.perf_counter() - started
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (cmd[0], (p.stderr or p.stdout)[-800:]))
        noise = [l for l in (p.stderr or "").splitlines() if l.strip()]
        if noise:
            log("  %s said: %s" % (cmd[0], " | ".join(noise[:3])))
        rss = int(open(t.name).read().split()[-1]) / 1024
    return took, rss


def sqlite_table_ddl(db):
    """Intake's table, minus its bookkeeping column."""
    conn = __import__("sqlite3").connect(db)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (PHYSICAL,)).fetchone()[0]
    conn.close()
    return "\n".join(l for l in sql.splitlines() if "_intake_import" not in l)


def sqlite_ddl_fallback():
    types = {"integer": "INTEGER", "boolean": "INTEGER", "decimal": "NUMERIC"}
    cols = ['  "%s" %s%s' % (c["name"], types.get(c["type"], "TEXT"), " NOT NULL" if c.get("required") else "")
            for c in SCHEMA["columns"]]
    return 'CREATE TABLE "%s" (\n%s,\n  PRIMARY KEY ("id")\n)' % (PHYSICAL, ",\n".join(cols))


def sqlite_import(ctx, path, upsert_from=None):
    d = tempfile.mkdtemp(dir=ctx.work)
    db = os.path.join(d, "peer.db")
    ddl = ctx.sqlite_ddl or sqlite_ddl_fallback()
    sh(["sqlite3", db], input=ddl + ";", text=True)
    try:
        if upsert_from is None:
            return timed(["sqlite3", db, ".import --csv --skip 1 %s %s" % (path, PHYSICAL)])
        sh(["sqlite3", db, ".import --csv --skip 1 %s %s" % (upsert_from, PHYSICAL)])
        cols = [c["name"] for c in SCHEMA["columns"]]
        script = "\n".join([
            ddl.replace('CREATE TABLE "%s"' % PHYSICAL, 'CREATE TEMP TABLE "staged"', 1) + ";",
            ".import --csv --skip 1 %s staged" % path,
            'INSERT INTO "%s" SELECT * FROM staged WHERE true ON CONFLICT (id) DO UPDATE SET %s;'
            % (PHYSICAL, ", ".join("%s = excluded.%s" % (c, c) for c in cols[1:])),
        ])
        return timed(["sqlite3", db], stdin=script)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def pg_admin(sql):
    sh(["psql", PG + "/postgres", "-qAtc", sql], capture_output=True)


def pg_create(db):
    pg_admin("DROP DATABASE IF EXISTS %s" % db)
    pg_admin("CREATE DATABASE %s" % db)


def pg_drop(db):
    subprocess.run(["psql", PG + "/postgres", "-qAtc", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db],
                   capture_output=True)


def pg_table_ddl(db):
    """Intake's PostgreSQL table (its column types), minus its bookkeeping columns."""
    rows = out(["psql", "%s/%s" % (PG, db), "-Atc",
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
                "FROM pg_attribute a WHERE a.attrelid = '\"default\".%s'::regclass "
                "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum" % TABLE])
    cols = []
    for line in rows.splitlines():
        name, ty, notnull = line.split("|")
        if not name.startswith("_intake_"):
            cols.append((name, ty, notnull == "t"))
    return cols or None


def pg_ddl(ctx, table="orders"):
    cols = ctx.pg_ddl or PG_COLUMNS
    return "CREATE TABLE %s (%s, PRIMARY KEY (id))" % (
        table, ", ".join("%s %s%s" % (n, t, " NOT NULL" if nn else "") for n, t, nn in cols))


def psql_copy(ctx, path, upsert_from=None):
    db = "bench_peer_%d" % os.getpid()
    pg_create(db)
    url = "%s/%s" % (PG, db)
    try:
        sh(["psql", url, "-qc", pg_ddl(ctx)], capture_output=True)
        copy = "\\copy %%s FROM '%s' WITH (FORMAT csv, HEADER true)" % path
        if upsert_from is None:
            return timed(["psql", url, "-qv", "ON_ERROR_STOP=1", "-c", copy % "orders"])
        sh(["psql", url, "-qc", (copy % "orders").replace(path, upsert_from)], capture_output=True)
        cols = [c[0] for c in (ctx.pg_ddl or PG_COLUMNS)]
        script = "\n".join([
            "BEGIN;",
            "CREATE TEMP TABLE staged (LIKE orders) ON COMMIT DROP;",
            copy % "staged",
            "INSERT INTO orders SELECT * FROM staged ON CONFLICT (id) DO UPDATE SET %s;"
            % ", ".join("%s = excluded.%s" % (c, c) for c in cols[1:]),
            "COMMIT;",
        ])
        return timed(["psql", url, "-qv", "ON_ERROR_STOP=1"], stdin=script)
    finally:
        pg_drop(db)


def pgloader(ctx, path):
    db = "bench_pgloader_%d" % os.getpid()
    pg_create(db)
    url = "%s/%s" % (PG, db)
    try:
        sh(["psql", url, "-qc", pg_ddl(ctx)], capture_output=True)
        cols = ", ".join(c["name"] for c in SCHEMA["columns"])
        load = os.path.join(ctx.work, "orders.load")
        with open(load, "w") as f:
            f.write("""LOAD CSV
  FROM '%s' (%s)
  INTO %s
  TARGET TABLE orders
  WITH skip header = 1, fields optionally enclosed by '"', fields escaped by double-quote,
       fields terminated by ',';
""" % (path, cols, url))
        took, rss = timed(["pgloader", "--no-ssl-cert-verification", "--quiet", load])
        n = out(["psql", url, "-Atc", "SELECT count(*) FROM orders"])
        if n != str(ctx.rows_of[path]):
            raise RuntimeError("pgloader loaded %s rows of %d" % (n, ctx.rows_of[path]))
        return took, rss
    finally:
        pg_drop(db)


def duckdb_load(ctx, path):
    d = tempfile.mkdtemp(dir=ctx.work)
    script = """
import duckdb
con = duckdb.connect(%r)
con.execute(%r)
con.execute("INSERT INTO orders SELECT * FROM read_csv(%r, header = true, quote = '\\"', escape = '\\"', columns = {'id': 'BIGINT', 'email': 'VARCHAR', 'full_name': 'VARCHAR', 'country': 'VARCHAR', 'amount': 'DECIMAL(18,2)', 'quantity': 'BIGINT', 'active': 'BOOLEAN', 'created_at': 'TIMESTAMPTZ', 'notes': 'VARCHAR'})")
con.close()
""" % (os.path.join(d, "peer.duckdb"), DUCKDB_DDL, path)
    try:
        return timed([sys.executable, "-c", script])
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- API under load

WRK_POST = """
wrk.method = "POST"
wrk.body = '{"table": "%s", "start": false}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url, seconds, threads, conns, script=None, latency=True):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s",
           "-H", "Authorization: Bearer " + KEY]
    if latency:
        cmd.append("--latency")
    if script:
        cmd += ["-s", script]
    text = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    res = {"text": text}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", text)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non2xx"] = int(m.group(1)) if m else 0
    for pct in ("50", "90", "99"):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % pct, text)
        if m:
            v = float(m.group(1))
            res["p" + pct] = v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    return res


def api_load(ctx, big_path):
    """wrk against GET /v1/imports/{id} and a page of GET /v1/imports, with --list-imports
    imports stored and an import running."""
    srv = Server(ctx.binary, ctx.work, None, "sqlite")
    res = {}
    try:
        srv.call("POST", "/v1/tables", SCHEMA)
        srv.call("POST", "/v1/tables", dict(SCHEMA, name="waiting"))
        n = ctx.args.list_imports
        lua = os.path.join(ctx.work, "create.lua")
        with open(lua, "w") as f:
            f.write(WRK_POST % "waiting")
        started = time.perf_counter()
        # Imports waiting for their file (start=false): created through the API in bursts.
        while True:
            page = srv.call("GET", "/v1/imports?limit=1")["data"]
            have = page[0]["number"] if page else 0
            if have >= n:
                break
            burst = max(1, min(30, (n - have) // 2000))
            wrk("http://127.0.0.1:%d/v1/imports" % srv.port, burst, 2, 8, lua, latency=False)
        res["stored"] = srv.call("GET", "/v1/imports?limit=1")["data"][0]["number"]
        res["create_seconds"] = time.perf_counter() - started
        log("  %d imports stored in %.0f s" % (res["stored"], res["create_seconds"]))
        base = "http://127.0.0.1:%d" % srv.port
        res["list_idle"] = wrk(base + "/v1/imports?limit=50", ctx.args.wrk_seconds, 1, 1)
        # An import runs during the measurements (restarted if it ends early).
        running = {"id": None, "ended_early": 0}
        stop = threading.Event()

        def keep_importing():
            api = Server.__new__(Server)
            api.port, api.conn = srv.port, None
            while not stop.is_set():
                imp = api.upload(big_path, "text/csv", {"table": TABLE, "mode": "upsert"})
                running["id"] = imp["id"]
                while not stop.is_set():
                    if api.call("GET", "/v1/imports/" + imp["id"])["status"] in TERMINAL:
                        running["ended_early"] += 1
                        break
                    time.sleep(0.2)
            if running["id"]:
                api.call("POST", "/v1/imports/%s/cancel" % running["id"], ok=(200, 202, 409))
        t = threading.Thread(target=keep_importing)
        t.start()
        while True:
            if running["id"] and srv.call("GET", "/v1/imports/" + running["id"])["status"] == "processing":
                break
            time.sleep(0.05)
        res["get"] = wrk(base + "/v1/imports/" + running["id"], ctx.args.wrk_seconds, 2, 16)
        res["list"] = wrk(base + "/v1/imports?limit=50", ctx.args.wrk_seconds, 1, 1)
        res["list_filtered"] = wrk(base + "/v1/imports?limit=50&status=complete,processing&table=orders",
                                   ctx.args.wrk_seconds, 1, 1)
        res["import_restarts"] = running["ended_early"]
        stop.set()
        t.join()
        res["rss"] = srv.rss_mib()
    finally:
        srv.stop()
    return res


# ---------------------------------------------------------------- the run

class Ctx:
    pass


def summary(results):
    secs = [r[0] for r in results]
    extra = results[-1][2] if len(results[-1]) > 2 else None
    cpu = [r[2]["_cpu"] for r in results if len(r) > 2 and "_cpu" in r[2]]
    up = [r[2]["_upload"] for r in results if len(r) > 2 and "_upload" in r[2]]
    return {"seconds": statistics.median(secs), "all": secs, "rss": max(r[1] for r in results),
            "extra": extra, "runs": len(results), "cpu": statistics.median(cpu) if cpu else None,
            "upload": statistics.median(up) if up else None}


def median_runs(name, runs, fn):
    results = []
    for k in range(runs):
        r = fn()
        results.append(r)
        log("  %s run %d: %.2f s, %.0f MiB" % (name, k + 1, r[0], r[1]))
    return summary(results)


def fmt_row(label, target, rows, size, r, ratio="", goal=""):
    if r is None:
        return "| %s | %s | n/a (not supported by this build) | | | | | %s | %s |" % (label, target, ratio, goal)
    if isinstance(r, str):
        return "| %s | %s | %s | | | | | %s | %s |" % (label, target, r, ratio, goal)
    s = r["seconds"]
    cpu = "%.2f" % r["cpu"] if r.get("cpu") is not None else ""
    wall = "%.2f" % s + (" (upload %.2f)" % r["upload"] if r.get("upload") is not None else "")
    return "| %s | %s | %s | %.0f | %.1f | %.0f | %s | %s | %s |" % (
        label, target, wall, rows / s, size / 1e6 / s, r["rss"], cpu, ratio, goal)


def paired(peer, ours):
    """The two loads' seconds round by round, when both ran once in each round."""
    if not isinstance(peer, dict) or not isinstance(ours, dict):
        return None
    a, b = peer.get("all"), ours.get("all")
    if a and b and len(a) == len(b) and len(a) > 1:
        return list(zip(a, b))
    return None


def ratio(peer, ours):
    """Throughput ratio ours/peer (= peer seconds / our seconds): the median of the rounds'
    ratios when both loads ran in the same rounds (a slow minute of the shared machine slows
    the two loads of a round alike, and a pair keeps them together), else the ratio of the
    medians."""
    if not isinstance(peer, dict) or not isinstance(ours, dict):
        return None
    pairs = paired(peer, ours)
    if pairs:
        return statistics.median(x / y for x, y in pairs)
    return peer["seconds"] / ours["seconds"]


def rounds_note(peer, ours):
    """Each round's ratio, and the ratio of the medians, beside a paired ratio."""
    pairs = paired(peer, ours)
    if not pairs:
        return ""
    return " (rounds %s; medians' ratio %.2f×)" % (
        ", ".join("%.2f" % (x / y) for x, y in pairs), peer["seconds"] / ours["seconds"])


def cpu_note(base, other):
    """The server CPU ratio of two Intake loads: steadier than wall time on a shared machine."""
    if isinstance(base, dict) and isinstance(other, dict) and base.get("cpu") and other.get("cpu"):
        return " (CPU %.2f×)" % (base["cpu"] / other["cpu"])
    return ""


def goal_text(value, target, fmt="%.2f×", op=">="):
    if value is None:
        return "n/a"
    ok = {">=": value >= target, "<": value < target, "<=": value <= target}[op]
    sign = {">=": " ≥ ", "<": " < ", "<=": " ≤ "}[op]
    shown = fmt % value
    if shown == fmt % target and fmt == "%.2f×":
        # At the bar once rounded: one more digit says on which side it fell.
        shown = "%.3f×" % value
    return ("**met**" if ok else "**MISSED**") + " (" + shown + sign + (fmt % target) + ")"


def rss_goal(mib):
    if mib is None:
        return "n/a"
    return "%.0f MiB, %s" % (mib, "**met** (≤ 100 MiB)" if mib <= 100 else "**MISSED** (> 100 MiB)")


def try_run(name, fn):
    try:
        return fn()
    except Exception as e:  # a peer that fails is reported, the run goes on
        log("  %s failed: %s" % (name, e))
        return "failed: %s" % str(e).splitlines()[0][:80]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the main files (default 1M)")
    ap.add_argument("--big-rows", type=int, default=10_000_000, help="rows of the big file (default 10M)")
    ap.add_argument("--runs", type=int, default=3, help="runs per load, the median is shown (default 3)")
    ap.add_argument("--big-runs", type=int, default=1, help="runs of the big file (default 1)")
    ap.add_argument("--skip-10m", action="store_true", help="no big file")
    ap.add_argument("--peers-10m", action="store_true", help="also time sqlite3 and psql on the big file")
    ap.add_argument("--skip-pg", action="store_true", help="no PostgreSQL rows")
    ap.add_argument("--skip-pgloader", action="store_true")
    ap.add_argument("--skip-duckdb", action="store_true")
    ap.add_argument("--skip-api", action="store_true", help="no API load test")
    ap.add_argument("--xlsx-rows", type=int, default=100_000,
                    help="rows of the xlsx workbook load (default 100k: a workbook is read whole)")
    ap.add_argument("--list-imports", type=int, default=100_000, help="imports stored for the list test")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--binary", help="an Intake binary (default: cargo build --release)")
    ap.add_argument("--no-install", action="store_true", help="install nothing; skip what is missing")
    ap.add_argument("--results", help="also write the results (markdown) to this file")
    ap.add_argument("--only-ndjson", action="store_true",
                    help="only the loads the NDJSON goal compares: CSV and NDJSON, side by side")
    ap.add_argument("--only", help="only these loads, by key (comma-separated, e.g. "
                    "intake_sqlite,duckdb or upsert_sqlite,upsert_sqlite3)")
    args = ap.parse_args()
    command = "python3 bench/run.py " + " ".join(sys.argv[1:])

    install(args)
    ctx = Ctx()
    ctx.load_start = os.getloadavg()[0]
    ctx.args = args
    ctx.binary = build(args)
    ctx.pg_ddl = None
    ctx.sqlite_ddl = None
    help_text = out([ctx.binary, "serve", "--help"])
    pg_supported = "--database-url" in help_text
    pg_up = bool(out(["psql", PG + "/postgres", "-Atc", "SELECT 1"]))
    do_pg = not args.skip_pg and pg_up
    cache = cache_dir()
    rows, big = args.rows, args.big_rows
    clean = dataset(cache, rows)
    invalid = dataset(cache, rows, invalid=0.01)
    changed = dataset(cache, rows, changed=0.5)
    ndjson = dataset(cache, rows, "ndjson")
    gz = gzipped(clean)
    xlsx_rows = min(args.xlsx_rows, rows)
    xlsx = workbook(clean, xlsx_rows) if has_xlsxwriter(args) else None
    bigf = None if args.skip_10m else dataset(cache, big)
    ctx.rows_of = {clean: rows, invalid: rows, changed: rows, ndjson: rows, gz: rows, xlsx: xlsx_rows,
                   bigf: big}
    size = {p: os.path.getsize(p) for p in ctx.rows_of if p}
    ctx.work = tempfile.mkdtemp(prefix="intake-bench-")
    R = {}
    try:
        N = args.runs
        log("== %d rows, %.1f MB CSV, %d rounds (each load once per round, interleaved)" % (rows, size[clean] / 1e6, N))
        check = verify_errors(invalid + ".invalid.tsv")
        check_pg = verify_errors(invalid + ".invalid.tsv")
        pg_intake = do_pg and pg_supported
        digests = {}
        # Loads a goal compares run side by side, in groups; within a group the order
        # alternates from round to round (a load run right after another may find the
        # machine busy with what the first left behind).
        groups = [
            [
                ("sqlite3", "sqlite3 .import", True, lambda: sqlite_import(ctx, clean)),
                ("duckdb", "DuckDB read_csv", not args.skip_duckdb, lambda: duckdb_load(ctx, clean)),
                ("intake_sqlite", "Intake -> SQLite", True, lambda: intake_run(ctx, "sqlite", clean)),
                ("onestep_sqlite", "Intake -> SQLite, one-step (table inferred)", True,
                 lambda: intake_run(ctx, "sqlite", clean, create=True)),
                ("invalid_sqlite", "Intake -> SQLite, 1% invalid", True,
                 lambda: intake_run(ctx, "sqlite", invalid, check=check)),
                ("observed", "Intake -> SQLite, SSE + 20 Hz poller", True,
                 lambda: intake_run(ctx, "sqlite", clean, observe=True)),
            ],
            [
                ("psql", "psql \\copy", do_pg, lambda: psql_copy(ctx, clean)),
                ("intake_pg", "Intake -> PostgreSQL", pg_intake, lambda: intake_run(ctx, "postgres", clean)),
                ("onestep_pg", "Intake -> PostgreSQL, one-step (table inferred)", pg_intake,
                 lambda: intake_run(ctx, "postgres", clean, create=True)),
                ("invalid_pg", "Intake -> PostgreSQL, 1% invalid", pg_intake,
                 lambda: intake_run(ctx, "postgres", invalid, check=check_pg)),
            ],
            [("pgloader", "pgloader", do_pg and not args.skip_pgloader, lambda: pgloader(ctx, clean))],
            [
                ("ndjson_sqlite", "Intake -> SQLite, NDJSON", True, lambda: intake_run(ctx, "sqlite", ndjson)),
                ("ndjson_pg", "Intake -> PostgreSQL, NDJSON", pg_intake, lambda: intake_run(ctx, "postgres", ndjson)),
            ],
            [
                # The plain and gzip loads leave the same table, digest for digest.
                ("plain_sqlite", "Intake -> SQLite, plain CSV (digest)", True,
                 lambda: intake_run(ctx, "sqlite", clean, check=same_rows(rows, digests, "sqlite"))),
                ("gzip_sqlite", "Intake -> SQLite, gzip CSV", True,
                 lambda: intake_run(ctx, "sqlite", gz, check=same_rows(rows, digests, "sqlite"))),
                ("plain_pg", "Intake -> PostgreSQL, plain CSV (digest)", pg_intake,
                 lambda: intake_run(ctx, "postgres", clean, check=same_rows(rows, digests, "postgres"))),
                ("gzip_pg", "Intake -> PostgreSQL, gzip CSV", pg_intake,
                 lambda: intake_run(ctx, "postgres", gz, check=same_rows(rows, digests, "postgres"))),
                ("xlsx_sqlite", "Intake -> SQLite, xlsx", xlsx is not None,
                 lambda: intake_run(ctx, "sqlite", xlsx, check=same_rows(xlsx_rows))),
                ("xlsx_pg", "Intake -> PostgreSQL, xlsx", pg_intake and xlsx is not None,
                 lambda: intake_run(ctx, "postgres", xlsx, check=same_rows(xlsx_rows))),
            ],
            [
                ("upsert_sqlite3", "sqlite3 upsert", True, lambda: sqlite_import(ctx, changed, upsert_from=clean)),
                ("upsert_sqlite", "Intake -> SQLite, upsert", True,
                 lambda: intake_run(ctx, "sqlite", changed, "upsert", preload=clean)),
            ],
            [
                ("upsert_psql", "psql upsert", do_pg, lambda: psql_copy(ctx, changed, upsert_from=clean)),
                ("upsert_pg", "Intake -> PostgreSQL, upsert", pg_intake,
                 lambda: intake_run(ctx, "postgres", changed, "upsert", preload=clean)),
            ],
        ]
        everything = {j[0] for g in groups for j in g}
        if args.only_ndjson:
            # The NDJSON goal compares these two loads; timing nothing else keeps the
            # machine's state the same for both.
            keep = {"intake_sqlite", "ndjson_sqlite", "intake_pg", "ndjson_pg"}
            groups = [[j for j in g if j[0] in keep] for g in groups]
            groups = [groups[0] + groups[3][:1], groups[1] + groups[3][1:]]
        if args.only:
            keep = set(args.only.split(","))
            groups = [[j for j in g if j[0] in keep] for g in groups]
        # Loads left out by --only or --only-ndjson say so (not "not supported").
        left_out = everything - {j[0] for g in groups for j in g}
        groups = [[j for j in g if j[2]] for g in groups]
        samples = {j[0]: [] for g in groups for j in g}
        for k in range(N):
            for group in groups:
                for key, name, _, fn in (group if k % 2 == 0 else group[::-1]):
                    if isinstance(samples[key], str):
                        continue
                    try:
                        try:
                            r = fn()
                        except Exception as e:  # once more, then the failure is reported
                            log("  %s failed (%s), once more" % (name, e))
                            r = fn()
                    except Exception as e:  # a load that fails is reported, the run goes on
                        log("  %s failed: %s" % (name, e))
                        samples[key] = "failed: %s" % str(e).splitlines()[0][:80]
                        continue
                    samples[key].append(r)
                    log("  round %d %s: %.2f s, %.0f MiB" % (k + 1, name, r[0], r[1]))
        for key, rs in samples.items():
            R[key] = rs if isinstance(rs, str) else summary(rs)
        for key in left_out:
            R[key] = "not run (--only)"
        R["invalid_verdict"] = check.verdict
        R["invalid_pg_verdict"] = check_pg.verdict
        if bigf:
            log("== %d rows, %.1f MB" % (big, size[bigf] / 1e6))
            R["big_sqlite"] = median_runs("Intake -> SQLite, big", args.big_runs, lambda: intake_run(ctx, "sqlite", bigf))
            if do_pg and pg_supported:
                R["big_pg"] = try_run("Intake -> PG big", lambda: median_runs(
                    "Intake -> PostgreSQL, big", args.big_runs, lambda: intake_run(ctx, "postgres", bigf)))
            if args.peers_10m:
                R["big_sqlite3"] = try_run("sqlite3 big", lambda: median_runs(
                    "sqlite3 .import, big", args.big_runs, lambda: sqlite_import(ctx, bigf)))
                if do_pg:
                    R["big_psql"] = try_run("psql big", lambda: median_runs(
                        "psql \\copy, big", args.big_runs, lambda: psql_copy(ctx, bigf)))
        if not args.skip_api:
            log("== API under load")
            R["api"] = try_run("api", lambda: api_load(ctx, bigf or clean))
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)

    ctx.gz, ctx.xlsx, ctx.xlsx_rows = gz, xlsx, xlsx_rows
    text = report(ctx, R, rows, big, size, clean, invalid, changed, ndjson, bigf, pg_supported, do_pg, command)
    print(text)
    if args.results:
        with open(args.results, "w") as f:
            f.write(text)


def report(ctx, R, rows, big, size, clean, invalid, changed, ndjson, bigf, pg_supported, do_pg, command):
    a = ctx.args
    L = ["# Intake against the databases' bulk loaders: the latest full run", ""]
    L.append("Produced by `bench/run.py` (see `bench/README.md` for what each row measures and "
             "for what limits the goals that are missed).")
    L.append("")
    L.append("Command: `%s` (%s)" % (command, time.strftime("%Y-%m-%d %H:%M")))
    L.append("")
    L.append("| machine | |")
    L.append("|---|---|")
    for k, v in machine(ctx.binary):
        L.append("| %s | %s |" % (k, v))
    L.append("| load average (1 min) at start, at end | %.2f, %.2f (other work on the machine) |" % (
        ctx.load_start, os.getloadavg()[0]))
    L.append("")
    L.append("Files: %d rows, 9 columns (CSV %.1f MB, NDJSON %.1f MB); big file %s. Wall seconds are the "
             "median of %d runs (big file: %d), the loads interleaved run by run so that they share the machine's state (loads a goal compares run side by side, their order alternating from round to round; a ratio is the median of the rounds' ratios of its two loads, each round's ratio and the ratio of the two medians shown beside a goal's); Intake's wall time includes the upload (shown in brackets: until the 202 answer); server CPU is the Intake server's user + system time during the load (the CPU ratio of two Intake loads is shown beside their wall-time ratio: other work on the machine moves wall times, much less CPU time); Intake's RSS is the server's peak (VmHWM), the peers' their "
             "process's (psql's is the client's, not the PostgreSQL backend's)." % (
                 rows, size[clean] / 1e6, size[ndjson] / 1e6,
                 "%d rows, %.1f MB" % (big, size[bigf] / 1e6) if bigf else "skipped", a.runs, a.big_runs))
    L.append("")
    L.append("| load | into | wall s | rows/s | MB/s | peak RSS MiB | server CPU s | ratio | goal |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    g = R.get
    goals = []  # (goal, measured, verdict) for the summary table

    def goal(name, value, target, fmt="%.2f×", op=">=", pair=None):
        verdict = goal_text(value, target, fmt, op)
        measured = fmt % value if value is not None else "n/a"
        if pair and value is not None:
            measured += rounds_note(*pair)
        goals.append((name, measured, verdict))
        return verdict

    r_sqlite = ratio(g("sqlite3"), g("intake_sqlite"))
    r_duck = ratio(g("duckdb"), g("intake_sqlite"))
    L.append(fmt_row("Intake, CSV", "SQLite", rows, size[clean], g("intake_sqlite"),
                     "%.2f× DuckDB, %.2f× sqlite3" % (r_duck or 0, r_sqlite or 0),
                     goal("CSV → SQLite, 1M rows: ≥ 1.0× DuckDB `read_csv` into a typed table with a primary key",
                          r_duck, 1.0, pair=(g("duckdb"), g("intake_sqlite")))))
    L.append(fmt_row("`sqlite3 .import`", "SQLite", rows, size[clean], g("sqlite3"), "peer"))
    if do_pg:
        ip = g("intake_pg") if pg_supported else None
        r_psql, r_pgl = ratio(g("psql"), ip), ratio(g("pgloader"), ip)
        L.append(fmt_row("Intake, CSV", "PostgreSQL", rows, size[clean], ip,
                         ("%.2f× psql" % r_psql + (", %.1f× pgloader" % r_pgl if r_pgl else "")) if r_psql else "",
                         goal("CSV → PostgreSQL: ≥ 1.25× `psql \\copy`", r_psql, 1.25, pair=(g("psql"), ip))))
        L.append(fmt_row("`psql \\copy`", "PostgreSQL", rows, size[clean], g("psql"), "peer"))
        if "pgloader" in R:
            L.append(fmt_row("pgloader", "PostgreSQL", rows, size[clean], g("pgloader"), "peer"))
    else:
        L.append("| Intake / `psql \\copy` / pgloader | PostgreSQL | skipped | | | | | | |")
    if "duckdb" in R:
        L.append(fmt_row("DuckDB `read_csv` (typed table, primary key)", "DuckDB", rows, size[clean],
                         g("duckdb"), "peer"))
    else:
        L.append("| DuckDB `read_csv` | DuckDB | skipped (--skip-duckdb) | | | | | | |")
    # The one-step load reads the file twice (inference, then the load): its time over the
    # load into an existing table.
    for key, base, target in (("onestep_sqlite", "intake_sqlite", "SQLite"),
                              ("onestep_pg", "intake_pg", "PostgreSQL")):
        if key not in R:
            continue
        # ratio(a, b) is a's seconds over b's: here the one-step load's over the plain load's.
        cost = ratio(g(key), g(base))
        L.append(fmt_row("Intake, CSV, one-step (table inferred)", target, rows, size[clean], g(key),
                         "%.2f× the time of an existing table" % cost + cpu_note(g(base), g(key)) if cost else "",
                         goal("one-step load (table inferred from the whole file), %s: ≤ 1.25× the time of the "
                              "load into an existing table" % target, cost, 1.25, op="<=",
                              pair=(g(key), g(base)))))
    r_inv = ratio(g("intake_sqlite"), g("invalid_sqlite"))
    v = g("invalid_verdict") or {}
    verdict = ("all %d invalid rows reported at their line" % v["expected"]) if v.get("ok") else (
        "**MISSED** report: %s" % v if v else "not checked")
    L.append(fmt_row("Intake, CSV 1% invalid", "SQLite", rows, size[invalid], g("invalid_sqlite"),
                     "%.2f× clean" % r_inv + cpu_note(g("intake_sqlite"), g("invalid_sqlite")) if r_inv else "",
                     goal("1% invalid, SQLite: ≥ 0.9× clean, all errors at their lines", r_inv if v.get("ok") else None,
                          0.9, pair=(g("intake_sqlite"), g("invalid_sqlite"))) + "; " + verdict))
    if do_pg and pg_supported:
        r = ratio(g("intake_pg"), g("invalid_pg"))
        v = g("invalid_pg_verdict") or {}
        verdict = ("all %d invalid rows reported at their line" % v["expected"]) if v.get("ok") else (
            "**MISSED** report: %s" % v if v else "not checked")
        L.append(fmt_row("Intake, CSV 1% invalid", "PostgreSQL", rows, size[invalid], g("invalid_pg"),
                         "%.2f× clean" % r if r else "",
                         goal("1% invalid, PostgreSQL: ≥ 0.9× clean, all errors at their lines",
                              r if v.get("ok") else None, 0.9, pair=(g("intake_pg"), g("invalid_pg")))
                         + "; " + verdict))
    r = ratio(g("intake_sqlite"), g("ndjson_sqlite"))
    L.append(fmt_row("Intake, NDJSON", "SQLite", rows, size[ndjson], g("ndjson_sqlite"),
                     "%.2f× CSV" % r if r else "",
                     goal("NDJSON → SQLite: ≥ 0.9× the CSV load's rows/s of the same rows", r, 0.9,
                          pair=(g("intake_sqlite"), g("ndjson_sqlite")))))
    if do_pg and pg_supported:
        r = ratio(g("intake_pg"), g("ndjson_pg"))
        L.append(fmt_row("Intake, NDJSON", "PostgreSQL", rows, size[ndjson], g("ndjson_pg"),
                         "%.2f× CSV" % r if r else "", "reported"))
    for key, target, base in (("gzip_sqlite", "SQLite", "plain_sqlite"), ("gzip_pg", "PostgreSQL", "plain_pg")):
        if key in R:
            r = ratio(g(base), g(key))
            L.append(fmt_row("Intake, gzip CSV (level 6)", target, rows, size[ctx.gz], g(key),
                             "%.2f× plain CSV" % r if r else "",
                             "every row created; the table's digest equals the plain file's load"))
    for key, target in (("xlsx_sqlite", "SQLite"), ("xlsx_pg", "PostgreSQL")):
        if key in R:
            L.append(fmt_row("Intake, xlsx (one sheet)", target, ctx.xlsx_rows, size[ctx.xlsx], g(key),
                             "", "every row created; a workbook is read whole (32 MiB at most)"))
    up = g("upsert_sqlite")
    counts = up["extra"]["counts"] if isinstance(up, dict) else {}
    r = ratio(g("upsert_sqlite3"), up)
    L.append(fmt_row("Intake, upsert (half changed)", "SQLite", rows, size[changed], up,
                     "%.2f× sqlite3 upsert" % r if r else "",
                     goal("upsert (half the rows changed, rollback kept possible), SQLite: ≥ 0.9× the peer's "
                          "staged upsert", r, 0.9, pair=(g("upsert_sqlite3"), up))
                     + " (updated %s, unchanged %s)" % (counts.get("updated"), counts.get("unchanged"))))
    L.append(fmt_row("sqlite3 `.import` to a temp table + `INSERT … ON CONFLICT`", "SQLite", rows,
                     size[changed], g("upsert_sqlite3"), "peer"))
    if do_pg:
        upg = g("upsert_pg") if pg_supported else None
        r = ratio(g("upsert_psql"), upg)
        L.append(fmt_row("Intake, upsert (half changed)", "PostgreSQL", rows, size[changed], upg,
                         "%.2f× psql upsert" % r if r else "",
                         goal("upsert (half the rows changed, rollback kept possible), PostgreSQL: ≥ 0.9× the "
                              "peer's staged upsert", r, 0.9, pair=(g("upsert_psql"), upg))))
        L.append(fmt_row("`psql \\copy` to a temp table + `INSERT … ON CONFLICT`", "PostgreSQL", rows,
                         size[changed], g("upsert_psql"), "peer"))
    r = ratio(g("intake_sqlite"), g("observed"))
    L.append(fmt_row("Intake, CSV, SSE client + 20 Hz poller", "SQLite", rows, size[clean], g("observed"),
                     "%.2f× unobserved" % r + cpu_note(g("intake_sqlite"), g("observed")) if r else "",
                     goal_text(r, 0.95)))
    rss_small = g("intake_sqlite")["rss"] if isinstance(g("intake_sqlite"), dict) else None
    if bigf:
        b = g("big_sqlite")
        rss_big = b["rss"] if isinstance(b, dict) else None
        L.append(fmt_row("Intake, CSV %dM rows" % (big // 1_000_000), "SQLite", big, size[bigf], b, "",
                         "RSS " + rss_goal(rss_big)))
        if do_pg and pg_supported:
            b = g("big_pg")
            rb = b["rss"] if isinstance(b, dict) else None
            L.append(fmt_row("Intake, CSV %dM rows" % (big // 1_000_000), "PostgreSQL", big, size[bigf], b, "",
                             "RSS " + rss_goal(rb)))
        if "big_sqlite3" in R:
            L.append(fmt_row("`sqlite3 .import` %dM rows" % (big // 1_000_000), "SQLite", big, size[bigf], g("big_sqlite3"), "peer"))
        if "big_psql" in R:
            L.append(fmt_row("`psql \\copy` %dM rows" % (big // 1_000_000), "PostgreSQL", big, size[bigf], g("big_psql"), "peer"))
    L.append("")
    L.append("Peak RSS of the server, %d-row CSV into SQLite: %s." % (rows, rss_goal(rss_small)))
    goals.append(("peak RSS ≤ 100 MiB, %dM rows" % (rows // 1_000_000 or 1),
                  "%.0f MiB" % rss_small if rss_small else "n/a", rss_goal(rss_small).split(", ", 1)[-1]))
    if bigf:
        b = g("big_sqlite")
        rss_big = b["rss"] if isinstance(b, dict) else None
        goals.append(("peak RSS ≤ 100 MiB, %dM rows" % (big // 1_000_000),
                      "%.0f MiB" % rss_big if rss_big else "n/a", rss_goal(rss_big).split(", ", 1)[-1]))
    L.append("")
    L.append("Goals, each measured in this run (ratios of loads run side by side):")
    L.append("")
    L.append("| goal | measured | met/missed |")
    L.append("|---|---|---|")
    for name, measured, verdict in goals:
        L.append("| %s | %s | %s |" % (name, measured, verdict))
    api = g("api")
    if isinstance(api, dict):
        L.append("")
        L.append("API under load (wrk on loopback, %d s each, an import running; %d imports stored, created "
                 "through the API in %.0f s; server peak RSS %.0f MiB):" % (
                     a.wrk_seconds, api["stored"], api["create_seconds"], api["rss"]))
        L.append("")
        L.append("| request | wrk | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | goal |")
        L.append("|---|---|---|---|---|---|---|---|")

        def wl(name, conf, w, goal):
            L.append("| %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %s |" % (
                name, conf, w["rps"], w.get("p50", 0), w.get("p90", 0), w.get("p99", 0), w["non2xx"], goal))
        wl("`GET /v1/imports/{id}` (the running import)", "2 threads, 16 connections", api["get"],
           goal_text(api["get"]["rps"], 10000, "%.0f/s"))
        wl("`GET /v1/imports?limit=50` (first page)", "1 connection", api["list"],
           goal_text(api["list"].get("p99"), 10, "%.2f ms", "<"))
        wl("`GET /v1/imports?limit=50&status=complete,processing&table=orders`", "1 connection",
           api["list_filtered"], "reported")
        wl("`GET /v1/imports?limit=50` (first page), no import running", "1 connection", api["list_idle"],
           goal_text(api["list_idle"].get("p99"), 10, "%.2f ms", "<"))
    elif api:
        L.append("")
        L.append("API under load: %s" % api)
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
