"""Listing and status on a large repository, over HTTP against a release
binary on 127.0.0.1: N snapshots of a tiny index are created as fast as the
API allows (wait_for_completion=true, BENCH_CLIENTS concurrent clients),
then each listing endpoint is timed (BENCH_REQUESTS sequential requests on
one keep-alive connection, after 3 warm-up requests, the first of which
is reported on its own): the whole answer read,
and for every endpoint the time to the first byte of the body. Afterwards
the files in the repository root, its other directories and the state
store are counted, and the server's resident memory is read. Standard
library only. Prints one JSON document."""

import http.client
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from run import AUTH, call, reset_peak, rss, start_server  # noqa: E402  (bench/run.py)

BIN = os.environ.get("BENCH_BIN", "target/release/snapvault")
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "100"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "2"))


def start(work):
    return start_server(work, binary=BIN)


def connect(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=3600)


def create_all(base, n):
    """Creates snap-0 .. snap-{n-1}; each client takes the next number."""
    lock = threading.Lock()
    next_i = [0]
    failures = []

    def work():
        conn = connect(base)
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n:
                return
            for attempt in range(20):
                conn.request(
                    "PUT",
                    f"/_snapshot/r/snap-{i}?wait_for_completion=true",
                    body=json.dumps({"indices": "logs", "include_global_state": False}),
                    headers={"content-type": "application/json", "authorization": AUTH},
                )
                r = conn.getresponse()
                body = r.read()
                if r.status == 200:
                    break
                time.sleep(0.05 * (attempt + 1))
            else:
                failures.append((i, r.status, body[:300]))
                return
            if i and i % 1000 == 0:
                print(f"  {i} snapshots, {i / (time.time() - t0):.0f}/s", file=sys.stderr, flush=True)

    t0 = time.time()
    threads = [threading.Thread(target=work) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"snapshot creation failed: {failures[:3]}")
    return time.time() - t0


def timed(conn, path):
    """One GET: (seconds to the first body byte, seconds to the whole body,
    body, whether it came chunked)."""
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"authorization": AUTH})
    r = conn.getresponse()
    first = r.read(1)
    t1 = time.perf_counter()
    body = first + r.read()
    t2 = time.perf_counter()
    if r.status != 200:
        raise SystemExit(f"GET {path}: {r.status} {body[:300]!r}")
    return t1 - t0, t2 - t0, body, r.getheader("transfer-encoding") == "chunked"


def pct(sorted_ms, p):
    return sorted_ms[max(0, math.ceil(p * len(sorted_ms)) - 1)]


def measure(base, path, check):
    conn = connect(base)
    # The first request after the start is the one that fills caches.
    _, first_ms, body, _ = timed(conn, path)
    for _ in range(2):
        _, _, body, _ = timed(conn, path)
    check(body)
    totals, firsts = [], []
    chunked = False
    for _ in range(REQUESTS):
        first, total, body, chunked = timed(conn, path)
        totals.append(total * 1000)
        firsts.append(first * 1000)
    conn.close()
    totals.sort()
    firsts.sort()
    return {
        "path": path,
        "requests": REQUESTS,
        "first_ms": round(first_ms * 1000, 2),
        "body_bytes": len(body),
        "chunked": chunked,
        "median_ms": round(statistics.median(totals), 2),
        "p99_ms": round(pct(totals, 0.99), 2),
        "max_ms": round(totals[-1], 2),
        "ttfb_median_ms": round(statistics.median(firsts), 2),
        "ttfb_p99_ms": round(pct(firsts, 0.99), 2),
    }


def count_files(path, recursive):
    if not os.path.isdir(path):
        return 0
    if not recursive:
        return sum(1 for e in os.scandir(path) if e.is_file())
    return sum(len(files) for _, _, files in os.walk(path))


def main():
    n = int(sys.argv[1])
    # BENCH_DATA_DIR keeps the deployment, and a later run on it (another
    # binary, say) skips the creation and times the same repository.
    kept = os.environ.get("BENCH_DATA_DIR")
    work = kept or tempfile.mkdtemp(prefix="snapvault-listing-")
    reuse = kept is not None and os.path.isdir(os.path.join(work, "repos", "r"))
    server, base = start(work)
    out = {"snapshots": n, "clients": CLIENTS, "binary": BIN}
    try:
        if not reuse:
            call(base, "PUT", "/logs", {"settings": {"number_of_shards": 1}})
            docs = "".join(json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"n": i}) + "\n" for i in range(10))
            call(base, "POST", "/logs/_bulk", docs.encode(), "application/x-ndjson")
            call(base, "PUT", "/_snapshot/r", {"type": "fs", "settings": {"location": "r"}})
            secs = create_all(base, n)
            out["create_secs"] = round(secs, 1)
            out["create_per_sec"] = round(n / secs, 1)
        repo = os.path.join(work, "repos", "r")
        state = os.path.join(work, "state")
        out["files"] = {
            "repository_root": count_files(repo, False),
            "repository_index_floor": count_files(os.path.join(repo, "index.floor"), True),
            "repository_keys": count_files(os.path.join(repo, "keys"), True),
            "repository_snapshots": count_files(os.path.join(repo, "snapshots"), True),
            "state_store": count_files(state, True),
        }
        one = f"snap-{min(1234, n - 1)}"
        # The peak below is the listings' alone, not the creations'.
        reset_peak(server.pid)

        def listed(body):
            got = json.loads(body)
            assert got["total"] == n and len(got["snapshots"]) == n, (got["total"], len(got["snapshots"]))

        def single(body):
            assert [s["snapshot"] for s in json.loads(body)["snapshots"]] == [one]

        def status(body):
            assert [s["snapshot"] for s in json.loads(body)["snapshots"]] == [one]

        def rows(body):
            assert body.decode().count("\n") == n, body[:200]

        def json_rows(body):
            assert len(json.loads(body)) == n

        out["endpoints"] = [
            measure(base, "/_snapshot/r/_all", listed),
            measure(base, "/_snapshot/r/_all?verbose=false", listed),
            measure(base, f"/_snapshot/r/{one}", single),
            measure(base, f"/_snapshot/r/{one}/_status", status),
            measure(base, "/_cat/snapshots/r", rows),
            measure(base, "/_cat/snapshots/r?format=json", json_rows),
        ]
        now, peak = rss(server.pid)
        out["rss_mib"] = round(now / 2**20, 1)
        out["peak_rss_during_listings_mib"] = round(peak / 2**20, 1)
    finally:
        server.terminate()
        server.wait()
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
