"""The compressed index type at scale: recall, RAM and latency at 10^6 and 10^7 vectors.

    python -m benchmarks.index_scale   # benchmarks/results/index_scale.{json,md}; about an hour on 2 cores
    python -m benchmarks.index_scale --sizes 100000 --queries 50 --output /tmp/scale   # a quick look

Vectors are 256-d, clustered around 1,000 random directions and L2-normalised, as in
benchmarks/speed.py's FAISS table. They are written to a file first and the index is built from
it a block at a time with the library's own `build_compressed_index`, so the build never holds
the collection in RAM (its peak anonymous memory is measured while it runs). Queries are held
out; recall@10 is against exact search, one query at a time through the library's
`RefinedIndex` (codes in RAM, candidates re-ranked with the exact vectors mapped from disk).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np

from diverse_embed.search.backends import (
    COMPRESSED_CANDIDATES,
    COMPRESSED_CODE_BYTES,
    COMPRESSED_NPROBE,
    RefinedIndex,
    build_compressed_index,
    compressed_lists,
    compressed_training_size,
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


class AnonymousMemoryPeak:
    """The highest RssAnon (heap, not file pages mapped from disk) seen while the block runs."""

    def __enter__(self):
        self.peak, self.running = 0, True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, rss_anon_bytes())
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def rss_anon_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 ids of each query, a block of the collection at a time."""
    best_scores = np.full((len(queries), 10), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 10), np.int64)
    for start in range(0, len(data), BLOCK):
        scores = queries @ np.asarray(data[start:start + BLOCK]).T  # (q, block)
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
    truth = exact_top10(data, queries)

    started = time.perf_counter()
    with AnonymousMemoryPeak() as peak:
        wanted = np.sort(np.random.default_rng(0).choice(n, size=compressed_training_size(n), replace=False))
        training = np.asarray(data[wanted])
        with open(folder / "vectors.f32", "wb") as exact_file:
            blocks = (np.asarray(data[s:s + BLOCK]) for s in range(0, n, BLOCK))
            index = build_compressed_index(n, blocks, training, exact_file)
        del training
    build_seconds = time.perf_counter() - started
    codes_bytes = len(faiss.serialize_index(index))
    searcher = RefinedIndex(index, np.memmap(folder / "vectors.f32", dtype=np.float32, mode="r", shape=(n, DIM)))

    latencies, recalls = [], []
    for query, true in zip(queries, truth):
        t = time.perf_counter()
        _, ids = searcher.search(query[None], 10)
        latencies.append(1000 * (time.perf_counter() - t))
        recalls.append(len(set(ids[0]) & set(true)) / 10)
    row = {
        "vectors": n, "lists": compressed_lists(n), "code_bytes": COMPRESSED_CODE_BYTES, "nprobe": COMPRESSED_NPROBE,
        "candidates": 10 * COMPRESSED_CANDIDATES, "recall@10": float(np.mean(recalls)),
        "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
        "ram_bytes_per_vector": codes_bytes / n, "flat_ram_bytes_per_vector": 4 * DIM,
        "ram_fraction_of_flat": codes_bytes / (n * 4 * DIM), "disk_bytes_per_vector": 4 * DIM + codes_bytes / n,
        "build_seconds": round(build_seconds, 1), "build_peak_anonymous_mb": round(peak.peak / 2**20),
        "collection_mb": round(n * 4 * DIM / 2**20),
    }
    print(row, flush=True)
    return row


def markdown(report: dict) -> str:
    lines = [f"# The compressed index type at scale ({report['machine']})", "",
             f"Command: `{report['command']}`", "",
             "256-d clustered vectors; one query at a time; RAM = the FAISS codes and lists (vectors.faiss), "
             "the exact vectors stay in vectors.f32 on disk and only each query's candidates are read.", "",
             "| vectors | lists | recall@10 | p50 (ms) | p99 (ms) | RAM bytes/vector | of flat's RAM | "
             "build (s) | build peak heap (MB) | collection (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['vectors']:,} | {r['lists']} | {r['recall@10']:.3f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['ram_bytes_per_vector']:.0f} | 1/{1 / r['ram_fraction_of_flat']:.0f} | {r['build_seconds']:.0f} | "
                     f"{r['build_peak_anonymous_mb']:,} | {r['collection_mb']:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--scratch", default=None, help="folder for the vector files (default: a temporary one)")
    parser.add_argument("--output", default="benchmarks/results/index_scale", help="path stem for .json and .md")
    args = parser.parse_args(argv)
    rows = []
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
            rows.append(measure(n, args.queries, Path(folder)))
    command = "python -m benchmarks.index_scale" + (f" {' '.join(argv)}" if argv else "")
    report = {"machine": machine(), "command": command, "rows": rows}
    write_results(args.output, report, markdown(report))


if __name__ == "__main__":
    main()
