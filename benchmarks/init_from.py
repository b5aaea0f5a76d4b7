"""`train --init-from`: a pretrained model's branches with a new head for your labels, against a
model trained from scratch on the same clips, through the command line as a user runs it.

    python -m benchmarks.init_from --esc50 ../shared/data/esc50

Task 1, new labels on few clips: ESC-50's five major categories (animals, natural soundscapes,
human non-speech, interior/domestic, exterior/urban: a label set no bundled model was trained on),
10 training clips of each from fold 4 and 20 held-out clips of each from fold 5 (folds the bundled
models never trained on). Both runs select on nothing (--no-select-on-val), and are scored on the
held-out clips: clip accuracy of the fused head. The from-scratch run gets at least the time the
init-from run needed (`--scratch-epochs` per phase; its wall time is reported beside).

Task 2, the linear probe's task: ESC-50's 50 classes, train folds 1-3, select on 4, test on 5,
with --init-from and the fusion phase alone: the fused head's fold-5 accuracy, to set beside
`benchmarks/linear_probe.py`'s fold-5 column (logistic regression on the same frozen vectors).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diverse_embed import DEFAULT_MODEL

from .systems import machine, write_results

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CATEGORIES = {  # ESC-50's target numbers by major category (its README): 0-9 animals, 10-19 natural, ...
    "animals": range(0, 10),
    "natural": range(10, 20),
    "human": range(20, 30),
    "domestic": range(30, 40),
    "urban": range(40, 50),
}


def few_clips_manifest(esc50: Path, path: Path, per_category: int = 10, held_out: int = 20) -> None:
    with open(esc50 / "meta" / "esc50.csv") as f:
        rows = list(csv.DictReader(f))
    category = {t: name for name, targets in CATEGORIES.items() for t in targets}
    lines = ["path,labels,split"]
    for name in CATEGORIES:
        mine = [r for r in rows if category[int(r["target"])] == name]
        train = [r for r in mine if r["fold"] == "4"][::8][:per_category]  # spread over its 80 fold-4 clips
        test = [r for r in mine if r["fold"] == "5"][::2][:held_out]
        lines += [f"{r['filename']},{name},train" for r in train] + [f"{r['filename']},{name},test" for r in test]
    path.write_text("\n".join(lines) + "\n")


def esc50_manifest(esc50: Path, path: Path) -> None:
    """The folds as splits, as scripts/esc50_manifest.py writes them."""
    with open(path, "w") as f:
        subprocess.run([sys.executable, str(SCRIPTS / "esc50_manifest.py"), str(esc50)], stdout=f, check=True)


def train(args: list[str], output: Path) -> dict:
    """One `diverse-embed train` run; its fused head's test accuracy and wall time."""
    command = [sys.executable, "-m", "diverse_embed.cli", "train", *args, "--output", str(output), "--quiet"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    metrics = json.loads((output / "metrics.json").read_text())
    fused = metrics["results"]["test"]["systems"]["fused"]
    return {
        "command": shlex.join(["diverse-embed", *command[3:]]),
        "wall_seconds": round(seconds, 1),
        "accuracy": fused["accuracy"],
        "macro_map": fused["macro_map"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--scratch-epochs", type=int, default=8, help="epochs of each from-scratch phase")
    parser.add_argument("--skip-probe-task", action="store_true", help="task 1 only")
    parser.add_argument("--output", default="benchmarks/results/init_from")
    options = parser.parse_args(argv)
    report = {
        "command": shlex.join(["python", "-m", "benchmarks.init_from", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "model": options.model,
    }
    with tempfile.TemporaryDirectory(prefix="init-from-") as temp:
        temp = Path(temp)
        few = temp / "few.csv"
        few_clips_manifest(options.esc50, few)
        common = [
            "--dataset",
            "csv",
            "--manifest",
            str(few),
            "--audio-root",
            str(options.esc50 / "audio"),
            "--train-splits",
            "train",
            "--val-splits",
            "none",
            "--test-splits",
            "test",
            "--no-select-on-val",
            "--cache-dir",
            str(temp / "cache"),
        ]
        report["few_clips"] = {
            "init_from": train([*common, "--init-from", options.model], temp / "init"),
            "from_scratch": train(
                [*common, *[f"--{p}-epochs={options.scratch_epochs}" for p in ("neuralogram", "branch")]],
                temp / "scratch",
            ),
        }
        if not options.skip_probe_task:
            full = temp / "esc50.csv"
            esc50_manifest(options.esc50, full)
            esc50 = [
                "--dataset",
                "csv",
                "--manifest",
                str(full),
                "--audio-root",
                str(options.esc50 / "audio"),
                "--test-splits",
                "5",
                "--cache-dir",
                str(temp / "cache"),
                "--init-from",
                options.model,
            ]
            report["esc50_fold5"] = train([*esc50, "--train-splits", "1,2,3", "--val-splits", "4"], temp / "esc50")
            # The probe's own final fit: every other fold, nothing held out to select on.
            report["esc50_fold5_all_folds"] = train(
                [*esc50, "--train-splits", "1,2,3,4", "--val-splits", "none", "--no-select-on-val"], temp / "esc50_all"
            )
    write_results(options.output, report, markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    few = report["few_clips"]
    lines = [
        "# `train --init-from` against training from scratch",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Pretrained model: {report['model']}",
        "",
        "ESC-50's five major categories, 10 training clips each (fold 4), 100 held-out clips (fold 5):",
        "",
        "| run | held-out accuracy | held-out macro mAP | wall time (s) |",
        "|---|---|---|---|",
    ]
    for name, run in [("init-from, head only", few["init_from"]), ("from scratch", few["from_scratch"])]:
        lines.append(f"| {name} | {run['accuracy']:.3f} | {run['macro_map']:.3f} | {run['wall_seconds']:.0f} |")
    lines += ["", *[f"- {name}: `{run['command']}`" for name, run in few.items()]]
    if "esc50_fold5" in report:
        lines += [
            "",
            "ESC-50's 50 classes, head only, tested on fold 5 (the linear probe's fold-5 task; the probe "
            "chooses its regularisation on fold 4, then fits on folds 1-4):",
            "",
            "| head trained on | fold-5 accuracy | fold-5 macro mAP | wall time (s) |",
            "|---|---|---|---|",
        ]
        runs = [
            ("folds 1-3, best epoch on fold 4", report["esc50_fold5"]),
            ("folds 1-4, last epoch", report["esc50_fold5_all_folds"]),
        ]
        lines += [
            f"| {name} | {run['accuracy']:.3f} | {run['macro_map']:.3f} | {run['wall_seconds']:.0f} |"
            for name, run in runs
        ]
        lines += ["", *[f"- `{run['command']}`" for _, run in runs]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
