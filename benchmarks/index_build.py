"""Building an index against embedding the same files: what the index's bookkeeping costs.

    python -m benchmarks.index_build --folder ../shared/data/esc50/audio   # benchmarks/results/index_build.{json,md}

Three timings on the same files, seconds of audio per second: `model.embed_files` in a warm
process, and the whole `diverse-embed embed` and `diverse-embed index build` processes, start-up
included (the index build into a new folder each run). Runs take turns; the median of --repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diverse_embed import resolve_model
from diverse_embed.audio import audio_info
from diverse_embed.config import DEFAULT_MODEL
from diverse_embed.files import find_audio_files

from .systems import machine, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default="../shared/data/esc50/audio", help="audio files to embed and index")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/index_build", help="path stem for .json and .md")
    args = parser.parse_args(argv)

    paths = find_audio_files([args.folder])
    seconds = sum(audio_info(p).duration for p in paths)
    cli = Path(sys.executable).with_name("diverse-embed")
    cli = str(cli) if cli.exists() else "diverse-embed"
    model = resolve_model(DEFAULT_MODEL)[0]
    model.embed_files(paths[:8], progress=False)  # warm-up
    times = {"embed_files": [], "diverse-embed embed": [], "diverse-embed index build": []}
    with tempfile.TemporaryDirectory() as temp:
        for run in range(args.repeats):
            start = time.perf_counter()
            model.embed_files(paths, progress=False)
            times["embed_files"].append(time.perf_counter() - start)
            for name, command in [
                ("diverse-embed embed", [cli, "embed", args.folder, "-o", f"{temp}/e{run}.npz", "-q"]),
                ("diverse-embed index build", [cli, "index", "build", args.folder, "-o", f"{temp}/i{run}", "-q"]),
            ]:
                start = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
            print(json.dumps({name: t[-1] for name, t in times.items()}), flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "machine": machine(),
        "command": " ".join(["python -m benchmarks.index_build", *(argv or sys.argv[1:])]),
        "files": len(paths),
        "audio_seconds": seconds,
        "seconds": medians,
        "audio_seconds_per_second": {name: seconds / t for name, t in medians.items()},
    }
    rate = report["audio_seconds_per_second"]
    lines = [
        f"# Index build against embedding ({report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{len(paths)} files, {seconds:,.0f} s of audio; medians of {args.repeats} runs taking turns:",
        "",
        "| what | seconds | audio seconds per second | share of embed_files |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {medians[name]:.1f} | {rate[name]:.0f} | {rate[name] / rate['embed_files']:.0%} |"
        for name in medians
    ]
    write_results(args.output, report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
