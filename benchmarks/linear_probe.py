"""Linear probe: logistic regression on frozen clip embeddings, the same for every system.

    python -m benchmarks.linear_probe --esc50 ../shared/data/esc50
    python -m benchmarks.linear_probe --esc50 ../shared/data/esc50 --clap laion/clap-htsat-unfused
    python -m benchmarks.linear_probe --fsd50k /data/FSD50K
    python -m benchmarks.linear_probe --manifest clips.csv --audio-root clips/   # splits train, val, test

ESC-50: 5-fold cross-validation over its official folds. For test fold f the validation fold is
the one before it (f=5: validate on 4, train on 1-3, the split the bundled model was trained
with), the regularisation C is chosen on it, then the probe is refitted on all four other folds
and scored on f: accuracy. FSD-50K layout (or a manifest with train/val/test splits): one-vs-rest
probes fitted on train, C chosen on val by macro mAP, scored on eval/test: macro mAP.

Every system: standardised features, scikit-learn LogisticRegression (lbfgs), C from
{0.01, 0.1, 1, 10}. Writes NAME.json and NAME.md to --output-dir.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from diverse_embed import resolve_model
from diverse_embed.metrics import macro_map

from .systems import LabelledSet, add_arguments, all_systems, load_set, machine, teachers_of, write_results

C_GRID = (0.01, 0.1, 1.0, 10.0)


def probe(C: float, multi_label: bool):
    classifier = LogisticRegression(C=C, max_iter=1000)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if multi_label else classifier)


def single_label_cv(x: np.ndarray, labelled: LabelledSet) -> dict:
    """Cross-validation over the set's groups (ESC-50 folds): accuracy per test fold."""
    y = np.array([labels[0] for labels in labelled.labels])
    groups = np.array(labelled.groups)
    folds = sorted(set(groups))
    per_fold, chosen = {}, {}
    for i, test in enumerate(folds):
        val = folds[i - 1]
        train = (groups != test) & (groups != val)
        scores = {
            C: accuracy_score(y[groups == val], probe(C, False).fit(x[train], y[train]).predict(x[groups == val]))
            for C in C_GRID
        }
        best = max(scores, key=scores.get)
        fitted = probe(best, False).fit(x[groups != test], y[groups != test])
        per_fold[test] = float(accuracy_score(y[groups == test], fitted.predict(x[groups == test])))
        chosen[test] = best
    values = list(per_fold.values())
    return {
        "metric": "accuracy",
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "per_fold": per_fold,
        "C": chosen,
    }


def split_probe(x: np.ndarray, labelled: LabelledSet, train: str, val: str, test: tuple[str, ...]) -> dict:
    """Fit on train, choose C on val by macro mAP, report macro mAP on test."""
    y = labelled.targets()
    groups = np.array(labelled.groups)
    tr, va, te = groups == train, groups == val, np.isin(groups, test)
    if not (tr.any() and va.any() and te.any()):
        raise SystemExit(f"need clips in splits {train!r}, {val!r} and {test}; have {sorted(set(groups))}")
    fitted = {C: probe(C, True).fit(x[tr], y[tr]) for C in C_GRID}
    scores = {C: macro_map(y[va], model.predict_proba(x[va])) for C, model in fitted.items()}
    best = max(scores, key=scores.get)
    return {"metric": "macro mAP", "mean": float(macro_map(y[te], fitted[best].predict_proba(x[te]))), "C": best}


def markdown(report: dict) -> str:
    lines = [
        f"# Linear probe on {report['dataset']} ({report['clips']} clips)",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}  ",
        f"CLAP: {report['clap'] or 'not run (no --clap given)'}",
        "",
    ]
    first = next(iter(report["systems"].values()))
    if "per_fold" in first:
        folds = list(first["per_fold"])
        lines += [
            report["note"],
            "",
            "| system | accuracy (mean ± std) | " + " | ".join(f"fold {f}" for f in folds) + " |",
            "|---|---|" + "---|" * len(folds),
        ]
        for name, r in report["systems"].items():
            lines.append(
                f"| {name} | {r['mean']:.3f} ± {r['std']:.3f} | "
                + " | ".join(f"{r['per_fold'][f]:.3f}" for f in folds)
                + " |"
            )
    else:
        lines += ["| system | macro mAP | C |", "|---|---|---|"]
        for name, r in report["systems"].items():
            lines.append(f"| {name} | {r['mean']:.3f} | {r['C']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, "linear_probe", folds=False)  # the probe always uses every ESC-50 fold
    args = parser.parse_args(argv)

    labelled = load_set(args, fsd50k_splits=("train", "val", "eval"))
    model, _ = resolve_model(args.model)
    started = time.perf_counter()
    vectors, descriptions = all_systems(labelled, model, args.model, args.clap, args.cache_dir, teachers_of(args))
    results = {}
    for name, x in vectors.items():
        if args.esc50:
            results[name] = single_label_cv(x, labelled)
        elif args.fsd50k:
            # FSD-50K's own validation split is part of dev: read_fsd50k names it "val".
            results[name] = split_probe(x, labelled, "train", "val", ("eval",))
        else:
            results[name] = split_probe(x, labelled, "train", "val", ("test", "eval"))
        results[name]["description"] = descriptions[name]
    report = {
        "dataset": labelled.name,
        "clips": len(labelled.paths),
        "seconds": round(time.perf_counter() - started, 1),
        "command": "python -m benchmarks.linear_probe " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()[:16]})",
        "clap": args.clap,
        "note": (
            "Folds 1-4 were the bundled model's training and validation folds: only the fold-5 column "
            "is free of that, the mean over folds is optimistic for the DiverseEmbedder rows."
            if args.esc50
            else ""
        ),
        "systems": results,
    }
    name = args.name or f"linear_probe_{labelled.name}"
    write_results(args.output_dir / name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
