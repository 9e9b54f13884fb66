"""Plots of bench/compare.py's output: server RSS over time during the
first run's snapshot and restore (memory.csv), and snapshot and restore
throughput and peak RSS against index size (compare.json's scale rows).

Usage: python bench/plot.py OUT_DIR DEST_DIR (matplotlib; bench/compare.sh
installs it in a virtual environment under target/)."""

import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIB = 1024 * 1024


def memory(out, dest):
    series = {}
    with open(os.path.join(out, "memory.csv")) as f:
        for row in csv.DictReader(f):
            if row["phase"].endswith("-0"):
                series.setdefault(row["phase"][:-2], []).append((float(row["seconds"]), int(row["rss_bytes"]) / MIB))
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    for phase, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=phase)
    ax.axhline(128, color="grey", linestyle="--", linewidth=1, label="goal: 128 MiB")
    ax.set_xlabel("seconds since the request")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("snapvault memory during a full snapshot and a restore")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(dest, "memory.png"))


def throughput(out, dest):
    with open(os.path.join(out, "compare.json")) as f:
        rows = json.load(f).get("scale") or []
    if not rows:
        return
    x = [r["index_mib"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    ax.plot(x, [r["snapshot_mib_s"] for r in rows], marker="o", label="full snapshot MiB/s")
    ax.plot(x, [r["restore_mib_s"] for r in rows], marker="o", label="restore MiB/s")
    ax.set_xlabel("index size (MiB of segment files)")
    ax.set_ylabel("MiB/s")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(x, [max(r["snapshot_peak_rss_mib"], r["restore_peak_rss_mib"]) for r in rows], color="grey", linestyle=":", marker="s", label="peak RSS MiB")
    ax2.set_ylabel("peak RSS (MiB)")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right")
    ax.set_title("snapvault throughput and memory against index size")
    fig.tight_layout()
    fig.savefig(os.path.join(dest, "throughput.png"))


if __name__ == "__main__":
    out, dest = sys.argv[1], sys.argv[2]
    memory(out, dest)
    throughput(out, dest)
