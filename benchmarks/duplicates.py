"""Near-duplicate groups on ESC-50, where the takes A, B, C... of one source recording are real
near-duplicates (cut from the same Freesound clip), and everything else is not.

    python -m benchmarks.duplicates   # benchmarks/results/duplicates.{json,md}

Builds an index of the 2,000 clips with the default model (or reuses --index), runs
`AudioIndex.duplicates` at several thresholds and numbers of mutual neighbours (2000: any file,
similarity alone) and counts pairs: a pair of files put in one group
is right when both come from the same source recording. Precision = right pairs / pairs grouped;
recall = right pairs / all same-source pairs.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
from collections import Counter
from pathlib import Path

from diverse_embed import AudioIndex, resolve_model
from diverse_embed.config import DEFAULT_MODEL

from .systems import machine, write_results

THRESHOLDS = (0.8, 0.9, 0.95, 0.98)
NEIGHBOURS = (1, 2, 3, 2000)  # 2000: every file, i.e. similarity alone


def source_of(path: str) -> str:
    """ESC-50 names files {fold}-{source clip}-{take}-{class}: the source clip is the recording."""
    return Path(path).stem.split("-")[1]


def pair_counts(groups: list[list[tuple[str, float]]]) -> tuple[int, int]:
    grouped = right = 0
    for group in groups:
        for (a, _), (b, _) in itertools.combinations(group, 2):
            grouped += 1
            right += source_of(a) == source_of(b)
    return grouped, right


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", default="../shared/data/esc50")
    parser.add_argument("--index", help="an index of the ESC-50 audio to reuse (default: build one)")
    parser.add_argument("--output", default="benchmarks/results/duplicates", help="path stem for .json and .md")
    args = parser.parse_args(argv)

    with open(Path(args.esc50) / "meta" / "esc50.csv") as f:
        names = [row["filename"] for row in csv.DictReader(f)]
    sources = Counter(source_of(n) for n in names)
    same_source_pairs = sum(n * (n - 1) // 2 for n in sources.values())
    with tempfile.TemporaryDirectory() as temp:
        if args.index:
            index = AudioIndex(args.index)
        else:
            model, name = resolve_model(DEFAULT_MODEL)
            index = AudioIndex.create(Path(temp) / "esc50", model, name)
            index.add([Path(args.esc50) / "audio" / n for n in names], model, commit_every=500)
        rows = []
        for neighbours, threshold in itertools.product(NEIGHBOURS, THRESHOLDS):
            groups = index.duplicates(threshold, neighbours)
            grouped, right = pair_counts(groups)
            rows.append(
                {
                    "neighbours": neighbours,
                    "threshold": threshold,
                    "groups": len(groups),
                    "files": sum(map(len, groups)),
                    "pairs": grouped,
                    "right_pairs": right,
                    "precision": right / grouped if grouped else None,
                    "recall": right / same_source_pairs,
                }
            )
            print(rows[-1], flush=True)
        model_name = index.model_name
    report = {
        "machine": machine(),
        "command": "python -m benchmarks.duplicates" + (f" {' '.join(argv)}" if argv else ""),
        "model": model_name,
        "files": len(names),
        "recordings_with_several_takes": sum(n > 1 for n in sources.values()),
        "same_source_pairs": same_source_pairs,
        "rows": rows,
    }
    lines = [
        f"# Near-duplicate groups on ESC-50 ({report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{len(names)} clips, model {model_name}; {report['recordings_with_several_takes']} source recordings have "
        f"several takes, {same_source_pairs} same-source pairs in all. A grouped pair is right when both files "
        "come from one source recording.",
        "",
        "| mutual neighbours | threshold | groups | files in groups | pairs grouped | precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        precision = "-" if r["precision"] is None else f"{r['precision']:.3f}"
        lines.append(
            f"| {r['neighbours']} | {r['threshold']} | {r['groups']} | {r['files']} | {r['pairs']} | {precision} | {r['recall']:.3f} |"
        )
    write_results(args.output, report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
