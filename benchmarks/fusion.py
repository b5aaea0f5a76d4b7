"""Ways to fuse the branch vectors, measured on the unseen sets: which fusion keeps the best branch?

    python -m benchmarks.fusion ~/data/corpora/unseen/*.csv --model M --cache-dir DIR

Every variant is computed from the same clip vectors as benchmarks/generalization.py (the mean
of the chunks' branch vectors; with the same --cache-dir nothing is embedded again) and scored the
same way: leave-one-out mAP@10, exact cosine search. Variants:
- concatenated: the model's fused vector, the paper's fusion;
- centred on the set: minus the mean of the collection searched (what an index of it could do);
- centred on the other sets: minus the mean of the other sets' vectors (no use of the set scored);
- each branch L2-normalised, and each branch centred on the set then L2-normalised;
- whitened on the other sets: PCA whitening fitted on the other sets' vectors.
Writes fusion[_NAME].json/.md to --output-dir.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from diverse_embed import DEFAULT_MODEL
from diverse_embed.resolve import resolve_model

from .systems import FUSED, all_systems, machine, manifest, map_at_10, write_results


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def whitened(x: np.ndarray, fitted_on: np.ndarray, floor: float = 0.1) -> np.ndarray:
    """x (n, d) whitened by the PCA of `fitted_on`, each eigenvalue floored at `floor` x the largest."""
    mean = fitted_on.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((fitted_on - mean).T))  # (d,), (d, d)
    return (x - mean) @ (vectors / np.sqrt(values + floor * values.max()))


def variants(fused: np.ndarray, branches: list[np.ndarray], others: np.ndarray) -> dict[str, np.ndarray]:
    """fused (n, 256), branches [(n, 64)] in fused's column order, others (m, 256): the other sets."""
    return {
        "concatenated (the model's fused vector)": fused,
        "centred on the set": fused - fused.mean(axis=0),
        "centred on the other sets": fused - others.mean(axis=0),
        "each branch L2-normalised": np.concatenate([unit(b) for b in branches], axis=1),
        "each branch centred on the set, L2-normalised": np.concatenate(
            [unit(b - b.mean(axis=0)) for b in branches], axis=1
        ),
        "whitened on the other sets": whitened(fused, others),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", nargs="+", type=Path, help="one CSV per unseen set (two at least)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="fusion", help="output file name without extension")
    parser.add_argument("--cache-dir", type=Path, help="the vectors of benchmarks/generalization.py, kept here")
    args = parser.parse_args(argv)
    if len(args.manifests) < 2:
        parser.error("two sets at least: some variants are fitted on the other sets")
    model, _ = resolve_model(args.model)
    names = model.config.branches
    sets = {}
    for path in args.manifests:
        labelled = manifest(path)
        vectors, _ = all_systems(labelled, model, args.model, None, args.cache_dir)
        sets[labelled.name] = (vectors[FUSED], [vectors[f"{b} branch"] for b in names], labelled.targets())
    scores: dict[str, dict[str, float]] = {}
    for name, (fused, branches, targets) in sets.items():
        others = np.concatenate([f for other, (f, _, _) in sets.items() if other != name])
        for variant, x in variants(fused, branches, others).items():
            scores.setdefault(variant, {})[name] = round(map_at_10(x, targets), 4)
    report = {
        "command": "python -m benchmarks.fusion " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()[:16]})",
        "mAP@10": scores,
    }
    lines = [
        "# Fusion variants on the unseen sets",
        "",
        f"Command: `{report['command']}`  ",
        f"Model: {report['model']}",
        "",
        "Leave-one-out mAP@10, exact cosine search.",
        "",
        "| fusion | " + " | ".join(sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    lines += [f"| {variant} | " + " | ".join(f"{row[s]:.3f}" for s in sets) + " |" for variant, row in scores.items()]
    text = "\n".join(lines) + "\n"
    write_results(args.output_dir / args.name, report, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
