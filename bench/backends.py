"""Snapshot and restore throughput of one generated index into a repository
on each backend: fs on the local disk, S3 on moto, Azure Blob on Azurite,
GCS on gcp-storage-emulator (with `conditional_writes: emulated`). The
emulators are single-process Python or Node servers on loopback, so the
figures measure snapvault plus the emulator, not a cloud service. Also runs
a small `_analyze` on each and reports its throughput and register time."""

import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid

from run import MIB, PASSWORD, call, dir_size, start_server  # noqa: E402  (bench/run.py)

AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def make_buckets(name):
    s3 = os.environ["SNAPVAULT_TEST_S3_ENDPOINT"]
    urllib.request.urlopen(urllib.request.Request(f"{s3}/{name}", method="PUT")).read()
    gcs = os.environ["SNAPVAULT_TEST_GCS_ENDPOINT"]
    req = urllib.request.Request(
        f"{gcs}/storage/v1/b?project=bench",
        data=json.dumps({"name": name}).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(req).read()
    from azure.storage.blob import BlobServiceClient

    az = os.environ["SNAPVAULT_TEST_AZURE_ENDPOINT"] + "/" + AZ_ACCOUNT
    conn = f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};BlobEndpoint={az};"
    BlobServiceClient.from_connection_string(conn).create_container(name)
    return az


def s3_ceiling(bucket, total, size=256 * 1024, workers=8):
    """The emulator's own ceiling: plain unsigned PUTs then GETs of
    `total` bytes as `size`-byte objects straight to moto, `workers` at a
    time (what snapvault's chunk uploads look like, without snapvault)."""
    import concurrent.futures
    import http.client
    from urllib.parse import urlparse

    url = urlparse(os.environ["SNAPVAULT_TEST_S3_ENDPOINT"])
    body = os.urandom(size)
    count = max(1, total // size)

    def one(i, method):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        conn.request(method, f"/{bucket}/ceiling/{i}", body=body if method == "PUT" else None)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        conn.close()

    out = {}
    for method in ("PUT", "GET"):
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: one(i, method), range(count)))
        out[method] = round(count * size / MIB / (time.time() - t0), 1)
    return out


def main():
    target = int(sys.argv[1]) * MIB
    work = tempfile.mkdtemp(prefix="snapvault-bench-")
    name = "bench-" + uuid.uuid4().hex[:12]
    az = make_buckets(name)
    env = dict(os.environ)
    env.update(
        {
            "SNAPVAULT_S3_DEFAULT_ACCESS_KEY": "bench",
            "SNAPVAULT_S3_DEFAULT_SECRET_KEY": "bench",
            "SNAPVAULT_AZURE_DEFAULT_ACCOUNT": AZ_ACCOUNT,
            "SNAPVAULT_AZURE_DEFAULT_KEY": AZ_KEY,
            "ELASTIC_PASSWORD": PASSWORD,
        }
    )
    # Endpoints are the operator's client settings, not repository settings.
    config = os.path.join(work, "snapvault.toml")
    with open(config, "w") as f:
        f.write(
            f'[s3.client.default]\nendpoint = "{os.environ["SNAPVAULT_TEST_S3_ENDPOINT"]}"\npath_style_access = true\n'
            f'[azure.client.default]\nendpoint = "{az}"\n'
            f'[gcs.client.default]\nendpoint = "{os.environ["SNAPVAULT_TEST_GCS_ENDPOINT"]}"\n'
        )
    server, base = start_server(work, "--config", config, env=env)
    try:
        call(base, "PUT", "/bench", {"settings": {"number_of_shards": 2}})
        rng = random.Random(7)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(5000)]
        loaded, doc_id = 0, 0
        while loaded < target:
            lines, batch = [], 0
            while batch < 8 * MIB:
                src = json.dumps({"n": doc_id, "text": " ".join(rng.choice(words) for _ in range(600)), "rand": rng.getrandbits(64)})
                lines.append('{"index":{"_id":"%d"}}' % doc_id)
                lines.append(src)
                batch += len(src)
                doc_id += 1
            r = call(base, "POST", "/bench/_bulk", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
            assert not r["errors"]
            loaded += batch
        mib = dir_size(os.path.join(work, "data")) / MIB
        repos = {
            "fs": {"type": "fs", "settings": {"location": "bench"}},
            "s3 (moto 5)": {"type": "s3", "settings": {"bucket": name}},
            "azure (Azurite 3)": {"type": "azure", "settings": {"container": name}},
            "gcs (gcp-storage-emulator, emulated)": {"type": "gcs", "settings": {"bucket": name, "conditional_writes": "emulated"}},
        }
        rows = []
        for i, (label, body) in enumerate(repos.items()):
            repo = f"r{i}"
            call(base, "PUT", f"/_snapshot/{repo}", body)
            t0 = time.time()
            snap = call(base, "PUT", f"/_snapshot/{repo}/s?wait_for_completion=true", {"indices": "bench"})
            assert snap["snapshot"]["state"] == "SUCCESS", snap
            snap_s = time.time() - t0
            t0 = time.time()
            call(base, "POST", f"/_snapshot/{repo}/s/_restore?wait_for_completion=true",
                 {"rename_pattern": "bench", "rename_replacement": f"restored-{i}"})
            restore_s = time.time() - t0
            assert call(base, "GET", f"/restored-{i}/_count")["count"] == doc_id
            call(base, "DELETE", f"/restored-{i}")
            a = call(base, "POST", f"/_snapshot/{repo}/_analyze?blob_count=50&max_blob_size=1mb&concurrency=8&register_operation_count=50&seed=1&timeout=10m")
            rows.append({
                "backend": label,
                "index_mib": round(mib, 1),
                "snapshot_s": round(snap_s, 2),
                "snapshot_mib_s": round(mib / snap_s, 1),
                "restore_s": round(restore_s, 2),
                "restore_mib_s": round(mib / restore_s, 1),
                "analyze_write_mib_s": round(a["summary"]["write"]["throughput_bytes_per_sec"] / MIB, 1),
                "analyze_read_mib_s": round(a["summary"]["read"]["throughput_bytes_per_sec"] / MIB, 1),
                "register_50_ops_ms": round(a["summary"]["register"]["elapsed_nanos"] / 1e6),
                "issues": a["issues_detected"],
            })
            print(json.dumps(rows[-1]), flush=True)
        fs = rows[0]
        for row in rows[1:]:
            row["snapshot_vs_fs"] = round(row["snapshot_mib_s"] / fs["snapshot_mib_s"], 2)
            row["restore_vs_fs"] = round(row["restore_mib_s"] / fs["restore_mib_s"], 2)
        ceiling = s3_ceiling(name, int(mib * MIB / 2))
        print(json.dumps({"s3_emulator_ceiling_mib_s": ceiling, "s3_vs_fs": {k: rows[1][k] for k in ("snapshot_vs_fs", "restore_vs_fs")}}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
