"""Does bfloat16 keep what float32 finds? Retrieval with the networks in each precision.

    python -m benchmarks.precision CORPORA/unseen/*.csv --esc50 ../shared/data/esc50

CORPORA: the folder `scripts/corpora.py --output` fills (the unseen sets' manifests are in its unseen/).

Every set's clips are embedded twice by the same model, `model.precision` "float32" then
"bfloat16" (precision.py: the MobileNet and the transformers under autocast, the front ends in full
precision), and scored like benchmarks/generalization.py: leave-one-out mAP@10, exact cosine
search, the fused vector and each branch. Also the cosine between each clip's two fused vectors.
bfloat16 must be native here (AVX-512 BF16, AMX or a GPU with it): elsewhere it falls back to
float32 and the comparison would say nothing, so the benchmark refuses to run.
Writes NAME.json/.md (default precision) to --output-dir.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from diverse_embed import DEFAULT_MODEL
from diverse_embed.precision import native_bfloat16
from diverse_embed.resolve import resolve_model

from .systems import (
    FUSED,
    add_sets_arguments,
    diverse_embed_systems,
    load_clips,
    machine,
    map_at_10,
    sets_of,
    write_results,
)

PRECISIONS = ("float32", "bfloat16")
BUDGET = 0.005  # the largest loss of mAP@10 a faster precision may cost (issue 44)


def score(clips: list[np.ndarray], targets: np.ndarray, model) -> dict:
    """mAP@10 per system and precision, and the cosines between the two precisions' fused vectors."""
    vectors = {}
    for precision in PRECISIONS:
        model.precision = precision
        vectors[precision] = diverse_embed_systems(model, clips)
    model.precision = "float32"
    systems = [s for s in vectors["float32"] if s == FUSED or s.endswith(" branch")]
    scores = {s: {p: map_at_10(vectors[p][s], targets) for p in PRECISIONS} for s in systems}
    a, b = (vectors[p][FUSED] for p in PRECISIONS)
    cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"mAP@10": scores, "cosine": {"min": float(cosines.min()), "mean": float(cosines.mean())}}


def markdown(report: dict) -> str:
    lines = [
        "# bfloat16 against float32: retrieval",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}",
        "",
        "Leave-one-out mAP@10 (exact cosine search) with the networks in float32 and in bfloat16 "
        f"(`model.precision`); the change must stay within {BUDGET}. Cosine: between each clip's "
        "two fused vectors.",
        "",
        "| set | system | float32 | bfloat16 | change |",
        "|---|---|---|---|---|",
    ]
    worst = 0.0
    for name, result in report["sets"].items():
        for system, s in result["mAP@10"].items():
            change = s["bfloat16"] - s["float32"]
            worst = min(worst, change)
            lines.append(f"| {name} | {system} | {s['float32']:.3f} | {s['bfloat16']:.3f} | {change:+.3f} |")
    lines += ["", "| set | clips | cosine, min | cosine, mean |", "|---|---|---|---|"]
    for name, result in report["sets"].items():
        c = result["cosine"]
        lines.append(f"| {name} | {result['clips']} | {c['min']:.5f} | {c['mean']:.5f} |")
    lines += ["", f"Largest loss: {-worst:.3f} ({'within' if -worst <= BUDGET else 'OVER'} the {BUDGET} budget).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sets_arguments(parser, "a set")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="precision", help="output file name without extension")
    args = parser.parse_args(argv)
    sets = sets_of(args, parser)
    model, _ = resolve_model(args.model)
    if not native_bfloat16(model.device):
        parser.error("bfloat16 is not native on this machine: both runs would be float32")
    report = {
        "command": "python -m benchmarks.precision " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()[:16]})",
        "sets": {},
    }
    for labelled in sets:
        result = score(load_clips(labelled), labelled.targets(), model)
        report["sets"][labelled.name] = {"clips": len(labelled.paths), **result}
        print(labelled.name, result["mAP@10"][FUSED], result["cosine"], file=sys.stderr, flush=True)
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
