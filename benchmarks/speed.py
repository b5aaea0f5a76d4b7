"""Speed and memory: DiverseEmbedder against the CLAP audio tower, per-branch cost, and FAISS.

    python -m benchmarks.speed                         # writes benchmarks/results/speed.{json,md}
    python -m benchmarks.speed --skip-faiss --batches 1,4 --repeats 2 --output /tmp/speed   # quick look

Embedding throughput is seconds of audio embedded per second of wall time, end to end from the
waveform: for DiverseEmbedder (the bundled checkpoint) `embed_batch` (chunking, the four front
ends, the four transformers, 16 kHz input), for CLAP its own preprocessing
(`ClapFeatureExtractor`, 48 kHz input, mel and 10-s windows) and `ClapModel.get_audio_features`'
compute (the HTSAT audio model and its projection: `ClapAudioModelWithProjection`). "Batch" is
how many 10-s clips go in one call (DiverseEmbedder runs their 1-s chunks `DEFAULT_BATCH_SIZE` at
a time, its default). Both systems are timed in this one process, each after a warm-up, taking
turns run by run, the median of --repeats runs. CLAP has random weights: they do not change the
compute; its config is `ClapAudioConfig()`, the architecture of laion/clap-htsat-unfused. Peak memory is
measured in a fresh process per system and batch (peak resident memory, and its rise over the
same process once it has embedded one clip).

FAISS: for each size in --faiss-sizes, vectors of dimension 256 drawn around 1,000 random
centres (embeddings cluster; uniform random vectors are the hardest case and unlike real ones),
L2-normalised; the indexes `diverse_embed.index.build_faiss_index` builds (flat, HNSW, IVF-PQ,
with the settings the library uses); build time, single-query latency p50 and p99 over
--faiss-queries held-out queries, recall@10 against exact search, bytes per vector.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from diverse_embed import DiverseEmbedder, resolve_model
from diverse_embed.config import DEFAULT_MODEL
from diverse_embed.index import build_faiss_index, index_kind

from .systems import machine


CLIP_SECONDS = 10


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----- the two systems ---------------------------------------------------------------------------

class DiverseSystem:
    name = f"DiverseEmbedder (fused, 256-d, {DEFAULT_MODEL})"
    sample_rate = 16000

    def __init__(self, device: str):
        # The bundled model: the architecture users get (its config.json fixes frame rates and strides).
        self.model = resolve_model(DEFAULT_MODEL)[0].to(device)

    def parameters(self) -> int:
        return self.model.num_parameters()["total"]

    def embed(self, clips: list[np.ndarray]) -> None:
        self.model.embed_batch(clips, self.sample_rate)  # the library's default chunks per forward pass


class ClapTower:
    name = "CLAP audio tower (HTSAT, ClapAudioConfig defaults)"
    sample_rate = 48000

    def __init__(self, device: str):
        from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

        torch.manual_seed(0)
        self.device = device
        self.model = ClapAudioModelWithProjection(ClapAudioConfig()).eval().to(device)
        self.preprocess = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def embed(self, clips: list[np.ndarray]) -> None:
        inputs = self.preprocess(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        self.model(input_features=inputs["input_features"].to(self.device), is_longer=inputs["is_longer"].to(self.device))


SYSTEMS = {"diverse": DiverseSystem, "clap": ClapTower}


def clips_for(system, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(CLIP_SECONDS * system.sample_rate) * 0.1).astype(np.float32) for _ in range(count)]


def throughputs(device: str, batches: list[int], repeats: int) -> dict:
    """Seconds of audio per second, per system and batch, measured in this process. The systems
    take turns run by run (A, B, A, B, ...), so a slow spell of a shared machine hits both."""
    systems = {key: cls(device) for key, cls in SYSTEMS.items()}
    result = {s.name: {"parameters": s.parameters()} for s in systems.values()}
    for batch in batches:
        clips = {key: clips_for(system, batch) for key, system in systems.items()}
        times = {key: [] for key in systems}
        for key, system in systems.items():
            system.embed(clips[key])  # warm-up
        for _ in range(repeats):
            for key, system in systems.items():
                start = time.perf_counter()
                system.embed(clips[key])
                times[key].append(time.perf_counter() - start)
        for key, system in systems.items():
            result[system.name][f"batch {batch}"] = batch * CLIP_SECONDS / statistics.median(times[key])
    return result


def peak_memory(system_key: str, batch: int, device: str) -> dict:
    """Peak resident memory (MB) of a fresh process embedding one batch, and its rise over the
    process with the model loaded. Read from /proc (VmHWM, reset through clear_refs): getrusage's
    maxrss would carry over the parent's peak across exec."""
    code = (
        "import json; from benchmarks.speed import SYSTEMS, clips_for, _high_water_mb; "
        f"s = SYSTEMS[{system_key!r}]({device!r}); clips = clips_for(s, {batch}); s.embed(clips[:1]); "
        "loaded = _high_water_mb(reset=True); s.embed(clips); peak = _high_water_mb(); "
        "print(json.dumps({'peak_mb': peak, 'rise_mb': peak - loaded}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _high_water_mb(reset: bool = False) -> float:
    """This process's resident memory now (after reset) or its peak since the last reset, in MB."""
    if reset:
        Path("/proc/self/clear_refs").write_text("5")  # sets the peak to the current resident size
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")


@torch.inference_mode()
def branch_times(batch_size: int, repeats: int, device: str) -> dict[str, dict[str, float]]:
    """Per branch, milliseconds per batch of `batch_size` chunks: front end alone, and the whole branch."""
    model = DiverseSystem(device).model
    chunks = torch.randn(batch_size, model.config.chunk_samples, device=device) * 0.1
    result = {}
    for name, branch in model.branches.items():
        front = median_seconds(lambda: branch.front_end(chunks), repeats)
        whole = median_seconds(lambda: branch(chunks), repeats)
        result[name] = {"features_ms": 1000 * front, "network_ms": 1000 * (whole - front), "total_ms": 1000 * whole,
                        "parameters": sum(p.numel() for p in branch.parameters())}
    return result


# ----- FAISS -------------------------------------------------------------------------------------

def clustered_vectors(n: int, d: int = 256, centres: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, d) float32, L2-normalised, around `centres` random directions."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, d)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 100_000):  # in blocks: a million vectors is 1 GB already
        stop = min(n, start + 100_000)
        block = means[rng.integers(0, centres, stop - start)] + rng.standard_normal((stop - start, d)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def faiss_benchmark(sizes: list[int], queries: int, kinds: list[str]) -> list[dict]:
    rows = []
    for n in sizes:
        data = clustered_vectors(n + queries, seed=n)
        base, query = data[:n], data[n:]
        exact = faiss.IndexFlatIP(base.shape[1])
        exact.add(base)
        _, truth = exact.search(query, 10)  # (queries, 10)
        for kind in kinds:
            started = time.perf_counter()
            index = build_faiss_index(base, kind)
            build = time.perf_counter() - started
            latencies, found = [], []
            for q in query:
                t = time.perf_counter()
                _, ids = index.search(q[None], 10)
                latencies.append(1000 * (time.perf_counter() - t))
                found.append(ids[0])
            recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
            rows.append({
                "vectors": n, "index": kind if index_kind(index) == kind else f"{kind} (fell back to {index_kind(index)})",
                "build_seconds": round(build, 2),
                "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
                "recall@10": recall, "bytes_per_vector": len(faiss.serialize_index(index)) / n,
            })
            print(json.dumps(rows[-1]), flush=True)
            del index
    return rows


# ----- report ------------------------------------------------------------------------------------

def markdown(report: dict) -> str:
    lines = [f"# Speed and memory ({report['machine']})", "", f"Command: `{report['command']}`", ""]
    if "throughput" in report:
        batches = report["batches"]
        lines += ["Embedding throughput, seconds of audio per second (10-s clips; batch = clips per call):", "",
                  "| system | parameters | " + " | ".join(f"batch {b}" for b in batches)
                  + " | " + " | ".join(f"peak MB (rise), batch {b}" for b in batches) + " |",
                  "|---|---|" + "---|" * (2 * len(batches))]
        for name, r in report["throughput"].items():
            memory = report.get("memory", {}).get(name, {})
            lines.append(f"| {name} | {r['parameters']:,} | " + " | ".join(f"{r[f'batch {b}']:.1f}" for b in batches)
                         + " | " + " | ".join(f"{memory[f'batch {b}']['peak_mb']:.0f} ({memory[f'batch {b}']['rise_mb']:.0f})"
                                               if f"batch {b}" in memory else "-" for b in batches) + " |")
        lines += ["", "Ratio DiverseEmbedder / CLAP tower: " + ", ".join(
            f"batch {b}: **{report['ratio'][f'batch {b}']:.1f}x**" for b in batches), ""]
    if "branch_ms" in report:
        lines += [f"Per branch, one batch of {report['branch_batch']} chunks (ms); the neuralogram's features are "
                  "its log-mel and MobileNet, its network the transformer:", "",
                  "| branch | parameters | features | network | total |", "|---|---|---|---|---|"]
        for name, t in report["branch_ms"].items():
            lines.append(f"| {name} | {t['parameters']:,} | {t['features_ms']:.1f} | {t['network_ms']:.1f} | {t['total_ms']:.1f} |")
        lines.append("")
    if report.get("faiss"):
        lines += ["FAISS, 256-d clustered vectors, one query at a time, the library's index settings:", "",
                  "| vectors | index | build (s) | p50 (ms) | p99 (ms) | recall@10 | bytes/vector |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["faiss"]:
            lines.append(f"| {r['vectors']:,} | {r['index']} | {r['build_seconds']:.1f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r['recall@10']:.3f} | {r['bytes_per_vector']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,32", help="clips per call (default 1,32)")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs after a warm-up; the median counts")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-embedding", action="store_true", help="FAISS only")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-faiss", action="store_true")
    parser.add_argument("--faiss-sizes", default="10000,100000,1000000")
    parser.add_argument("--faiss-queries", type=int, default=500)
    parser.add_argument("--faiss-index", default="flat,hnsw,ivfpq")
    parser.add_argument("--output", default="benchmarks/results/speed", help="path stem for .json and .md")
    args = parser.parse_args(argv)

    batches = [int(b) for b in args.batches.split(",")]
    report = {"machine": machine() + f", device {args.device}",
              "command": " ".join(["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])]),
              "batches": batches}
    if not args.skip_embedding:
        report["throughput"] = throughputs(args.device, batches, args.repeats)
        diverse, clap = (report["throughput"][cls.name] for cls in SYSTEMS.values())
        report["ratio"] = {f"batch {b}": diverse[f"batch {b}"] / clap[f"batch {b}"] for b in batches}
        if not args.skip_memory:
            report["memory"] = {cls.name: {f"batch {b}": peak_memory(key, b, args.device) for b in batches}
                                for key, cls in SYSTEMS.items()}
        report["branch_batch"] = 32
        report["branch_ms"] = branch_times(32, args.repeats, args.device)
    if not args.skip_faiss:
        report["faiss"] = faiss_benchmark([int(n) for n in args.faiss_sizes.split(",")], args.faiss_queries,
                                          args.faiss_index.split(","))
    report["peak_rss_mb_of_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
