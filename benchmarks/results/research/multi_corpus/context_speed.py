"""What the neuralogram's context costs from files: `embed_files` on 32 ten-second 44.1-kHz WAVs
with diverse-embed-multi-v2 as it is and with context_seconds set (the same weights: the cost does
not depend on them), taking turns, the median of 5 runs after a warm-up each.

    python benchmarks/results/research/multi_corpus/context_speed.py 0.25 0.5
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from diverse_embed import DiverseEmbedder

FILES, SECONDS, RATE = 32, 10, 44100


def write_files(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = [folder / f"{i}.wav" for i in range(FILES)]
    for path in paths:
        sf.write(path, (rng.standard_normal(SECONDS * RATE) * 0.1).astype(np.float32), RATE)
    return paths


def main(contexts: list[float]) -> None:
    with tempfile.TemporaryDirectory() as folder:  # 32 files, 56 MB: not left behind
        measure(write_files(Path(folder)), contexts)


def measure(paths: list[Path], contexts: list[float]) -> None:
    base = DiverseEmbedder.from_pretrained("diverse-embed-multi-v2").eval()
    models = {0.0: base}
    for seconds in contexts:
        models[seconds] = DiverseEmbedder(base.config.with_context(seconds)).eval()
        models[seconds].load_state_dict(base.state_dict())
    times: dict[float, list[float]] = {seconds: [] for seconds in models}
    for _ in range(6):
        for seconds, model in models.items():
            started = time.perf_counter()
            model.embed_files(paths)
            times[seconds].append(time.perf_counter() - started)
    median = {seconds: statistics.median(runs[1:]) for seconds, runs in times.items()}
    for seconds in models:
        print(
            f"context {seconds} s: {FILES * SECONDS / median[seconds]:.1f} s/s, "
            f"time {median[seconds] / median[0.0]:.2f}x, runs {[round(t, 2) for t in times[seconds]]}"
        )


if __name__ == "__main__":
    main([float(s) for s in sys.argv[1:]] or [0.5])
