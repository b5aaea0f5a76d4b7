"""Embedding speed of DiverseEmbedder on this machine: throughput and where the time goes.

    python -m benchmarks.speed                 # writes benchmarks/results/speed.{json,md}
    python -m benchmarks.speed --repeats 3 --clips 8 --output /tmp/speed   # quicker

Throughput is seconds of audio embedded per second of wall time, end to end through
`embed_batch` (chunking, the four front ends, the four transformers), after a warm-up, the
median of `--repeats` runs. Random weights: weights do not change the compute.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diverse_embed import DiverseEmbedConfig, DiverseEmbedder


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(model: DiverseEmbedder, clips: list[np.ndarray], batch_size: int, repeats: int) -> float:
    seconds_of_audio = sum(len(c) for c in clips) / 16000
    return seconds_of_audio / median_seconds(lambda: model.embed_batch(clips, 16000, batch_size=batch_size), repeats)


@torch.inference_mode()
def branch_times(model: DiverseEmbedder, batch_size: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per branch, milliseconds per batch of `batch_size` chunks: front end alone, and the whole branch."""
    chunks = torch.randn(batch_size, model.config.chunk_samples) * 0.1
    result = {}
    for name, branch in model.branches.items():
        front = median_seconds(lambda: branch.frames(chunks), repeats)
        whole = median_seconds(lambda: branch(chunks), repeats)
        result[name] = {"features_ms": 1000 * front, "network_ms": 1000 * (whole - front), "total_ms": 1000 * whole}
    return result


def markdown(report: dict) -> str:
    lines = [
        f"# Embedding speed ({report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        "| batch (1-s chunks) | seconds of audio per second |",
        "|---|---|",
    ]
    lines += [f"| {b} | {v:.1f} |" for b, v in report["throughput_audio_seconds_per_second"].items()]
    lines += ["", f"Per branch, one batch of {report['branch_batch']} chunks (ms); the neuralogram's "
              "features are its log-mel and MobileNet, its network the transformer:", "",
              "| branch | parameters | features | network | total |", "|---|---|---|---|---|"]
    for name, t in report["branch_ms"].items():
        lines.append(f"| {name} | {report['parameters'][name]:,} | {t['features_ms']:.1f} | "
                     f"{t['network_ms']:.1f} | {t['total_ms']:.1f} |")
    lines += ["", f"Parameters in total: {report['parameters']['total']:,} "
              f"(head {report['parameters']['head']:,})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16, help="10-s clips embedded per run (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after a warm-up; the median counts")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default="benchmarks/results/speed", help="path stem for .json and .md")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = DiverseEmbedder(DiverseEmbedConfig()).eval().to(args.device)
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(160_000) * 0.1).astype(np.float32) for _ in range(args.clips)]
    report = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} CPU threads, device {args.device}, "
                   f"torch {torch.__version__}",
        "command": " ".join(["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])]),
        "clips": f"{args.clips} clips of 10 s, random noise",
        "parameters": model.num_parameters(),
        "throughput_audio_seconds_per_second": {
            batch: throughput(model, clips if batch > 1 else clips[:2], batch, args.repeats) for batch in (1, 32)
        },
        "branch_batch": 32,
        "branch_ms": branch_times(model, 32, args.repeats),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
