"""Embedding on a local Ray cluster against `embed_files` in one process, from files.

    python -m benchmarks.ray_speed      # writes benchmarks/results/ray_speed.{json,md}; needs the ray extra

--files ten-second 44.1-kHz WAV files (benchmarks.speed's), the default model. `embed_files`: one
process with the thread plan (a Python thread per core). Ray: `diverse_embed.ray.embed_dataset` (what
`embed --ray` runs) on a local cluster of the machine's cores, with 1 and with 2 workers of one CPU
each, writing the Parquet dataset; each run starts its workers and loads their models, which is
part of what it costs. The cluster's own start is timed apart. Medians of --repeats runs, idle.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from diverse_embed import DEFAULT_MODEL, resolve_model
from diverse_embed.parallel import available_cores

from .speed import CLIP_SECONDS, write_wav_files
from .systems import machine, write_results


def timed(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/ray_speed")
    args = parser.parse_args()
    from diverse_embed.ray import embed_dataset, import_ray

    ray = import_ray()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_wav_files(Path(tmp), args.files)
        audio = args.files * CLIP_SECONDS
        model = resolve_model(DEFAULT_MODEL)[0]
        model.embed_files(paths[:4], progress=False)  # warm
        rates = {"embed_files, one process (the thread plan)": audio / timed(lambda: model.embed_files(paths, progress=False), args.repeats)}
        print(rates, flush=True)
        start = time.perf_counter()
        ray.init(num_cpus=available_cores(), logging_level=logging.ERROR)
        cluster_start = time.perf_counter() - start
        runs = iter(range(10**6))
        for workers in (1, 2):
            def on_ray(workers=workers):
                embed_dataset(paths, Path(tmp) / f"out{next(runs)}", workers=workers, progress=False)

            rates[f"Ray, {workers} worker(s) of 1 CPU (embed --ray)"] = audio / timed(on_ray, args.repeats)
            print(rates, flush=True)
        ray.shutdown()
    baseline = rates["embed_files, one process (the thread plan)"]
    rows = "\n".join(f"| {name} | {rate:.0f} | {rate / baseline:.2f} |" for name, rate in rates.items())
    text = f"""# Embedding on a local Ray cluster ({machine()})

Command: `python -m benchmarks.ray_speed --files {args.files}` (needs `pip install "diverse-embed[ray]"`)

{args.files} ten-second 44.1-kHz WAV files ({audio} s of audio), model {DEFAULT_MODEL}, idle, median of
{args.repeats} runs. A Ray run includes starting its workers and loading a model in each, and writing
the Parquet dataset; the local cluster itself took {cluster_start:.1f} s to start (once, not included).

| system | seconds of audio per second | of embed_files |
|---|---|---|
{rows}
"""
    report = {"machine": machine(), "cores": available_cores(), "files": args.files, "audio_seconds": audio,
              "model": DEFAULT_MODEL, "cluster_start_s": cluster_start, "audio_seconds_per_second": rates,
              "cpu": os.cpu_count()}
    write_results(args.output, report, text)
    print(text)


if __name__ == "__main__":
    main()
