"""Speed of the HEAR API with the bundled model: seconds of audio embedded per second.

    python -m benchmarks.hear_speed            # writes benchmarks/results/hear_speed.{json,md}

Two 10-s clips of noise per call, after a warm-up, the median of --repeats calls, for
`get_scene_embeddings` and for `get_timestamp_embeddings` at the default 50-ms hop (one 1-s
window per timestamp: 20 windows per second of audio).
"""

from __future__ import annotations

import argparse
import sys

import torch

from diverse_embed import hear

from .speed import median_seconds
from .systems import machine, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each of the two clips")
    parser.add_argument("--output", default="benchmarks/results/hear_speed", help="path stem for .json and .md")
    args = parser.parse_args(argv)

    model = hear.load_model()
    audio = torch.randn(2, int(args.seconds * model.sample_rate), generator=torch.Generator().manual_seed(0)) * 0.1
    total = 2 * args.seconds
    report = {
        "command": " ".join(["python -m benchmarks.hear_speed", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "timestamp_hop_ms": model.timestamp_hop_samples * 1000 / model.sample_rate,
        "scene_audio_seconds_per_second": total
        / median_seconds(lambda: hear.get_scene_embeddings(audio, model), args.repeats),
        "timestamp_audio_seconds_per_second": total
        / median_seconds(lambda: hear.get_timestamp_embeddings(audio, model), args.repeats),
    }
    lines = [
        f"# HEAR API speed ({report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        "| function | seconds of audio per second |",
        "|---|---|",
        f"| get_scene_embeddings | {report['scene_audio_seconds_per_second']:.1f} |",
        f"| get_timestamp_embeddings (hop {report['timestamp_hop_ms']:.0f} ms) | "
        f"{report['timestamp_audio_seconds_per_second']:.2f} |",
        "",
    ]
    write_results(args.output, report, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
