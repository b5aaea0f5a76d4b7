"""What to do with a clip's last, partly empty chunk? Retrieval under each rule for it.

    python -m benchmarks.final_chunk ~/data/corpora/unseen/*.csv --esc50 ../shared/data/esc50 --model M

A clip rarely lasts a whole number of chunks: its last chunk holds what is left, zero-padded, and
the clip vector is the mean of its chunk vectors, padded one included. Each clip's chunks are
embedded once (every chunk at the model's hop, the last one padded whatever it holds; the clip's
last chunk_seconds; the chunks at half the hop), and each rule's clip vector is taken from them:
- the padded last chunk kept when it holds at least T s of audio, dropped otherwise
  (min_final_chunk_seconds = T; the model's own T is marked);
- the last chunk aligned to the clip's end instead (it overlaps the chunk before);
- the padded last chunk weighted in the mean by the share of it that is audio;
- half the hop, the model's own T (twice the chunks: twice the embedding time).
Scored like benchmarks/generalization.py: leave-one-out mAP@10, exact cosine search, the fused
vector and each branch. Writes NAME.json/.md (default final_chunk) to --output-dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from diverse_embed import DEFAULT_MODEL
from diverse_embed.audio import cut
from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.embed import forward_chunks
from diverse_embed.resolve import resolve_model

from .systems import LabelledSet, add_sets_arguments, load_clips, machine, map_at_10, sets_of, write_results

THRESHOLDS = (0.1, 0.25, 0.5, 0.75)
ALIGNED, WEIGHTED, HALF_HOP = "last chunk aligned to the clip's end", "last chunk weighted by its audio", "half the hop"


def dropped_below(seconds: float, own: float) -> str:
    return f"last chunk dropped below {seconds:g} s" + (" (the model's own)" if seconds == own else "")


def clip_vectors(audio: np.ndarray, model, config: DiverseEmbedConfig) -> dict[str, torch.Tensor]:
    """audio (samples,) -> rule -> the clip's mean chunk vector (embedding_dim,)."""
    size, hop = config.chunk_samples, config.hop_samples
    waveform = torch.from_numpy(audio)
    n_all = dataclasses.replace(config, min_final_chunk_seconds=0.0).num_chunks(len(audio))  # every leftover padded
    half = dataclasses.replace(config, hop_seconds=config.hop_seconds / 2)
    n_half = half.num_chunks(len(audio))
    chunks = torch.cat(
        [
            cut(waveform, size, hop, n_all),  # (n_all, size)
            cut(waveform, size, half.hop_samples, n_half),  # (n_half, size)
            cut(waveform[-size:], size, hop, 1),
        ]
    )  # (1, size): the clip's last chunk_seconds
    embeddings, _ = forward_chunks(model, chunks.contiguous(), 32)  # (n_all + n_half + 1, D)
    padded, halved, last = embeddings[:n_all], embeddings[n_all : n_all + n_half], embeddings[-1]
    vectors = {}
    for seconds in sorted({*THRESHOLDS, config.min_final_chunk_seconds}):
        n = dataclasses.replace(config, min_final_chunk_seconds=seconds).num_chunks(len(audio))
        vectors[dropped_below(seconds, config.min_final_chunk_seconds)] = padded[:n].mean(dim=0)
    own = config.num_chunks(len(audio))
    aligned = padded[:own].clone()
    if len(audio) > size:
        aligned[-1] = last
    vectors[ALIGNED] = aligned.mean(dim=0)
    weights = torch.ones(n_all)  # (n_all,)
    weights[-1] = min(1.0, (len(audio) - (n_all - 1) * hop) / size)
    vectors[WEIGHTED] = (weights[:, None] * padded).sum(dim=0) / weights.sum()
    vectors[HALF_HOP] = halved.mean(dim=0)
    return vectors


def score(labelled: LabelledSet, model) -> dict[str, dict[str, float]]:
    """rule -> {"fused": mAP@10, branch: mAP@10}."""
    config, per_rule = model.config, {}
    for audio in load_clips(labelled):
        for rule, vector in clip_vectors(audio, model, config).items():
            per_rule.setdefault(rule, []).append(vector)
    targets = labelled.targets()
    columns = {"fused": slice(None), **{b: config.branch_slice(b) for b in config.branches}}
    scores = {}
    for rule, vectors in per_rule.items():
        x = torch.stack(vectors).numpy()  # (n_clips, D)
        scores[rule] = {name: round(map_at_10(x[:, cols], targets), 4) for name, cols in columns.items()}
    return scores


def markdown(report: dict) -> str:
    sets = list(report["sets"])
    rules = list(report["sets"][sets[0]])
    lines = [
        "# The last chunk of a clip: retrieval under each rule",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}",
        "",
        "Leave-one-out mAP@10 of the fused vector, exact cosine search; each clip vector the mean of its chunk "
        "vectors under the rule.",
        "",
        "| rule | " + " | ".join(sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    lines += [
        f"| {rule} | " + " | ".join(f"{report['sets'][s][rule]['fused']:.3f}" for s in sets) + " |" for rule in rules
    ]
    branches = [b for b in report["sets"][sets[0]][rules[0]] if b != "fused"]
    lines += [
        "",
        "Each branch alone:",
        "",
        "| rule | branch | " + " | ".join(sets) + " |",
        "|---|---|" + "---|" * len(sets),
    ]
    lines += [
        f"| {rule} | {b} | " + " | ".join(f"{report['sets'][s][rule][b]:.3f}" for s in sets) + " |"
        for rule in rules
        for b in branches
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sets_arguments(parser)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="final_chunk", help="output file name without extension")
    args = parser.parse_args(argv)
    sets = sets_of(args, parser)
    model, _ = resolve_model(args.model)
    report = {
        "command": "python -m benchmarks.final_chunk " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()[:16]})",
        "sets": {},
    }
    for labelled in sets:
        report["sets"][labelled.name] = score(labelled, model)
        print(labelled.name, {rule: s["fused"] for rule, s in report["sets"][labelled.name].items()}, file=sys.stderr)
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
