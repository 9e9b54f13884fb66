"""How long after its slot a scheduled SLM run starts its snapshot, with
one replica and with three replicas sharing one state store (fs): a
policy firing every 2 seconds (`*/2 * * * * ?`) runs for BENCH_SECS; each
run's snapshot start time minus its slot is the pick-up delay. Also checks
that no slot ran twice. Standard library only."""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from run import call, start_server  # noqa: E402  (bench/run.py)

EVERY_MS = 2000


def start(work, config_path):
    return start_server(work, "--config", config_path)


def deployment(root, n):
    for d in ("state", "data", "repos"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    config = os.path.join(root, "snapvault.toml")
    with open(config, "w") as f:
        f.write(
            f'heartbeat_secs = 1\nstate_dir = "{root}/state"\ndata_store = "{root}/data"\npath_repo = ["{root}/repos"]\n'
        )
    servers = []
    for i in range(n):
        work = os.path.join(root, f"r{i}")
        os.makedirs(work, exist_ok=True)
        if i > 0:
            shutil.copy(os.path.join(root, "r0", "keystore.json"), os.path.join(work, "keystore.json"))
        servers.append(start(work, config))
    return servers


def measure(n, secs):
    root = tempfile.mkdtemp(prefix="slm-bench-")
    servers = deployment(root, n)
    base = servers[0][1]
    try:
        call(base, "PUT", "/logs", {"settings": {"number_of_shards": 1}})
        docs = "".join(json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"n": i}) + "\n" for i in range(100))
        call(base, "POST", "/logs/_bulk", docs.encode(), "application/x-ndjson")
        call(base, "PUT", "/_snapshot/r", {"type": "fs", "settings": {"location": "r"}})
        call(base, "PUT", "/_cluster/settings", {"persistent": {"slm.minimum_interval": "0s"}})
        call(base, "PUT", "/_slm/policy/p", {"schedule": "*/2 * * * * ?", "name": "p", "repository": "r", "config": {"indices": "logs"}})
        time.sleep(secs)
        call(base, "POST", "/_slm/stop")
        time.sleep(3)
        snaps = call(base, "GET", "/_snapshot/r/_all?slm_policy_filter=p")["snapshots"]
        policy = call(base, "GET", "/_slm/policy/p")["p"]
    finally:
        for s, _ in servers:
            s.terminate()
            s.wait()
        shutil.rmtree(root, ignore_errors=True)
    starts = sorted(s["start_time_in_millis"] for s in snaps)
    delays = [t - (t // EVERY_MS) * EVERY_MS for t in starts]
    slots = {t // EVERY_MS for t in starts}
    return {
        "replicas": n,
        "runs": len(starts),
        "distinct_slots": len(slots),
        "skipped": policy["stats"]["snapshots_skipped"],
        "failed": policy["stats"]["snapshots_failed"],
        "delay_ms_median": statistics.median(delays) if delays else None,
        "delay_ms_p90": sorted(delays)[int(0.9 * (len(delays) - 1))] if delays else None,
        "delay_ms_max": max(delays) if delays else None,
    }


def main():
    secs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    for n in (1, 3):
        print(json.dumps(measure(n, secs)), flush=True)


if __name__ == "__main__":
    main()
