"""Query-by-example retrieval: every clip queries all the others through an exact FAISS index.

    python -m benchmarks.retrieval --esc50 ../shared/data/esc50 --folds 5
    python -m benchmarks.retrieval --esc50 ../shared/data/esc50 --folds 5 --clap laion/clap-htsat-unfused
    python -m benchmarks.retrieval --fsd50k /data/FSD50K --clap laion/clap-htsat-unfused
    python -m benchmarks.retrieval --manifest clips.csv --audio-root clips/

Leave-one-out: a clip's own vector is removed from its hits; a hit is relevant when it shares a
label with the query. Reported per system, overall and per class (a class's figures average the
queries that carry it): P@1, P@10, mAP@10 (average precision over the first 10 hits, divided by
min(10, relevant clips)) and recall@10 (relevant hits in the first 10 / relevant clips), and P@k
for k = 1..20 as a plot. Every system's vectors are L2-normalised and searched by inner product
in the same `faiss.IndexFlatIP` that `diverse-embed index build --index-type flat` uses.

Writes NAME.json, NAME.md and NAME.png to --output-dir (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import time
from pathlib import Path

from diverse_embed import DiverseEmbedder, resolve_model
from diverse_embed.metrics import leave_one_out_neighbours, retrieval_metrics

from .systems import LabelledSet, add_arguments, all_systems, load_set, machine, teachers_of, write_results

K_MAX = 20


def run(
    labelled: LabelledSet,
    model: DiverseEmbedder,
    model_name: str,
    clap: str | None,
    cache_dir: Path | None = None,
    teachers: dict[str, str] | None = None,
) -> dict:
    started = time.perf_counter()
    vectors, descriptions = all_systems(labelled, model, model_name, clap, cache_dir, teachers)
    embed_seconds = time.perf_counter() - started
    targets = labelled.targets()
    results = {}
    for name, v in vectors.items():
        metrics = retrieval_metrics(leave_one_out_neighbours(v, K_MAX), targets)
        metrics["per_class"] = {labelled.vocabulary[c]: m for c, m in metrics["per_class"].items()}
        results[name] = {"description": descriptions[name], "dimension": int(v.shape[1]), **metrics}
    return {
        "dataset": labelled.name,
        "clips": len(labelled.paths),
        "classes": len(labelled.vocabulary),
        "embedding_seconds": round(embed_seconds, 1),
        "systems": results,
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Retrieval on {report['dataset']} ({report['clips']} clips, {report['classes']} classes)",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}  ",
        f"CLAP: {report['clap'] or 'not run (no --clap given)'}",
        "",
        "Leave-one-out query by example, exact FAISS inner product on L2-normalised vectors.",
        "",
        "| system | dim | P@1 | P@10 | mAP@10 | recall@10 |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["systems"].items():
        o = r["overall"]
        lines.append(
            f"| {name} | {r['dimension']} | {o['P@1']:.3f} | {o['P@10']:.3f} | {o['mAP@10']:.3f} | {o['recall@10']:.3f} |"
        )
    first = next(iter(report["systems"]))
    lines += [
        "",
        "## Per class: mAP@10",
        "",
        "| class | " + " | ".join(_short(n) for n in report["systems"]) + " |",
        "|---" * (len(report["systems"]) + 1) + "|",
    ]
    for label in report["systems"][first]["per_class"]:
        row = [f"{r['per_class'].get(label, {}).get('mAP@10', float('nan')):.3f}" for r in report["systems"].values()]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _short(name: str) -> str:
    if name.startswith("CLAP"):
        return "CLAP"
    if name.startswith("diverse-embed"):
        return name.split("(")[1].rstrip(")").replace(" over chunks", "")
    return name.replace(" branch", "").replace("fused without ", "-").split(" (")[0]


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.cm.tab20.colors  # 20 distinct colours: no two systems share one
    for number, (name, r) in enumerate(report["systems"].items()):
        style = "-" if ("fused" in name or name.startswith(("CLAP", "MFCC"))) and "without" not in name else ":"
        ax.plot(
            range(1, len(r["overall"]["P@k"]) + 1),
            r["overall"]["P@k"],
            style,
            marker=".",
            label=name,
            color=colours[(2 * number) % 20 + (2 * number) // 20],
        )
    ax.set_xlabel("k (hits)")
    ax.set_ylabel("precision at k")
    ax.set_xticks(range(1, K_MAX + 1))
    ax.set_title(f"Query by example on {report['dataset']} ({report['clips']} clips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, "retrieval", folds=True)
    args = parser.parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:  # said before the run, not after it (it draws the plot)
        parser.error("matplotlib is missing: the benchmarks need their extra, pip install 'diverse-embed[benchmarks]'")

    labelled = load_set(args)
    model, _ = resolve_model(args.model)
    report = run(labelled, model, args.model, args.clap, args.cache_dir, teachers_of(args))
    report.update(
        command="python -m benchmarks.retrieval " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        machine=machine(),
        model=f"{args.model} (fingerprint {model.fingerprint()[:16]})",
        clap=args.clap,
    )
    name = args.name or f"retrieval_{labelled.name}"
    write_results(args.output_dir / name, report, markdown(report))
    plot(report, args.output_dir / f"{name}.png")
    print(markdown(report).split("## Per class")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
