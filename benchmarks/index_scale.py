"""A whole index at scale: built from vectors made elsewhere (`index build --from-parquet`), then
searched in a process of its own: RAM all in, disk, latency and recall at 10^6 and 10^7 vectors.

    python -m benchmarks.index_scale   # benchmarks/results/index_scale.{json,md}; about an hour on 2 cores
    python -m benchmarks.index_scale --sizes 100000 --queries 50 --output /tmp/scale   # a quick look

Vectors are 256-d, clustered around 1,000 random directions and L2-normalised, as in
benchmarks/speed.py's FAISS table, each named as a file of an archive
(`/archive/sounds/01234/clip_01234567.flac`). They are written as embed's Parquet table and
indexed by the command a user runs (`diverse-embed index build --from-parquet DIR --index-type
compressed`; its peak RSS and time measured). A fresh process then opens the index and answers
the held-out queries one at a time through `AudioIndex.search_vector`, once to warm up and once
timed; its RSS after that, over N, is the RAM per vector all in (codes, ids, paths, the
interpreter and the libraries it imported). Recall@10 is against exact search.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from diverse_embed import DEFAULT_MODEL, resolve_model
from diverse_embed.parquet import write_parquet
from diverse_embed.search.backends import (
    COMPRESSED_CANDIDATES,
    COMPRESSED_CODE_BYTES,
    COMPRESSED_NPROBE,
    compressed_lists,
)

from .systems import machine, write_results

DIM = 256
BLOCK = 100_000


def clustered_blocks(n: int, seed: int, centres: int = 1000):
    """(<= BLOCK, DIM) float32 blocks, L2-normalised, around `centres` random directions."""
    means = np.random.default_rng(0).standard_normal((centres, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, BLOCK):
        size = min(BLOCK, n - start)
        block = means[rng.integers(0, centres, size)] + rng.standard_normal((size, DIM)).astype(np.float32)
        yield block / np.linalg.norm(block, axis=1, keepdims=True)


def name(i: int) -> str:
    return f"/archive/sounds/{i // 1000:05d}/clip_{i:08d}.flac"


SEARCHER = """
import json, os, sys, time
import numpy as np
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}
from diverse_embed.search.index import AudioIndex
before = rss()
queries = np.load(sys.argv[2])
index = AudioIndex(sys.argv[1])
for query in queries:  # warm-up: the codes read, every page a search needs touched once
    index.search_vector(query, 10)
latencies, found = [], []
for query in queries:
    start = time.perf_counter()
    hits = index.search_vector(query, 10)
    latencies.append(1000 * (time.perf_counter() - start))
    found.append([int(h.path.rsplit("_", 1)[1].split(".")[0]) for h in hits])
print(json.dumps({"before": before, "after": rss(), "latencies": latencies, "found": found, "mapped": index._table is None,
                  "modules": sorted(m for m in ("torch", "pyarrow") if m in sys.modules)}))
"""

# The command a user runs, in this process so that its peak RSS (VmHWM) is its own.
BUILDER = """
import sys
from diverse_embed.cli import main
code = main(sys.argv[1:])
print([int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
sys.exit(code)
"""


def run_measured(command: list[str]) -> tuple[float, str]:
    """(seconds, stdout) of a child process."""
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{command[:4]} failed with exit code {done.returncode}")
    return time.perf_counter() - started, done.stdout


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 ids of each query, a block of the collection at a time."""
    best_scores = np.full((len(queries), 10), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 10), np.int64)
    for start in range(0, len(data), BLOCK):
        scores = queries @ np.asarray(data[start : start + BLOCK]).T  # (q, block)
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :10]
        best_scores, best_ids = np.take_along_axis(merged_scores, order, 1), np.take_along_axis(merged_ids, order, 1)
    return best_ids


def measure(n: int, n_queries: int, folder: Path) -> dict:
    data_path = folder / "collection.f32"
    with open(data_path, "wb") as f:
        for block in clustered_blocks(n, seed=n):
            f.write(block.tobytes())
    data = np.memmap(data_path, dtype=np.float32, mode="r", shape=(n, DIM))
    queries = next(clustered_blocks(n_queries, seed=n + 1))
    np.save(folder / "queries.npy", queries)
    truth = exact_top10(data, queries)
    model = resolve_model(DEFAULT_MODEL)[0]
    table = folder / "table"
    for part, first in enumerate(range(0, n, 10 * BLOCK)):  # files of a million rows, as a cluster writes them
        last = min(n, first + 10 * BLOCK)
        batches = (
            (
                [name(i) for i in range(s, min(last, s + BLOCK))],
                np.full(min(last, s + BLOCK) - s, np.nan),
                np.full(min(last, s + BLOCK) - s, np.nan),
                np.asarray(data[s : min(last, s + BLOCK)]),
            )
            for s in range(first, last, BLOCK)
        )
        write_parquet(table / f"part-{part:05d}.parquet", batches, DIM, DEFAULT_MODEL, model.fingerprint())
    del data
    data_path.unlink()  # the index holds the vectors now; the disk is needed for it

    index = folder / "index"
    build_seconds, out = run_measured(
        [
            sys.executable,
            "-c",
            BUILDER,
            "index",
            "build",
            "--from-parquet",
            str(table),
            "-o",
            str(index),
            "--index-type",
            "compressed",
            "-q",
        ]
    )
    build_peak = int(out.strip().splitlines()[-1])
    table_bytes = sum(p.stat().st_size for p in table.iterdir())
    for p in table.iterdir():
        p.unlink()
    _, out = run_measured([sys.executable, "-c", SEARCHER, str(index), str(folder / "queries.npy")])
    searched = json.loads(out)
    assert searched["mapped"], "the search read the side table into RAM"
    recalls = [len(set(found) & set(true.tolist())) / 10 for found, true in zip(searched["found"], truth)]
    on_disk = {p.name: p.stat().st_size for p in index.iterdir() if p.is_file()}
    on_disk["shards"] = sum(p.stat().st_size for p in (index / "shards").iterdir())
    after, before = searched["after"], searched["before"]
    row = {
        "vectors": n,
        "lists": compressed_lists(n),
        "code_bytes": COMPRESSED_CODE_BYTES,
        "nprobe": COMPRESSED_NPROBE,
        "candidates": 10 * COMPRESSED_CANDIDATES,
        "recall@10": float(np.mean(recalls)),
        "p50_ms": float(np.percentile(searched["latencies"], 50)),
        "p99_ms": float(np.percentile(searched["latencies"], 99)),
        "ram_all_in_bytes_per_vector": after["VmRSS"] / n,
        "rss_before_opening_mb": before["VmRSS"] / 2**20,
        "rss_after_search_mb": after["VmRSS"] / 2**20,
        "rss_anon_after_search_mb": after["RssAnon"] / 2**20,
        "rss_file_after_search_mb": after["RssFile"] / 2**20,
        "search_peak_rss_mb": searched["after"]["VmHWM"] / 2**20,
        "search_imported": searched["modules"],
        "index_ram_bytes_per_vector": (after["VmRSS"] - before["VmRSS"]) / n,
        "disk_bytes_per_vector": sum(on_disk.values()) / n,
        "disk_bytes": on_disk,
        "parquet_bytes_per_vector": table_bytes / n,
        "build_seconds": round(build_seconds, 1),
        "build_peak_rss_mb": round(build_peak / 2**20),
        "collection_mb": round(n * 4 * DIM / 2**20),
    }
    print(row, flush=True)
    return row


def markdown(report: dict) -> str:
    lines = [
        f"# A whole index at scale ({report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        "256-d clustered vectors named as files of an archive, indexed by `diverse-embed index build --from-parquet "
        "--index-type compressed`, then searched one query at a time by a fresh process through "
        "`AudioIndex.search_vector`. **RAM all in** is that process's RSS after a warm-up pass over the queries, "
        "divided by N: the FAISS codes and lists, and the interpreter with the libraries it imported (the "
        '"before" column: that much is there whatever N). A hit\'s path and times, and the exact vectors a '
        "query re-ranks, are read from the shards with pread where rows.bin (8 bytes a row) says they are, so "
        "none of them stays in RAM and the vectors are on disk once.",
        "",
        "| vectors | recall@10 | p50 (ms) | p99 (ms) | RAM all in (B/vector) | of which before opening (MB) | "
        "index's own RAM (B/vector) | disk (B/vector) | build (s) | build peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['vectors']:,} | {r['recall@10']:.3f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['ram_all_in_bytes_per_vector']:.0f} | {r['rss_before_opening_mb']:.0f} | "
            f"{r['index_ram_bytes_per_vector']:.0f} | {r['disk_bytes_per_vector']:,.0f} | {r['build_seconds']:.0f} | "
            f"{r['build_peak_rss_mb']:,} |"
        )
    lines += [
        "",
        "Disk per vector, by file (bytes): "
        + "; ".join(
            f"{r['vectors']:,}: "
            + ", ".join(f"{k} {v / r['vectors']:.0f}" for k, v in sorted(r["disk_bytes"].items()) if v >= r["vectors"])
            for r in report["rows"]
        ),
    ]
    lines += ["", projection(report["rows"])]
    return "\n".join(lines) + "\n"


def projection(rows: list[dict], n: int = 10**8) -> str:
    """10^8 from the measured rows: search RAM from the largest row's bytes per vector, disk as
    measured per vector, build peak on the line through the two largest rows."""
    last = rows[-1]
    ram = last["rss_before_opening_mb"] * 2**20 + last["index_ram_bytes_per_vector"] * n
    disk = last["disk_bytes_per_vector"] * n
    text = (
        f"**10^8, extrapolated from the {last['vectors']:,} row, not measured:** a searching process of "
        f"~{ram / 2**30:.1f} GiB ({last['index_ram_bytes_per_vector']:.0f} B/vector of codes and lists, plus the "
        f"{last['rss_before_opening_mb']:.0f} MB before opening): {'within' if ram < 24 * 2**30 else 'over'} 24 GiB. "
        "The lists stop growing at 8,192, so each holds ~12k vectors and a query scans ten times what it does at "
        f"10^7 (expect tens of milliseconds). Disk ~{disk / 2**30:,.0f} GiB ({last['disk_bytes_per_vector']:,.0f} "
        "B/vector; the shards hold the vectors, once, and each path as its bytes, here ~40)."
    )
    if len(rows) >= 2:
        first = rows[-2]
        slope = (last["build_peak_rss_mb"] - first["build_peak_rss_mb"]) * 2**20 / (last["vectors"] - first["vectors"])
        peak = last["build_peak_rss_mb"] * 2**20 + slope * (n - last["vectors"])
        text += (
            f" The build's peak RSS grows by ~{slope:.0f} B/vector between the two largest rows (the codes, and "
            f"16-byte path hashes where it works out which rows are live): ~{peak / 2**30:.0f} GiB at 10^8, "
            f"{'within' if peak < 24 * 2**30 else 'over'} 24 GiB."
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--scratch", default=None, help="folder for the vector files (default: a temporary one)")
    parser.add_argument("--output", default="benchmarks/results/index_scale", help="path stem for .json and .md")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    rows = []
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
            rows.append(measure(n, args.queries, Path(folder)))
    shown = [a for i, a in enumerate(argv or []) if a != "--scratch" and (i == 0 or argv[i - 1] != "--scratch")]
    command = " ".join(["python -m benchmarks.index_scale", *shown])  # where the scratch files went changes nothing
    report = {"machine": machine(), "command": command, "rows": rows}
    write_results(args.output, report, markdown(report))


if __name__ == "__main__":
    main()
