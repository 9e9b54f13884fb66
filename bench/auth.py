"""Requests per second of `GET /_snapshot/r/_all` with and without
security, driven by wrk over loopback against a release binary. Standard
library only (and wrk)."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from run import AUTH, PASSWORD, call  # noqa: E402  (bench/run.py)

SNAPSHOTS = 50


def start(work, config):
    path = os.path.join(work, "snapvault.toml")
    with open(path, "w") as f:
        f.write(config)
    server = subprocess.Popen(
        ["target/release/snapvault", "serve", "--listen", "127.0.0.1:0", "--data-dir", work, "--config", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, ELASTIC_PASSWORD=PASSWORD),
    )
    line = server.stdout.readline()
    while "listening on" not in line:
        line = server.stdout.readline()
    return server, line.strip().rsplit(" ", 1)[-1]


def seed(base):
    call(base, "PUT", "/logs", {"settings": {"number_of_shards": 1}})
    docs = "".join(json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"n": i}) + "\n" for i in range(100))
    call(base, "POST", "/logs/_bulk", docs.encode(), "application/x-ndjson")
    call(base, "PUT", "/_snapshot/r", {"type": "fs", "settings": {"location": "r"}})
    for i in range(SNAPSHOTS):
        call(base, "PUT", f"/_snapshot/r/s{i}?wait_for_completion=true", {"indices": "logs"})


def wrk(base, secs, header=None):
    args = ["wrk", "-t1", "-c8", f"-d{secs}s", "--latency", f"{base}/_snapshot/r/_all"]
    if header:
        args[1:1] = ["-H", f"Authorization: {header}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def main():
    secs = int(sys.argv[1])
    results = {}
    work = tempfile.mkdtemp(prefix="snapvault-auth-")
    try:
        # 1. Security off (a loopback demo).
        server, base = start(os.path.join(work, "open"), "[security]\nenabled = false\n")
        try:
            seed(base)
            results["security off"] = wrk(base, secs)
        finally:
            server.terminate()
            server.wait()
        # 2. Security on: basic, API key, and a wrong password every time.
        server, base = start(os.path.join(work, "secure"), "[security]\nfree_failed_attempts = 1000000000\n")
        try:
            seed(base)
            key = call(base, "POST", "/_security/api_key", {"name": "bench"})
            results["basic (cached)"] = wrk(base, secs, AUTH)
            results["api key (cached)"] = wrk(base, secs, "ApiKey " + key["encoded"])
            wrong = "Basic " + base64.b64encode(b"elastic:wrong-password").decode()
            results["wrong password (argon2id each)"] = wrk(base, secs, wrong)
        finally:
            server.terminate()
            server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    off = results["security off"]["rps"]
    print(f"GET /_snapshot/r/_all, {SNAPSHOTS} snapshots, wrk -t1 -c8 -d{secs}s")
    print(f"{'mode':34} {'req/s':>9} {'vs off':>7} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
    for mode, r in results.items():
        print(f"{mode:34} {r['rps']:9.0f} {r['rps'] / off:7.3f} {r['p50']:>9} {r['p99']:>9} {r['non_2xx']:8}")


if __name__ == "__main__":
    main()
