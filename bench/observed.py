#!/usr/bin/env python3
"""What watching an import costs: the same 1M-row CSV loaded by a fresh release server,
unobserved, then with a Server-Sent Events client and a 20 Hz poller attached. Prints a
table of wall seconds (median of --runs), rows/s, and the ratio.

    python3 bench/observed.py                 # builds the release binary, 1M rows, 3 runs
    python3 bench/observed.py --rows 200000 --runs 5

Needs Python 3 and cargo; the data comes from ../shared/bench/gen.py (the reference generator).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEY = "intake_bench_owner_key_000000000000"
SCHEMA = {
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


def request(api, method, path, body=None, content_type="application/json"):
    req = urllib.request.Request(api + path, data=body, method=method,
                                 headers={"Authorization": "Bearer " + KEY, "Content-Type": content_type})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def one_run(api, table, data, observe):
    request(api, "POST", "/v1/tables", json.dumps(dict(SCHEMA, name=table)).encode())
    started = time.time()
    imp = request(api, "POST", "/v1/imports?table=" + table, data, "text/csv")
    stop = threading.Event()
    watchers = []
    if observe:
        def stream():
            req = urllib.request.Request(api + "/v1/imports/%s/stream" % imp["id"],
                                         headers={"Authorization": "Bearer " + KEY})
            with urllib.request.urlopen(req) as resp:
                for _ in resp:
                    pass

        def poll():
            while not stop.is_set():
                request(api, "GET", "/v1/imports/" + imp["id"])
                time.sleep(0.05)

        watchers = [threading.Thread(target=stream), threading.Thread(target=poll)]
        for w in watchers:
            w.start()
    while True:
        state = request(api, "GET", "/v1/imports/" + imp["id"])
        if state["status"] in ("complete", "partially_complete", "failed"):
            break
        time.sleep(0.02)
    took = time.time() - started
    stop.set()
    for w in watchers:
        w.join()
    if state["status"] != "complete":
        sys.exit("import ended %s: %s" % (state["status"], state.get("error")))
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--port", type=int, default=18931)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "intake")
    work = tempfile.mkdtemp(prefix="intake-bench-")
    try:
        csv_path = os.path.join(work, "orders.csv")
        subprocess.run([sys.executable, os.path.join(ROOT, "..", "shared", "bench", "gen.py"),
                        "--rows", str(args.rows), "--no-manifest", "--out", csv_path], check=True)
        data = open(csv_path, "rb").read()
        api = "http://127.0.0.1:%d" % args.port
        server = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:%d" % args.port,
                                   "--data-dir", os.path.join(work, "data")],
                                  env=dict(os.environ, INTAKE_BOOTSTRAP_KEY=KEY),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(api + "/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            times = {False: [], True: []}
            n = 0
            for _ in range(args.runs):
                for observe in (False, True):
                    n += 1
                    times[observe].append(one_run(api, "t%d" % n, data, observe))
        finally:
            server.terminate()
            server.wait()
        plain, watched = statistics.median(times[False]), statistics.median(times[True])
        print("%d rows, %.1f MB, median of %d runs, %d cores" % (args.rows, len(data) / 1e6, args.runs, os.cpu_count()))
        print("| run | seconds | rows/s | ratio to unobserved |")
        print("|---|---|---|---|")
        print("| unobserved | %.2f | %.0f | 1.00 |" % (plain, args.rows / plain))
        print("| SSE client + 20 Hz poller | %.2f | %.0f | %.2f |" % (watched, args.rows / watched, plain / watched))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
