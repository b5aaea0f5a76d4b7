"""Embedding on a local Ray cluster against `embed_files` in one process, from files.

    python -m benchmarks.ray_speed      # writes benchmarks/results/ray_speed.{json,md}; needs the ray extra

--files ten-second 44.1-kHz WAV files (benchmarks.speed's), the default model. `embed_files`: one
process with the thread plan (a Python thread per core). Ray: `diverse_embed.ray.embed_dataset` (what
`embed --ray` runs) on a local cluster of the machine's cores, with 1 and with 2 workers of one CPU
each, writing the Parquet dataset; each run starts its workers and loads their models, which is
part of what it costs. The cluster's own start is timed apart. Every system embeds --files files
and twice as many: the difference gives its rate once running and its fixed cost per run.
Medians of --repeats runs, idle.
"""

from __future__ import annotations

import argparse
import logging
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
        paths = write_wav_files(Path(tmp), 2 * args.files)
        model = resolve_model(DEFAULT_MODEL)[0]
        model.embed_files(paths[:4], progress=False)  # warm
        runs = iter(range(10**6))
        systems = {"embed_files, one process (the thread plan)": lambda files: model.embed_files(files, progress=False)}
        for workers in (1, 2):
            systems[f"Ray, {workers} worker(s) of 1 CPU (embed --ray)"] = lambda files, workers=workers: embed_dataset(
                files, Path(tmp) / f"out{next(runs)}", workers=workers, progress=False
            )
        times, cluster_start = {}, None
        for name, run in systems.items():
            if name.startswith("Ray") and cluster_start is None:
                start = time.perf_counter()
                ray.init(num_cpus=available_cores(), logging_level=logging.ERROR)
                cluster_start = time.perf_counter() - start
            times[name] = [
                timed(lambda run=run: run(paths[: args.files]), args.repeats),
                timed(lambda run=run: run(paths), args.repeats),
            ]
            print(name, times[name], flush=True)
        ray.shutdown()
    audio = args.files * CLIP_SECONDS
    rates = {name: audio / small for name, (small, _) in times.items()}
    running = {name: audio / (large - small) for name, (small, large) in times.items()}  # the second N files' rate
    fixed = {name: max(0.0, 2 * small - large) for name, (small, large) in times.items()}
    baseline, running_baseline = rates[next(iter(rates))], running[next(iter(running))]
    rows = "\n".join(
        f"| {name} | {rates[name]:.0f} | {rates[name] / baseline:.2f} | {running[name]:.0f} | "
        f"{running[name] / running_baseline:.2f} | {fixed[name]:.1f} |"
        for name in rates
    )
    text = f"""# Embedding on a local Ray cluster ({machine()})

Command: `python -m benchmarks.ray_speed --files {args.files}` (needs `pip install "diverse-embed[ray]"`)

Ten-second 44.1-kHz WAV files, model {DEFAULT_MODEL}, idle, medians of {args.repeats} runs. A Ray run
includes starting its workers, loading a model in each and writing the Parquet dataset; the local
cluster itself took {cluster_start:.1f} s to start (once, not included). Each system embedded {args.files}
files ({audio} s of audio) and {2 * args.files}: "once running" is the rate of the second {args.files} files
(the difference of the two times), "fixed cost" what a run costs beyond its files.

| system | {args.files} files: seconds of audio per second | of embed_files | once running | of embed_files | fixed cost per run (s) |
|---|---|---|---|---|---|
{rows}
"""
    report = {
        "machine": machine(),
        "cores": available_cores(),
        "files": args.files,
        "audio_seconds": audio,
        "model": DEFAULT_MODEL,
        "cluster_start_s": cluster_start,
        "seconds": times,
        "audio_seconds_per_second": rates,
        "once_running": running,
        "fixed_cost_s": fixed,
    }
    write_results(args.output, report, text)
    print(text)


if __name__ == "__main__":
    main()
