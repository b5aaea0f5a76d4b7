"""How well `tag` names sounds: top-1 of the head's labels, as `diverse-embed tag` and `model.tag` give them.

    python -m benchmarks.tagging --esc50 ../shared/data/esc50 --model M [--expect SET.csv=LABEL ...]

- ESC-50 folds 4-5 (never trained on by the bundled models): top-1 accuracy within the model's
  esc50 labels, and, where the model has a `general` corpus, top-1 accuracy of its general label
  against each clip's ESC-50 major category (animal, nature, human, domestic, urban).
- Each `--expect SET.csv=LABEL` (a set the model never saw, e.g. speech): the share of its clips
  whose top general label is LABEL, and the labels given most often instead.
Writes NAME.json/.md (default tagging) to --output-dir.
"""

from __future__ import annotations

import argparse
import collections
import shlex
import sys
from pathlib import Path

import numpy as np

from diverse_embed import DEFAULT_MODEL
from diverse_embed.labels import ESC50_CATEGORIES, GENERAL, clip_tags, esc50_categories, label_corpora
from diverse_embed.resolve import resolve_model

from .systems import esc50, load_clips, machine, manifest, write_results


def best_labels(outputs: list, config, corpus: str) -> list[str]:
    """Each embedded clip's best label within `corpus`, without the corpus prefix."""
    return [clip_tags(out, config, 1, corpus)[corpus][0][0].split("/", 1)[1] for out in outputs]


def esc50_report(model, root: Path, folds: list[str]) -> dict:
    labelled = esc50(root, folds)
    outputs = model.embed_batch(load_clips(labelled), model.config.sample_rate)  # once, for every label set
    names = [labelled.vocabulary[labels[0]] for labels in labelled.labels]
    given = best_labels(outputs, model.config, "esc50")
    report = {"clips": len(outputs), "esc50_top1": float(np.mean([a == b for a, b in zip(given, names)]))}
    if GENERAL in set(label_corpora(model.config.label_names()) or []):
        category = esc50_categories(root / "meta" / "esc50.csv")
        truth = [category[name] for name in names]
        given = best_labels(outputs, model.config, GENERAL)
        report["general_top1"] = float(np.mean([a == b for a, b in zip(given, truth)]))
        report["general_per_category"] = {
            c: float(np.mean([g == c for g, t in zip(given, truth) if t == c])) for c in ESC50_CATEGORIES if c in truth
        }
    return report


def expect_report(model, csv: Path, label: str) -> dict:
    given = best_labels(model.embed_batch(load_clips(manifest(csv)), model.config.sample_rate), model.config, GENERAL)
    return {
        "clips": len(given),
        "expected": label,
        "share": float(np.mean([g == label for g in given])),
        "given": dict(collections.Counter(given).most_common(4)),
    }


def markdown(report: dict) -> str:
    e = report["esc50"]
    lines = [
        "# Tagging: the head's top-1 label",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}",
        "",
        f"ESC-50 folds {report['folds']} ({e['clips']} clips, never trained on):",
        "",
        "| labels | top-1 accuracy |",
        "|---|---|",
        f"| esc50 (50 classes) | {e['esc50_top1']:.3f} |",
    ]
    if "general_top1" in e:
        lines.append(f"| general, against ESC-50's major category | {e['general_top1']:.3f} |")
        lines += [
            "",
            "| category | " + " | ".join(ESC50_CATEGORIES) + " |",
            "|---|" + "---|" * 5,
            "| general top-1 | "
            + " | ".join(
                f"{e['general_per_category'][c]:.3f}" if c in e["general_per_category"] else "no clips"
                for c in ESC50_CATEGORIES
            )
            + " |",
        ]
    if report["expect"]:
        lines += [
            "",
            "Sets never seen, and the general label expected of them:",
            "",
            "| set | clips | expected | share tagged so | tagged most often |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {r['clips']} | {r['expected']} | {r['share']:.3f} | "
            + ", ".join(f"{k} {v}" for k, v in r["given"].items())
            + " |"
            for name, r in report["expect"].items()
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", type=Path, required=True, help="ESC-50 folder (meta/esc50.csv, audio/)")
    parser.add_argument("--folds", default="4,5")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="SET.csv=LABEL",
        help="a manifest (path,labels) of a set never trained on, and the general label its clips should get",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="tagging", help="output file name without extension")
    args = parser.parse_args(argv)
    model, _ = resolve_model(args.model)
    report = {
        "command": "python -m benchmarks.tagging " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()})",
        "folds": args.folds,
        "esc50": esc50_report(model, args.esc50, args.folds.split(",")),
        "expect": {},
    }
    has_general = "general_top1" in report["esc50"]
    for item in args.expect if has_general else []:
        csv, _, label = item.rpartition("=")
        report["expect"][Path(csv).stem] = expect_report(model, Path(csv), label)
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
