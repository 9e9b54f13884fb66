"""snapvault against restic, borg and `cp` on the same bytes, side by side.

One release server on loopback, one index of generated log documents
(about 1 KiB of JSON each, random words, 2 shards) bulk-loaded over HTTP;
then, BENCH_RUNS times, each tool backs up the index's segment files into a
fresh repository on the same disk and restores them:

- snapvault: full snapshot into a new `fs` repository (encrypted,
  compressed), an unchanged re-snapshot, a restore under a new name;
- restic (Debian's 0.14: repository v2, zstd auto), `backup` and `restore`;
- borg (Debian's 1.2, `repokey-blake2`, `zstd,3`), `create` and `extract`;
- `cp -r` followed by `sync`.

Every timed step starts after a `sync`, on a warm page cache (the same for
every tool). Ratios are taken within a run, so the tools share the
machine's state of that moment; the table shows min-max over the runs.
Peak memory: the server's VmHWM (reset before each phase), the tools'
ru_maxrss. RSS of the server is also sampled every 50 ms during the first
run's snapshot and restore into `BENCH_OUT/memory.csv` for the plots.

The machine's free memory is touched once before anything runs (see
`warm_memory`; BENCH_WARM=0 skips it). Standard library only. Usage: bench/compare.sh (builds, installs the
tools, runs this)."""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import MIB, call, dir_size, reset_peak, start_server  # noqa: E402  (bench/run.py)
from run import rss as status  # noqa: E402

TOOL_PASSWORD = "bench-tool-password"


def file_count(path):
    return sum(len(files) for _, _, files in os.walk(path))


def rss_of(pid):
    """(program name, RSS bytes) of a live process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields["Name"].strip(), int(fields.get("VmRSS", "0 kB").split()[0]) * 1024


def timed(cmd, env=None, cwd=None):
    """Runs `cmd` after a sync; returns (seconds, peak RSS bytes). The peak
    is sampled every 20 ms from /proc once the program has replaced the
    forked Python (whose pages ru_maxrss would count)."""
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, name = 0, os.path.basename(cmd[0])[:15]
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            got = rss_of(p.pid)
            if got and got[0] == name:
                peak = max(peak, got[1])
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err = p.stderr.read().decode(errors="replace")
    code = p.wait()
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"{cmd[0]} failed ({code}): {err[-2000:]}")
    return elapsed, peak


class Sampler:
    """Samples a process's RSS every 50 ms while a phase runs."""

    def __init__(self, pid, phase, rows):
        self.pid, self.phase, self.rows = pid, phase, rows
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        t0 = time.perf_counter()
        while not self.stop.is_set():
            self.rows.append((self.phase, round(time.perf_counter() - t0, 3), status(self.pid)[0]))
            self.stop.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def warm_memory(leave_mib=2048):
    """Touches the machine's free memory once, then frees it. On a virtual
    machine whose host backs guest pages lazily, a page's first touch is
    slow (measured on the project's machine: 272 MiB written to the page
    cache in 1.33 s on fresh pages, 0.11 s on reused ones), and would be
    charged to whichever tool happens to run first."""
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    left = max(0, info["MemFree"] - leave_mib * MIB)
    t0 = time.perf_counter()
    blocks = []
    while left > 0:
        n = min(256 * MIB, left)
        b = bytearray(n)
        b[0:n:4096] = bytes(len(range(0, n, 4096)))
        blocks.append(b)
        left -= n
    del blocks
    return time.perf_counter() - t0


def messages(rng, count):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(5000)]
    return [" ".join(rng.choices(words, k=150)) for _ in range(count)]


def bodies(target, rng):
    """NDJSON `_bulk` bodies of about 8 MiB with ~1 KiB documents."""
    texts = messages(rng, 50000)
    levels = ["info", "warn", "error", "debug"]
    n, made = 0, 0
    while made < target:
        lines, size = [], 0
        while size < 8 * MIB and made + size < target:
            doc = json.dumps(
                {
                    "@timestamp": 1700000000000 + n * 37,
                    "level": levels[n % 4],
                    "host": f"web-{n % 97}",
                    "message": texts[rng.randrange(len(texts))],
                    "n": n,
                }
            )
            lines.append('{"index":{}}')
            lines.append(doc)
            size += len(doc) + 14
            n += 1
        body = ("\n".join(lines) + "\n").encode()
        made += size
        yield body, len(lines) // 2


def load(base, target):
    """Bulk-loads the index with two client threads; returns (docs, bytes, seconds)."""
    call(base, "PUT", "/logs", {"settings": {"number_of_shards": 2}})
    rng = random.Random(42)
    pending = list(bodies(target, rng))
    sent = sum(len(b) for b, _ in pending)
    docs = sum(d for _, d in pending)
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                body, _ = pending.pop()
            r = call(base, "POST", "/logs/_bulk", body, "application/x-ndjson")
            if r["errors"]:
                errors.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    assert not errors, errors[0]
    return docs, sent, seconds


def many_files(base, work, files):
    """An index of `files` segment files (one small `_bulk` request each,
    two client threads), snapshotted once, then again unchanged: the
    unchanged snapshot's time."""
    call(base, "PUT", "/many", {"settings": {"number_of_shards": 1}})
    left = list(range(files))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not left:
                    return
                n = left.pop()
            body = ('{"index":{}}\n' + json.dumps({"n": n, "message": f"file {n}"}) + "\n").encode()
            call(base, "POST", "/many/_bulk", body, "application/x-ndjson")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    uuid = [i for i in call(base, "GET", "/_cat/indices?format=json") if i["index"] == "many"][0]["uuid"]
    count = file_count(os.path.join(work, "data", "indices", uuid))
    call(base, "PUT", "/_snapshot/many", {"type": "fs", "settings": {"location": "many"}})
    t0 = time.perf_counter()
    call(base, "PUT", "/_snapshot/many/first?wait_for_completion=true", {"indices": "many"})
    first = time.perf_counter() - t0
    times = []
    for i in range(3):
        t0 = time.perf_counter()
        call(base, "PUT", f"/_snapshot/many/again-{i}?wait_for_completion=true", {"indices": "many"})
        times.append(time.perf_counter() - t0)
    row = {"files_in_index_dir": count, "first_snapshot_s": round(first, 2), "unchanged_snapshot_s": [round(t, 3) for t in times]}
    print(json.dumps({"many_files": row}), file=sys.stderr)
    call(base, "DELETE", "/many")
    return row


def scale(base, pid, work, steps, loaded):
    """Grows the index to each size of `steps` (MiB) and measures a full
    snapshot and a restore at each: throughput and peak RSS against index
    size."""
    out = []
    rng = random.Random(7)
    for step in steps:
        want = step * MIB
        if want > loaded:
            for body, _ in bodies(want - loaded, rng):
                r = call(base, "POST", "/logs/_bulk", body, "application/x-ndjson")
                assert not r["errors"]
            loaded = want
        uuid = [i for i in call(base, "GET", "/_cat/indices?format=json") if i["index"] == "logs"][0]["uuid"]
        size = dir_size(os.path.join(work, "data", "indices", uuid))
        repo = f"scale{step}"
        call(base, "PUT", f"/_snapshot/{repo}", {"type": "fs", "settings": {"location": repo}})
        os.sync()
        reset_peak(pid)
        t0 = time.perf_counter()
        call(base, "PUT", f"/_snapshot/{repo}/s?wait_for_completion=true", {"indices": "logs"})
        snap = time.perf_counter() - t0
        snap_rss = status(pid)[1]
        os.sync()
        reset_peak(pid)
        t0 = time.perf_counter()
        call(base, "POST", f"/_snapshot/{repo}/s/_restore?wait_for_completion=true", {"indices": "logs", "rename_pattern": "logs", "rename_replacement": "restored"})
        restore = time.perf_counter() - t0
        restore_rss = status(pid)[1]
        call(base, "DELETE", "/restored")
        call(base, "DELETE", f"/_snapshot/{repo}/s")
        call(base, "DELETE", f"/_snapshot/{repo}")
        shutil.rmtree(os.path.join(work, "repos", repo), ignore_errors=True)
        row = {
            "index_mib": round(size / MIB, 1),
            "snapshot_mib_s": round(size / MIB / snap, 1),
            "restore_mib_s": round(size / MIB / restore, 1),
            "snapshot_peak_rss_mib": round(snap_rss / MIB, 1),
            "restore_peak_rss_mib": round(restore_rss / MIB, 1),
            "rss_mib": round(status(pid)[0] / MIB, 1),
        }
        print(json.dumps({"scale": row}), file=sys.stderr)
        out.append(row)
    return out


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi, med = min(values), max(values), statistics.median(values)
    fmt = (lambda v: f"{v:.2f}") if max(abs(v) for v in values) < 100 else (lambda v: f"{v:.0f}")
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(lo)}-{fmt(hi)})"


def main():
    target = int(os.environ.get("BENCH_MIB", "1024")) * MIB
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    out_dir = os.environ.get("BENCH_OUT", "bench/out")
    os.makedirs(out_dir, exist_ok=True)
    primitives = json.loads(os.environ.get("BENCH_PRIMITIVES", "{}") or "{}")
    cores = os.cpu_count() or 1
    results_warm = warm_memory() if os.environ.get("BENCH_WARM", "1") == "1" else None
    work = tempfile.mkdtemp(prefix="snapvault-compare-", dir=os.environ.get("BENCH_DIR"))
    server, base = start_server(work)
    memory_rows = []
    results = {"runs": [], "cores": cores, "primitives": primitives, "warm_memory_s": results_warm}
    try:
        pid = server.pid
        reset_peak(pid)
        docs, sent, seconds = load(base, target)
        results.update(docs=docs, bulk_bytes=sent, bulk_seconds=round(seconds, 2), bulk_mib_s=round(sent / MIB / seconds, 1))
        results["rss_after_load"], results["load_peak_rss"] = status(pid)
        uuid = [i for i in call(base, "GET", "/_cat/indices?format=json") if i["index"] == "logs"][0]["uuid"]
        src = os.path.join(work, "data", "indices", uuid)
        files_bytes = dir_size(src)
        results["index_bytes"] = files_bytes
        results["index_files"] = file_count(src)
        mib = files_bytes / MIB
        tool_env = dict(os.environ, RESTIC_PASSWORD=TOOL_PASSWORD, BORG_PASSPHRASE=TOOL_PASSWORD, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        for run in range(runs):
            r = {}
            repo = f"sv{run}"
            call(base, "PUT", f"/_snapshot/{repo}", {"type": "fs", "settings": {"location": repo}})
            os.sync()
            reset_peak(pid)
            with Sampler(pid, f"snapshot-{run}", memory_rows):
                t0 = time.perf_counter()
                snap = call(base, "PUT", f"/_snapshot/{repo}/full?wait_for_completion=true", {"indices": "logs"})
                r["snapvault_snapshot_s"] = time.perf_counter() - t0
            assert snap["snapshot"]["state"] == "SUCCESS", snap
            r["snapvault_snapshot_peak_rss"] = status(pid)[1]
            r["snapvault_repo_bytes"] = dir_size(os.path.join(work, "repos", repo))
            os.sync()
            t0 = time.perf_counter()
            call(base, "PUT", f"/_snapshot/{repo}/again?wait_for_completion=true", {"indices": "logs"})
            r["snapvault_nochange_s"] = time.perf_counter() - t0
            os.sync()
            reset_peak(pid)
            with Sampler(pid, f"restore-{run}", memory_rows):
                t0 = time.perf_counter()
                call(base, "POST", f"/_snapshot/{repo}/full/_restore?wait_for_completion=true", {"indices": "logs", "rename_pattern": "logs", "rename_replacement": "restored"})
                r["snapvault_restore_s"] = time.perf_counter() - t0
            r["snapvault_restore_peak_rss"] = status(pid)[1]
            count = call(base, "GET", "/restored/_count")["count"]
            assert count == docs, (count, docs)
            call(base, "DELETE", "/restored")
            call(base, "DELETE", f"/_snapshot/{repo}/full,again")
            call(base, "DELETE", f"/_snapshot/{repo}")
            shutil.rmtree(os.path.join(work, "repos", repo), ignore_errors=True)

            tools = os.path.join(work, "tools")
            os.makedirs(tools, exist_ok=True)
            restic_repo = os.path.join(tools, "restic")
            subprocess.run(["restic", "init", "--repo", restic_repo], env=tool_env, check=True, capture_output=True)
            r["restic_backup_s"], r["restic_backup_rss"] = timed(["restic", "--repo", restic_repo, "backup", "--no-cache", src], tool_env)
            r["restic_repo_bytes"] = dir_size(restic_repo)
            dst = os.path.join(tools, "restic-out")
            r["restic_restore_s"], r["restic_restore_rss"] = timed(["restic", "--repo", restic_repo, "--no-cache", "restore", "latest", "--target", dst], tool_env)
            assert dir_size(dst) == files_bytes
            shutil.rmtree(restic_repo)
            shutil.rmtree(dst)

            borg_repo = os.path.join(tools, "borg")
            subprocess.run(["borg", "init", "-e", "repokey-blake2", borg_repo], env=tool_env, check=True, capture_output=True)
            r["borg_create_s"], r["borg_create_rss"] = timed(["borg", "create", "-C", "zstd,3", f"{borg_repo}::a", src], tool_env)
            r["borg_repo_bytes"] = dir_size(borg_repo)
            dst = os.path.join(tools, "borg-out")
            os.makedirs(dst)
            r["borg_extract_s"], r["borg_extract_rss"] = timed(["borg", "extract", f"{borg_repo}::a"], tool_env, cwd=dst)
            assert dir_size(dst) == files_bytes
            shutil.rmtree(borg_repo)
            shutil.rmtree(dst)

            dst = os.path.join(tools, "cp-out")
            r["cp_sync_s"], _ = timed(["sh", "-c", f"cp -r '{src}' '{dst}' && sync"])
            shutil.rmtree(dst)

            for k in ("snapvault_snapshot", "snapvault_restore", "restic_backup", "restic_restore", "borg_create", "borg_extract", "cp_sync"):
                r[k + "_mib_s"] = mib / r[k + "_s"]
            results["runs"].append(r)
            print(json.dumps({"run": run, **{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}}), file=sys.stderr)
        files = int(os.environ.get("BENCH_MANY_FILES", "10000"))
        if files:
            results["many_files"] = many_files(base, work, files)
        # Sizes for the curve: the loaded size, then twice and three times it.
        default = ",".join(str(target // MIB * k) for k in (1, 2, 3))
        steps = [int(x) for x in os.environ.get("BENCH_SCALE_MIB", default).split(",") if x.strip()]
        results["scale"] = scale(base, pid, work, steps, target)
    finally:
        server.terminate()
        server.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)

    with open(os.path.join(out_dir, "memory.csv"), "w") as f:
        f.write("phase,seconds,rss_bytes\n")
        for phase, t, rss in memory_rows:
            f.write(f"{phase},{t},{rss}\n")
    rs = results["runs"]
    limit = primitives.get("snapshot_path_zstd1_mb_s_per_core")
    ratio = lambda a, b: [x[a] / x[b] for x in rs]
    rows = [
        ("full snapshot speed / restic backup speed", spread(ratio("snapvault_snapshot_mib_s", "restic_backup_mib_s")), "≥ 3"),
        ("full snapshot speed / borg create speed", spread(ratio("snapvault_snapshot_mib_s", "borg_create_mib_s")), "≥ 3"),
        (
            "full snapshot throughput / CPU limit of the machine",
            spread([x["snapvault_snapshot_mib_s"] * MIB / 1e6 / (limit * cores) for x in rs]) if limit else "-",
            "≥ 0.5",
        ),
        ("restore speed / `cp -r` + `sync`", spread(ratio("snapvault_restore_mib_s", "cp_sync_mib_s")), "≥ 0.9"),
        ("restore speed / restic restore", spread(ratio("snapvault_restore_mib_s", "restic_restore_mib_s")), "≥ 2"),
        ("server peak RSS, snapshot / restore (MiB)", f"{spread([x['snapvault_snapshot_peak_rss'] / MIB for x in rs])} / {spread([x['snapvault_restore_peak_rss'] / MIB for x in rs])}", "≤ 128"),
        ("no-change snapshot (s), this index", spread([x["snapvault_nochange_s"] for x in rs]), "< 0.5"),
        (
            f"no-change snapshot (s), {results['many_files']['files_in_index_dir']} segment files" if results.get("many_files") else "no-change snapshot, many files",
            spread(results["many_files"]["unchanged_snapshot_s"]) if results.get("many_files") else "-",
            "< 0.5 at 10 000",
        ),
        ("bulk indexing over HTTP (MiB/s)", f"{results['bulk_mib_s']}", "≥ 100"),
    ]
    lines = [
        f"{mib:.0f} MiB of segment files ({results['index_files']} files, {docs} documents), {runs} runs, {cores} cores; median (min-max)."
        f" Server RSS after the bulk load {results['rss_after_load'] / MIB:.0f} MiB (peak during the load {results['load_peak_rss'] / MIB:.0f} MiB).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
    ] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [
        "",
        "| tool | backup MiB/s | restore MiB/s | repository MiB | peak RSS backup / restore MiB |",
        "|---|---|---|---|---|",
        f"| snapvault | {spread([x['snapvault_snapshot_mib_s'] for x in rs])} | {spread([x['snapvault_restore_mib_s'] for x in rs])} | {spread([x['snapvault_repo_bytes'] / MIB for x in rs])} | {spread([x['snapvault_snapshot_peak_rss'] / MIB for x in rs])} / {spread([x['snapvault_restore_peak_rss'] / MIB for x in rs])} |",
        f"| restic | {spread([x['restic_backup_mib_s'] for x in rs])} | {spread([x['restic_restore_mib_s'] for x in rs])} | {spread([x['restic_repo_bytes'] / MIB for x in rs])} | {spread([x['restic_backup_rss'] / MIB for x in rs])} / {spread([x['restic_restore_rss'] / MIB for x in rs])} |",
        f"| borg | {spread([x['borg_create_mib_s'] for x in rs])} | {spread([x['borg_extract_mib_s'] for x in rs])} | {spread([x['borg_repo_bytes'] / MIB for x in rs])} | {spread([x['borg_create_rss'] / MIB for x in rs])} / {spread([x['borg_extract_rss'] / MIB for x in rs])} |",
        f"| `cp -r` + `sync` | - | {spread([x['cp_sync_mib_s'] for x in rs])} | - | - |",
    ]
    if limit:
        lines.append("")
        lines.append(f"CPU limit: {limit:.0f} MB/s per core for the snapshot path (FastCDC, HMAC-SHA256, zstd 1, AES-256-GCM-SIV; `cargo bench --bench primitives`), {limit * cores:.0f} MB/s on {cores} cores.")
    if results["scale"]:
        lines += [
            "",
            "Index size against throughput and memory (snapvault alone, one run per size):",
            "",
            "| index MiB | snapshot MiB/s | restore MiB/s | peak RSS snapshot / restore MiB | RSS after MiB |",
            "|---|---|---|---|---|",
        ] + [
            f"| {x['index_mib']} | {x['snapshot_mib_s']} | {x['restore_mib_s']} | {x['snapshot_peak_rss_mib']} / {x['restore_peak_rss_mib']} | {x['rss_mib']} |"
            for x in results["scale"]
        ]
    table = "\n".join(lines)
    with open(os.path.join(out_dir, "compare.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out_dir, "compare.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
