"""Measures snapvault on a generated index: bulk load, snapshot, unchanged
re-snapshot, restore, with the server's peak RSS during each phase (Linux
`clear_refs` resets the high-water mark between phases). Standard library
only; talks HTTP to a release binary on 127.0.0.1."""

import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

MIB = 1024 * 1024
# `elastic`'s password in the benchmark deployments (ELASTIC_PASSWORD on
# their first start); every request signs in with it.
PASSWORD = "bench-password"
AUTH = "Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()


def call(base, method, path, body=None, ctype="application/json"):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": ctype, "authorization": AUTH})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read() or b"null")


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def start_server(work, *args, env=None, binary=None):
    """A release server on `work` (extra `serve` arguments in `args`), once
    it listens: the process and its base URL. The binary is `binary`, or
    BENCH_BINARY, or target/release/snapvault; `elastic`'s password is
    PASSWORD."""
    binary = binary or os.environ.get("BENCH_BINARY", "target/release/snapvault")
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", work, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(env if env is not None else os.environ, ELASTIC_PASSWORD=PASSWORD),
    )
    line = server.stdout.readline()
    while "listening on" not in line:
        if not line and server.poll() is not None:
            raise SystemExit(f"{binary} exited with {server.returncode} before listening")
        line = server.stdout.readline()
    return server, line.strip().rsplit(" ", 1)[-1]


def main():
    target = int(sys.argv[1]) * MIB
    work = tempfile.mkdtemp(prefix="snapvault-bench-")
    server, base = start_server(work)
    try:
        pid = server.pid
        results = {"index_bytes_target": target}

        call(base, "PUT", "/bench", {"settings": {"number_of_shards": 4}})
        rng = random.Random(42)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(5000)]
        loaded, doc_id, t0 = 0, 0, time.time()
        while loaded < target:
            lines = []
            batch = 0
            while batch < 8 * MIB:
                text = " ".join(rng.choice(words) for _ in range(600))
                src = json.dumps({"n": doc_id, "text": text, "rand": rng.getrandbits(64)})
                lines.append('{"index":{"_id":"%d"}}' % doc_id)
                lines.append(src)
                batch += len(src)
                doc_id += 1
            body = ("\n".join(lines) + "\n").encode()
            r = call(base, "POST", "/bench/_bulk", body, "application/x-ndjson")
            assert not r["errors"]
            loaded += batch
        results["docs"] = doc_id
        results["load_seconds"] = round(time.time() - t0, 1)
        results["index_bytes"] = dir_size(os.path.join(work, "data"))
        results["rss_after_load"] = rss(pid)[0]

        call(base, "PUT", "/_snapshot/bench", {"type": "fs", "settings": {"location": "bench"}})
        reset_peak(pid)
        t0 = time.time()
        snap = call(base, "PUT", "/_snapshot/bench/full?wait_for_completion=true", {"indices": "bench"})
        assert snap["snapshot"]["state"] == "SUCCESS", snap
        results["snapshot_seconds"] = round(time.time() - t0, 2)
        results["snapshot_peak_rss"] = rss(pid)[1]
        results["repository_bytes"] = dir_size(os.path.join(work, "repos", "bench"))

        t0 = time.time()
        call(base, "PUT", "/_snapshot/bench/again?wait_for_completion=true", {"indices": "bench"})
        results["unchanged_snapshot_seconds"] = round(time.time() - t0, 2)
        status = call(base, "GET", "/_snapshot/bench/again/_status")
        results["unchanged_snapshot_incremental_files"] = status["snapshots"][0]["stats"]["incremental"]["file_count"]

        call(base, "DELETE", "/bench")
        reset_peak(pid)
        t0 = time.time()
        call(base, "POST", "/_snapshot/bench/full/_restore?wait_for_completion=true", {})
        results["restore_seconds"] = round(time.time() - t0, 2)
        results["restore_peak_rss"] = rss(pid)[1]
        count = call(base, "GET", "/bench/_count")["count"]
        assert count == doc_id, (count, doc_id)

        mib = results["index_bytes"] / MIB
        results["snapshot_mib_per_s"] = round(mib / results["snapshot_seconds"], 1)
        results["restore_mib_per_s"] = round(mib / results["restore_seconds"], 1)
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
