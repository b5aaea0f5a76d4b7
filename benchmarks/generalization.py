"""Does the embedding help on sounds its model never saw? Leave-one-out query by example on every
unseen clip set: the fused vector, each branch, each leave-one-branch-out fusion and the MFCC
mean+std baseline, side by side.

    python scripts/corpora.py --repos REPOS --esc50 ../shared/data/esc50 --output ~/data/corpora
    python -m benchmarks.generalization ~/data/corpora/unseen/*.csv --model diverse-embed-esc50

Each manifest (path,labels[,split]; paths relative to its folder) is one set, named by its file.
Writes generalization[_NAME].json/.md to --output-dir: mAP@10 per set and system, the fused
vector's multiple of the MFCC baseline, and whether it beats every single branch; the retrieval
benchmark's per-set figures (P@1, P@10, mAP@10, recall@10) in the JSON.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from diverse_embed import DEFAULT_MODEL, resolve_model

from . import retrieval
from .systems import AISFX, FUSED, MFCC, add_teacher_arguments, machine, manifest, teachers_of, write_results


def summary(reports: dict[str, dict]) -> dict[str, dict]:
    """Per set: mAP@10 of every system, the fused vector's multiple of MFCC, the best single branch."""
    rows = {}
    for name, report in reports.items():
        scores = {system: r["overall"]["mAP@10"] for system, r in report["systems"].items()}
        mfcc = scores[MFCC]
        branches = {s: v for s, v in scores.items() if s.endswith(" branch")}
        best_branch = max(branches, key=branches.get) if branches else None
        rows[name] = {
            "mAP@10": scores,
            "fused_over_mfcc": scores[FUSED] / mfcc if mfcc else float("inf"),
            "best_branch": best_branch,
            "fused_beats_every_branch": all(scores[FUSED] >= v for v in branches.values()),
        }
        if AISFX in scores:
            rows[name]["fused_beats_aisfx"] = scores[FUSED] >= scores[AISFX]
    return rows


def markdown(report: dict) -> str:
    sets = report["summary"]
    systems = list(next(iter(sets.values()))["mAP@10"])
    lines = [
        "# Generalization: retrieval on sets the model never saw",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}",
        "",
        "Leave-one-out query by example (exact inner product on L2-normalised clip vectors); "
        "mAP@10 per set. The last rows: the fused vector's multiple of the MFCC baseline, and "
        "whether it is at least every single branch.",
        "",
        "| system | "
        + " | ".join(f"{n} ({report['sets'][n]['clips']} clips, {report['sets'][n]['classes']} classes)" for n in sets)
        + " |",
        "|---" * (len(sets) + 1) + "|",
    ]
    for system in systems:
        lines.append(f"| {system} | " + " | ".join(f"{s['mAP@10'][system]:.3f}" for s in sets.values()) + " |")
    lines.append("| **fused / MFCC** | " + " | ".join(f"**{s['fused_over_mfcc']:.2f}x**" for s in sets.values()) + " |")
    lines.append(
        "| fused ≥ every branch | "
        + " | ".join("yes" if s["fused_beats_every_branch"] else f"no ({s['best_branch']})" for s in sets.values())
        + " |"
    )
    if all("fused_beats_aisfx" in s for s in sets.values()):
        lines.append(
            "| fused ≥ aisfx | " + " | ".join("yes" if s["fused_beats_aisfx"] else "no" for s in sets.values()) + " |"
        )
    lines += [
        "",
        "P@1 / P@10 of the fused vector and MFCC:",
        "",
        "| set | fused P@1 | fused P@10 | MFCC P@1 | MFCC P@10 |",
        "|---|---|---|---|---|",
    ]
    for name, r in report["sets"].items():
        fused, mfcc = r["systems"][FUSED]["overall"], r["systems"][MFCC]["overall"]
        lines.append(f"| {name} | {fused['P@1']:.3f} | {fused['P@10']:.3f} | {mfcc['P@1']:.3f} | {mfcc['P@10']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", nargs="+", type=Path, help="one CSV per unseen set")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"DiverseEmbedder to evaluate (default {DEFAULT_MODEL})")
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="generalization", help="output file name without extension")
    parser.add_argument("--cache-dir", type=Path, help="keep each system's vectors here, to rerun without embedding")
    add_teacher_arguments(parser)
    args = parser.parse_args(argv)

    model, _ = resolve_model(args.model)
    reports = {}
    for path in args.manifests:
        labelled = manifest(path)
        reports[labelled.name] = retrieval.run(labelled, model, args.model, None, args.cache_dir, teachers_of(args))
        print(
            f"{labelled.name}: fused mAP@10 {reports[labelled.name]['systems'][FUSED]['overall']['mAP@10']:.3f}",
            file=sys.stderr,
        )
    report = {
        "command": "python -m benchmarks.generalization " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()[:16]})",
        "summary": summary(reports),
        "sets": reports,
    }
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
