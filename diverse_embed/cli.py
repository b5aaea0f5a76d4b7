"""The `diverse-embed` command line: its parser and `main`, and the commands of the core (`embed`,
`tag`); search's commands are in search/commands.py, training's in training/commands.py.

Each command imports what it needs when it runs: `--help` loads no torch and no training code, and a
plain install runs every command.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import json
import sys
from pathlib import Path

from . import __version__
from .console import CommandError, add_embedding_arguments, add_model_arguments, find_inputs, load_model, say
from .options import positive_int


def run_embed(args: argparse.Namespace) -> int:
    """An .npz of clip vectors, or with a .parquet output a table of clip (and --segments) rows."""
    import numpy as np

    from .audio import AudioLoadError

    output_path = Path(args.output)
    parquet = output_path.suffix.lower() == ".parquet"
    if args.segments and not parquet:
        raise CommandError("--segments writes one row per 1-s segment: give a .parquet --output")
    paths = find_inputs(args.inputs)
    model, model_name = load_model(args.model, args.device, args.quiet)
    embedded, skipped = [], 0

    def rows():  # (paths, starts, ends, vectors) per embedded file
        nonlocal skipped
        for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
            if isinstance(output, AudioLoadError):
                skipped += 1
                say(f"skipped {output}")
                continue
            embedded.append(str(path))
            starts, ends, vectors = output.rows(model.config.chunk_seconds, args.segments)
            yield [str(path)] * len(vectors), starts, ends, vectors

    if parquet:
        from .search.parquet import write_parquet

        batches = rows()
        first = next(batches, None)  # nothing embeddable: write nothing
        if first is not None:
            written = write_parquet(output_path, itertools.chain([first], batches),
                                    model.embedding_dim, model_name, model.fingerprint())
    else:
        vectors = [vectors[0] for _, _, _, vectors in rows()]
        if embedded:
            output_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(output_path, embeddings=np.stack(vectors),  # (N, embedding_dim) float32, L2-normalised
                     paths=np.array(embedded), model=np.array(model_name), fingerprint=np.array(model.fingerprint()))
            written = len(embedded)
    if not embedded:
        say(f"error: none of the {len(paths)} file(s) could be embedded; nothing written")
        return 1
    print(f"embedded {len(embedded)} file(s) into {output_path} ({written}, {model.embedding_dim})"
          + (f"; skipped {skipped} unreadable file(s)" if skipped else ""))
    return 0


def run_tag(args: argparse.Namespace) -> int:
    """The head's top labels per file (and per 1-s segment): JSON Lines with --json."""
    import numpy as np

    from .audio import AudioLoadError
    from .labels import label_corpora, label_scores, labels_of_corpus, largest_corpus

    paths = find_inputs(args.inputs)
    model, model_name = load_model(args.model, args.device, args.quiet)
    config = model.config
    vocabulary = config.label_names()
    if not vocabulary:
        raise CommandError(f"model {model_name} has no label names (id2label): its head was not trained on named "
                           "classes, so there is nothing to tag with")
    corpus = args.corpus or largest_corpus(vocabulary)
    if args.corpus is None and corpus is not None and not args.quiet:
        say(f"labels of corpus {corpus} (the model's largest label set); --corpus NAME for another "
            f"({', '.join(sorted(set(label_corpora(vocabulary))))}), --corpus all for every corpus")
    try:
        shown = np.arange(len(vocabulary)) if corpus in (None, "all") else labels_of_corpus(vocabulary, corpus)
    except ValueError as err:
        raise CommandError(f"model {model_name} has {err}") from None

    def top(scores: np.ndarray) -> list[tuple[str, float]]:  # scores (labels,) -> the best k shown
        best = shown[np.argsort(-scores[shown], kind="stable")[: args.k]]
        return [(vocabulary[int(i)], float(scores[i])) for i in best]

    failed = 0
    for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
        if isinstance(output, AudioLoadError):
            failed += 1
            say(f"skipped {output}")
            if args.json:
                print(json.dumps({"path": str(path), "error": output.reason}))
            continue
        scores = label_scores(output.chunk_logits, vocabulary, config.problem_type)  # (chunks, labels)
        labels = top(scores.mean(axis=0))  # a clip's prediction: the mean of its chunks' (the method's rule)
        segments = [(float(t), float(min(t + config.chunk_seconds, output.duration)), top(row))
                    for t, row in zip(output.chunk_times, scores)] if args.segments else []
        print_tags(path, labels, segments, args.json)
    return 1 if failed else 0


def print_tags(path, labels: list[tuple[str, float]], segments: list, as_json: bool) -> None:
    """One file's labels, and its segments' (start, end, labels) when asked: a JSON line or text."""
    if as_json:
        record = {"path": str(path), "labels": [{"label": n, "score": round(s, 4)} for n, s in labels]}
        if segments:
            record["segments"] = [{"start": a, "end": b, "labels": [{"label": n, "score": round(s, 4)} for n, s in t]}
                                  for a, b, t in segments]
        print(json.dumps(record))
        return
    print(f"{path}: " + ", ".join(f"{n} {s:.2f}" for n, s in labels))
    for a, b, t in segments:
        print(f"  {a:6.1f}-{b:.1f} s: " + ", ".join(f"{n} {s:.2f}" for n, s in t))


def run_training(args: argparse.Namespace) -> int:
    from .training import commands

    return commands.run_train(args) if args.command == "train" else commands.run_evaluate(args)


def build_parser() -> argparse.ArgumentParser:
    from .search.commands import add_commands as add_search_commands

    parser = argparse.ArgumentParser(prog="diverse-embed", description="Audio embeddings from four small transformers: "
                                     "embed files, build and search indexes, train and evaluate models.")
    parser.add_argument("--version", action="version", version=f"diverse-embed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser("embed", help="embed audio files into an .npz or a Parquet table of L2-normalised vectors")
    embed.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    embed.add_argument("--output", "-o", required=True,
                       help="an .npz (embeddings, paths) or a .parquet table (path, start, end, model, fingerprint, vector)")
    embed.add_argument("--segments", action="store_true", help="with a .parquet output: also a row per 1-s segment")
    add_model_arguments(embed)
    add_embedding_arguments(embed)
    embed.set_defaults(run=run_embed)

    tag = commands.add_parser("tag", help="the model's top labels for each file (models with label names)")
    tag.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    tag.add_argument("-k", type=positive_int, default=5, help="labels per file or segment (default 5)")
    tag.add_argument("--segments", action="store_true", help="also the labels of every 1-s segment")
    tag.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    tag.add_argument("--corpus", help="a multi-corpus model's labels (CORPUS/LABEL) of this corpus only, or 'all' "
                                      "(default: the corpus with the most labels)")
    add_model_arguments(tag)
    add_embedding_arguments(tag)
    tag.set_defaults(run=run_tag)

    add_search_commands(commands)

    # Training's options are parsed when the command runs (training/commands.py), so --help loads no torch.
    for name, text in [("train", "train on FSD-50K or a labelled manifest (train --help for options)"),
                       ("evaluate", "metrics of a trained output folder (evaluate --help for options)")]:
        command = commands.add_parser(name, help=text, add_help=False, prefix_chars="\0")
        command.add_argument("options", nargs=argparse.REMAINDER)
        command.set_defaults(run=run_training, quiet=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if getattr(args, "quiet", False) else logging.WARNING, format="%(levelname)s: %(message)s")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .errors import USER_ERRORS

    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not into them
            return args.run(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
