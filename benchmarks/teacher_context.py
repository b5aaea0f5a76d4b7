"""How much of the teacher can a student of 1-s chunks copy? The aisfx teacher's retrieval scores
with the context it is given cut down to what the student hears.

    python -m benchmarks.teacher_context ~/data/corpora/unseen/*.csv --esc50 ../shared/data/esc50 \\
        --teacher aisfx-0.1.2-py2.py3-none-any.whl --model diverse-embed-multi

Three clip vectors of the same teacher, each the mean of its window vectors, scored like
benchmarks/generalization.py (leave-one-out mAP@10, exact cosine search):
- as the issue measured it: 2.3-s blocks every 1.16 s of the 44.1 kHz file;
- the distillation targets: the 2.3-s window centred on each of the model's 1-s chunks, from the
  16 kHz audio the student hears (diverse_embed.teacher.chunk_windows; a student that copied
  its targets exactly would score this);
- each chunk alone: the same windows with every frame outside the chunk silenced (what the
  teacher makes of the student's context only).
--model gives the chunking (1 s, hop 1 s for the bundled models), --chunk-seconds another.
Writes NAME.json/.md (default teacher_context) to --output-dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from diverse_embed import DEFAULT_MODEL, teacher
from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.resolve import resolve_model

from .systems import (
    AISFX,
    LabelledSet,
    add_sets_arguments,
    load_clips,
    machine,
    map_at_10,
    sets_of,
    teacher_vectors,
    write_results,
)

AS_MEASURED = "as the issue measured it (2.3-s blocks every 1.16 s)"


def variant_names(config: DiverseEmbedConfig) -> tuple[str, str]:
    seconds = f"{config.chunk_seconds:g}-s"
    return (
        f"the distillation targets (2.3 s centred on each {seconds} chunk)",
        f"each {seconds} chunk alone (frames outside it silenced)",
    )


def chunk_alone(windows: torch.Tensor, config: DiverseEmbedConfig) -> torch.Tensor:
    """(n, 100, 96) windows centred on their chunks -> the same with the frames outside the chunk zeroed."""
    half = config.chunk_seconds * teacher.SAMPLE_RATE / teacher.HOP / 2  # frames
    first, last = round(teacher.BLOCK_FRAMES / 2 - half), round(teacher.BLOCK_FRAMES / 2 + half)
    kept = torch.zeros_like(windows)
    kept[:, first:last] = windows[:, first:last]
    return kept


@torch.inference_mode()
def chunk_vectors(
    network: teacher.SoundEffectsCNN, clips: list[np.ndarray], config: DiverseEmbedConfig, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """The targets' and the chunk-alone clip vectors of 16 kHz clips: name -> (n_clips, 512)."""
    from tqdm.auto import tqdm

    targets, alone = variant_names(config)
    out = {targets: [], alone: []}
    for audio in tqdm(clips, desc="aisfx per chunk", unit="clip", leave=False):
        windows = teacher.chunk_windows(audio, config)  # (n_chunks, 100, 96)
        for name, w in ((targets, windows), (alone, chunk_alone(windows, config))):
            out[name].append(torch.cat([network.embed(b) for b in w.split(batch_size)]).mean(dim=0).numpy())
    return {name: np.stack(v) for name, v in out.items()}


def score(
    labelled: LabelledSet,
    network: teacher.SoundEffectsCNN,
    wheel: str,
    config: DiverseEmbedConfig,
    cache_dir: Path | None,
) -> dict[str, float]:
    vectors = {
        AS_MEASURED: teacher_vectors(labelled, AISFX, wheel, cache_dir),
        **chunk_vectors(network, load_clips(labelled), config),
    }
    targets = labelled.targets()
    return {name: map_at_10(v, targets) for name, v in vectors.items()}


def markdown(report: dict) -> str:
    sets = list(report["sets"])
    lines = [
        "# What of the teacher one chunk can hold",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Chunking: {report['chunking']}",
        "",
        "Leave-one-out mAP@10 of the aisfx teacher's clip vector (the mean of its window vectors) on each set.",
        "",
        "| teacher vector | " + " | ".join(sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for name in report["sets"][sets[0]]:
        lines.append(f"| {name} | " + " | ".join(f"{report['sets'][s][name]:.3f}" for s in sets) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sets_arguments(parser, "a row")
    parser.add_argument("--teacher", required=True, help="the aisfx wheel (pip download aisfx==0.1.2 --no-deps -d DIR)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"the model whose chunking is used (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--chunk-seconds", type=float, help="chunks (and their hop) of this length instead of the model's"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="teacher_context", help="output file name without extension")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where the as-measured teacher vectors are kept (shared with the other benchmarks)",
    )
    args = parser.parse_args(argv)

    config = resolve_model(args.model)[0].config
    if args.chunk_seconds:
        config = dataclasses.replace(config, chunk_seconds=args.chunk_seconds, hop_seconds=args.chunk_seconds)
    sets = sets_of(args, parser)
    network = teacher.load_teacher(args.teacher)
    report = {
        "command": "python -m benchmarks.teacher_context " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "chunking": f"{args.model}: {config.chunk_seconds:g}-s chunks every {config.hop_seconds:g} s",
        "sets": {},
    }
    for labelled in sets:
        report["sets"][labelled.name] = score(labelled, network, args.teacher, config, args.cache_dir)
        print(labelled.name, report["sets"][labelled.name], file=sys.stderr)
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
