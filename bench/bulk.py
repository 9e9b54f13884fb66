"""Measures `_bulk` over HTTP on a release binary: ~1 KiB JSON log
documents (random words) into a 2-shard index, bodies of BENCH_BODY_MIB
(default 8) MiB generated in memory before the clock starts and sent over
BENCH_CONNECTIONS (default 4) keep-alive connections, so the client is not
what is measured (BENCH_BINARY names another binary to measure). Reports MiB/s of NDJSON sent, documents per second, the
server's peak RSS (VmHWM) during the load and its RSS after it, then checks
the count, one document and a search page; with BENCH_UPDATE=1 sends every
body again (all overwrites); then restarts the server on the same data
(the document maps are rebuilt from the segments) and checks again.
Standard library only."""

import http.client
import json
import os
import queue
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import AUTH, MIB, call, rss, start_server  # noqa: E402  (bench/run.py)


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bodies(total, body_bytes, auto_ids):
    """NDJSON bodies of about `body_bytes` each, `total` bytes in all, and
    the number of documents. Texts come from a pool of random-word
    messages, so generating a GiB takes seconds, not minutes."""
    rng = random.Random(42)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(5000)]
    texts = [" ".join(rng.choice(words) for _ in range(140)) for _ in range(4096)]
    services = ["api", "auth", "billing", "search", "ingest", "web"]
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    out, n, sent = [], 0, 0
    while sent < total:
        parts, size = [], 0
        while size < body_bytes:
            src = json.dumps({
                "@timestamp": "2026-12-01T%02d:%02d:%02d.%03dZ" % (n // 3600000 % 24, n // 60000 % 60, n // 1000 % 60, n % 1000),
                "level": levels[n % 4],
                "service": services[n % 6],
                "host": "node-%03d" % (n % 97),
                "trace": "%016x" % rng.getrandbits(64),
                "message": texts[rng.randrange(len(texts))],
                "n": n,
            })
            action = '{"index":{}}' if auto_ids else '{"index":{"_id":"doc-%d"}}' % n
            parts.append(action)
            parts.append(src)
            size += len(action) + len(src) + 2
            n += 1
        body = ("\n".join(parts) + "\n").encode()
        out.append(body)
        sent += len(body)
    return out, n


def load(host, port, work, connections):
    """Sends every body of `work` over `connections` connections; returns
    the failures seen (none expected)."""
    failures = []

    def run():
        conn = http.client.HTTPConnection(host, port, timeout=3600)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", "/bench/_bulk", body, {"content-type": "application/x-ndjson", "authorization": AUTH})
            r = conn.getresponse()
            answer = r.read()
            # Only the head: parsing every item's answer would make the
            # client the bottleneck; `errors` comes second.
            if r.status != 200 or b'"errors":false' not in answer[:64]:
                failures.append((r.status, answer[:300]))
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def main():
    target = int(sys.argv[1]) * MIB
    body_bytes = int(float(os.environ.get("BENCH_BODY_MIB", "8")) * MIB)
    connections = int(os.environ.get("BENCH_CONNECTIONS", "4"))
    auto_ids = os.environ.get("BENCH_IDS", "client") == "auto"
    t0 = time.time()
    all_bodies, docs = bodies(target, body_bytes, auto_ids)
    sent = sum(len(b) for b in all_bodies)
    results = {
        "ndjson_bytes": sent,
        "docs": docs,
        "body_mib": round(body_bytes / MIB, 1),
        "connections": connections,
        "ids": "auto" if auto_ids else "client",
        "generate_seconds": round(time.time() - t0, 1),
    }
    work = tempfile.mkdtemp(prefix="snapvault-bulk-bench-")
    server, base, host, port = start(work)
    try:
        pid = server.pid
        call(base, "PUT", "/bench", {"settings": {"number_of_shards": 2}})
        results["rss_before_load"] = rss(pid)[0]
        t0, cpu0, own0 = time.time(), cpu_seconds(pid), time.process_time()
        failures = load(host, port, queued(all_bodies), connections)
        seconds = time.time() - t0
        results["server_cpu_seconds"] = round(cpu_seconds(pid) - cpu0, 2)
        results["client_cpu_seconds"] = round(time.process_time() - own0, 2)
        assert not failures, failures[:3]
        results["load_seconds"] = round(seconds, 2)
        results["mib_per_s"] = round(sent / MIB / seconds, 1)
        results["docs_per_s"] = round(docs / seconds)
        now, peak = rss(pid)
        results["peak_rss_mib"] = round(peak / MIB, 1)
        results["rss_after_load_mib"] = round(now / MIB, 1)
        t0 = time.time()
        check(base, docs, auto_ids)
        results["check_seconds"] = round(time.time() - t0, 2)
        results["rss_after_reads_mib"] = round(rss(pid)[0] / MIB, 1)
        if os.environ.get("BENCH_UPDATE") == "1" and not auto_ids:
            # The same bodies again: every item overwrites a document, so
            # every id is looked up on disk.
            t0, cpu0 = time.time(), cpu_seconds(pid)
            failures = load(host, port, queued(all_bodies), connections)
            seconds = time.time() - t0
            assert not failures, failures[:3]
            results["update_mib_per_s"] = round(sent / MIB / seconds, 1)
            results["update_server_cpu_seconds"] = round(cpu_seconds(pid) - cpu0, 2)
            results["peak_rss_after_update_mib"] = round(rss(pid)[1] / MIB, 1)
            check(base, docs, auto_ids)
        # A restart rebuilds every shard's map from its segments.
        server.terminate()
        server.wait(timeout=120)
        t0 = time.time()
        server, base, host, port = start(work)
        results["restart_seconds"] = round(time.time() - t0, 2)
        check(base, docs, auto_ids)
        now, peak = rss(server.pid)
        results["rss_after_restart_mib"] = round(now / MIB, 1)
        results["peak_rss_restart_mib"] = round(peak / MIB, 1)
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)


def start(work):
    """A server on `work`, once it listens: the process, its base URL,
    host and port."""
    server, base = start_server(work)
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    return server, base, host, int(port)


def queued(all_bodies):
    q = queue.Queue()
    for b in all_bodies:
        q.put(b)
    return q


def check(base, docs, auto_ids):
    """The count, a search page and (with client ids) one document."""
    count = call(base, "GET", "/bench/_count")["count"]
    assert count == docs, (count, docs)
    page = call(base, "POST", "/bench/_search", {"from": 1000, "size": 10})
    assert len(page["hits"]["hits"]) == 10 and page["hits"]["total"]["value"] == docs, page["hits"]["total"]
    if not auto_ids:
        doc = call(base, "GET", "/bench/_doc/doc-%d" % (docs // 2))
        assert doc["_source"]["n"] == docs // 2, doc


if __name__ == "__main__":
    main()
