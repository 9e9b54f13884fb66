"""Requests per second of `GET /_snapshot/r/_all` (and of the cheap
`GET /_snapshot/r`, where the cost of authentication is not hidden behind
the listing's) with and without security, driven by wrk over loopback
against a release binary. Standard library only (and wrk)."""

import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from run import AUTH, call, start_server  # noqa: E402  (bench/run.py)

SNAPSHOTS = 50


def start(work, config):
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "snapvault.toml")
    with open(path, "w") as f:
        f.write(config)
    return start_server(work, "--config", path)


def seed(base):
    call(base, "PUT", "/logs", {"settings": {"number_of_shards": 1}})
    docs = "".join(json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"n": i}) + "\n" for i in range(100))
    call(base, "POST", "/logs/_bulk", docs.encode(), "application/x-ndjson")
    call(base, "PUT", "/_snapshot/r", {"type": "fs", "settings": {"location": "r"}})
    for i in range(SNAPSHOTS):
        call(base, "PUT", f"/_snapshot/r/s{i}?wait_for_completion=true", {"indices": "logs"})


PATHS = ["/_snapshot/r/_all", "/_snapshot/r"]


def wrk(base, path, secs, header=None):
    args = ["wrk", "-t1", "-c8", f"-d{secs}s", "--latency", f"{base}{path}"]
    if header:
        args[1:1] = ["-H", f"Authorization: {header}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def main():
    secs = int(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    work = tempfile.mkdtemp(prefix="snapvault-auth-")
    servers = []
    try:
        # Both deployments run side by side, so the runs of each mode can
        # alternate and a drift of the machine's speed hits all of them.
        open_server, open_base = start(os.path.join(work, "open"), "[security]\nenabled = false\n")
        servers.append(open_server)
        secure_server, base = start(os.path.join(work, "secure"), "[security]\nfree_failed_attempts = 1000000000\n")
        servers.append(secure_server)
        seed(open_base)
        seed(base)
        key = call(base, "POST", "/_security/api_key", {"name": "bench"})
        wrong = "Basic " + base64.b64encode(b"elastic:wrong-password").decode()
        modes = [
            ("security off", open_base, None),
            ("basic (cached)", base, AUTH),
            ("api key (cached)", base, "ApiKey " + key["encoded"]),
            ("wrong password (argon2id each)", base, wrong),
        ]
        runs = {}
        for _ in range(rounds):
            for path in PATHS:
                for mode, at, header in modes:
                    runs.setdefault((path, mode), []).append(wrk(at, path, secs, header))
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"repository r with {SNAPSHOTS} snapshots; wrk -t1 -c8 -d{secs}s, {rounds} alternating rounds, medians")
    print(f"{'GET':18} {'mode':32} {'req/s':>9} {'vs off':>7} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
    for (path, mode), rs in runs.items():
        off = runs[(path, "security off")]
        ratio = statistics.median(r["rps"] / o["rps"] for r, o in zip(rs, off))
        mid = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        print(f"{path:18} {mode:32} {mid['rps']:9.0f} {ratio:7.3f} {mid['p50']:>9} {mid['p99']:>9} {mid['non_2xx']:8}")


if __name__ == "__main__":
    main()
