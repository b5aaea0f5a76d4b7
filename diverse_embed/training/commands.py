"""The `train` and `evaluate` commands. Their options are generated from TrainConfig and DataConfig
(training/config.py), so each is declared once; this module loads no torch until a command runs."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..options import add_options, from_options
from .config import DataConfig, TrainConfig

DESCRIPTION = """Train a model in the method's phases: the MobileNet of the neuralogram branch, then each
branch's transformer alone, then the fused head on frozen branches (and with --ablation-heads a head per
branch and per leave-one-out fusion), then optionally everything together (--finetune-epochs). The
output folder loads with from_pretrained, and with --model in every command."""


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diverse-embed train", description=DESCRIPTION)
    add_options(parser, TrainConfig)
    return parser


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diverse-embed evaluate",
        description="Metrics of a training output "
        "folder (fused head and ablation heads) on a dataset's val and test splits.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="a training output folder")
    add_options(parser, DataConfig)
    return parser


def parse(parser: argparse.ArgumentParser, kind, argv: list[str]):
    """`kind` from the command line; a value it refuses is a usage error (exit 2), as argparse's own are."""
    options = parser.parse_args(argv)
    try:
        return options, from_options(kind, options)
    except (TypeError, ValueError) as err:
        parser.error(str(err))


def run_train(args: argparse.Namespace) -> int:
    _, cfg = parse(train_parser(), TrainConfig, args.options)  # before torch: --help is quick
    from .train import train

    if cfg.progress:
        logging.getLogger("diverse_embed.training").setLevel(logging.INFO)  # the training log lines
    result = train(cfg)
    if "stopped_at_step" in result:
        print(
            f"stopped after step {result['stopped_at_step']} as asked; --resume goes on from the checkpoint",
            file=sys.stderr,
        )
    elif "results" in result and os.environ.get("RANK", "0") == "0":  # once, not by every torchrun rank
        print("\n".join(summary(result, cfg.output)))
    return 0


def summary(metrics: dict, output: str) -> list[str]:
    """What a person reads at the end of a run: the fused head's scores, where the model is, how to use it."""
    lines = [f"trained in {metrics['wall_seconds']:.0f} s: {output}"]
    for split, result in metrics["results"].items():
        fused = result["systems"]["fused"]
        accuracy = "" if fused["accuracy"] is None else f", accuracy {fused['accuracy']:.3f}"
        lines.append(f"{split} ({result['clips']} clips): macro mAP {fused['macro_map']:.3f}{accuracy}")
    return lines + [
        f"every table: {output}/metrics.md",
        "use it:",
        f"  diverse-embed tag FILES --model {output}",
        f"  diverse-embed embed FILES -o embeddings.npz --model {output}",
        f"  DiverseEmbedder.from_pretrained({str(output)!r})",
    ]


def run_evaluate(args: argparse.Namespace) -> int:
    options, cfg = parse(evaluate_parser(), DataConfig, args.options)
    from .evaluate import evaluate_run, metrics_markdown

    print(metrics_markdown(evaluate_run(options.run_dir, cfg)))
    return 0
