"""The `diverse-embed` command line: its parser and `main`, and the commands of the core (`embed`,
`tag`); search's commands are in search/commands.py, training's in training/commands.py.

Each command imports what it needs when it runs: `--help` loads no torch and no training code, and a
plain install runs every command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .console import (
    CommandError,
    add_embedding_arguments,
    add_model_arguments,
    add_shared_arguments,
    find_inputs,
    load_model,
    say,
    shown,
)
from .options import positive_int


def run_embed(args: argparse.Namespace) -> int:
    """An .npz or a Parquet table of clip vectors, and with --segments of every 1-s segment's too."""
    from .audio import AudioLoadError
    from .parquet import file_rows

    output_path = Path(args.output)
    if args.ray is not None:
        return run_embed_on_ray(args, output_path)
    if output_path.suffix.lower() not in (".npz", ".parquet"):
        raise CommandError(f"{output_path}: --output must end in .npz (numpy arrays) or .parquet (a table)")
    paths = find_inputs(args.inputs)
    if output_path.resolve() in {path.resolve() for path in paths}:
        raise CommandError(
            f"{output_path} is also an input: writing it would replace what is read; name another --output"
        )
    model, model_name = load_model(args.model, args.device, args.quiet, args.precision)
    embedded, skipped = [], 0

    def rows():  # one batch per file (parquet.file_rows): its clip row and segments' rows, or its error
        nonlocal skipped
        for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
            if isinstance(output, AudioLoadError):
                skipped += 1
                say(f"skipped {output}")
            else:
                embedded.append(str(path))
            yield file_rows(str(path), output, args.segments, model.embedding_dim)

    batches, held = rows(), []
    for batch in batches:  # up to the first file embedded: with none, nothing is written
        held.append(batch)
        if embedded:
            break
    if not embedded:
        say(f"error: none of the {len(paths)} file(s) could be embedded; nothing written")
        return 1
    write = write_parquet_rows if output_path.suffix.lower() == ".parquet" else write_npz_rows
    written = write(output_path, itertools.chain(held, batches), model, model_name)
    print(
        f"embedded {len(embedded)} file(s) into {shown(output_path)} ({written} row(s) of {model.embedding_dim})"
        + (f"; skipped {skipped} unreadable file(s)" if skipped else "")
    )
    return 0


def run_embed_on_ray(args: argparse.Namespace, folder: Path) -> int:
    """--ray: a Parquet dataset in the folder --output names, one file per block, resumed when run again."""
    from .distributed import resolve_device
    from .ray import embed_dataset

    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder}: with --ray, --output is a folder (a Parquet dataset, one file per block)")
    paths = find_inputs(args.inputs)
    resolve_device(args.device)  # a wrong --device is said before the cluster starts
    try:
        embedded, failed, done = embed_dataset(
            paths,
            folder,
            args.model,
            args.segments,
            args.ray or None,
            args.ray_workers,
            args.device,
            args.batch_size,
            progress=not args.quiet,
            precision=args.precision,
        )
    except ImportError as err:
        raise CommandError(str(err)) from None
    print(
        f"embedded {embedded} file(s) into {shown(folder)}"
        + (f"; {failed} could not be embedded (rows with an error)" if failed else "")
        + (f"; {done} already there, skipped" if done else "")
    )
    return 1 if failed and not embedded else 0  # as without --ray: an error only when no file could be embedded


def write_parquet_rows(path: Path, batches, model, model_name: str) -> int:
    from .parquet import write_parquet

    return write_parquet(path, batches, model.embedding_dim, model_name, model.fingerprint())


def write_npz_rows(path: Path, batches, model, model_name: str) -> int:
    """`embeddings` (N, D) and `paths` (N,) of the files; with segments, the same rows Parquet holds
    for them as `segment_embeddings` (S, D), `segment_paths`, `segment_starts`, `segment_ends` (S,)."""
    import numpy as np

    from .files import atomic_write

    clips, segments = [], []
    for names, starts, ends, vectors, errors in batches:
        if errors[0] is not None:  # a file that could not be embedded: arrays hold vectors only
            continue
        clips.append((names[0], vectors[0]))  # the clip row comes first (NaN start)
        segments += list(zip(names[1:], starts[1:], ends[1:], vectors[1:]))
    arrays = {
        "embeddings": np.stack([v for _, v in clips]),
        "paths": np.array([p for p, _ in clips]),
        "model": np.array(model_name),
        "fingerprint": np.array(model.fingerprint()),
    }
    if segments:
        arrays.update(
            segment_paths=np.array([s[0] for s in segments]),
            segment_starts=np.array([s[1] for s in segments]),
            segment_ends=np.array([s[2] for s in segments]),
            segment_embeddings=np.stack([s[3] for s in segments]),
        )
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return len(clips) + len(segments)


def run_tag(args: argparse.Namespace) -> int:
    """The head's top labels per file (and per 1-s segment), per corpus with --corpus all: JSON Lines with --json."""
    from .audio import AudioLoadError
    from .labels import label_corpora, label_groups, label_scores, named_labels, top_labels

    paths = find_inputs(args.inputs)
    model, model_name = load_model(args.model, args.device, args.quiet, args.precision)
    config = model.config
    try:  # the same checks as model.tag, made before any file is read
        vocabulary = named_labels(config)
        groups = label_groups(vocabulary, args.corpus)
    except ValueError as err:
        raise CommandError(f"model {model_name}: {err}") from None
    if args.corpus is None and next(iter(groups)) and not args.quiet:
        names = sorted(set(label_corpora(vocabulary)))
        shown = " and ".join(groups) + (
            " (the kind of sound, and the model's largest label set)"
            if len(groups) > 1
            else " (the model's largest label set)"
        )
        say(
            f"labels of corpus {shown}; --corpus NAME for one ({', '.join(names)}), --corpus all for every corpus, "
            "each on its own line"
        )
    failed = 0
    for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
        if isinstance(output, AudioLoadError):
            failed += 1
            say(f"skipped {output}")
            if args.json:
                print(json.dumps({"path": str(path), "error": output.reason}))
            continue
        # As model.tag (labels.clip_tags) does: the clip's scores are the mean of its chunks'.
        scores = label_scores(output.chunk_logits, vocabulary, config.problem_type)  # (chunks, labels)
        labels = top_labels(scores.mean(axis=0), vocabulary, groups, args.k)
        segments = (
            [
                (float(start), float(end), top_labels(row, vocabulary, groups, args.k))
                for start, end, row in zip(output.chunk_times, output.chunk_ends, scores)
            ]
            if args.segments
            else []
        )
        print_tags(path, labels, segments, args.json)
    return 1 if failed else 0


def print_tags(path, labels: dict, segments: list, as_json: bool) -> None:
    """One file's labels ({corpus: [(label, score)]}), and its segments' (start, end, labels) when
    asked: a JSON line, or text with a line per corpus when there are several."""

    def listed(found: dict):
        if len(found) == 1:
            return [{"label": n, "score": round(s, 4)} for n, s in next(iter(found.values()))]
        return {corpus: [{"label": n, "score": round(s, 4)} for n, s in pairs] for corpus, pairs in found.items()}

    def text(found: dict, indent: str) -> str:
        if len(found) == 1:
            return " " + ", ".join(f"{n} {s:.2f}" for n, s in next(iter(found.values())))
        return "".join(
            f"\n{indent}{corpus}: " + ", ".join(f"{n.split('/', 1)[1]} {s:.2f}" for n, s in pairs)
            for corpus, pairs in found.items()
        )

    if as_json:
        key = "labels" if len(labels) == 1 else "corpora"
        record = {"path": str(path), key: listed(labels)}
        if segments:
            record["segments"] = [{"start": a, "end": b, key: listed(t)} for a, b, t in segments]
        print(json.dumps(record))
        return
    print(f"{shown(path)}:" + text(labels, "  "))
    for a, b, t in segments:
        print(f"  {a:6.1f}-{b:.1f} s:" + text(t, "      "))


def run_export(args: argparse.Namespace) -> int:
    """One ONNX file of the model, front ends inside, checked against the package on the packaged samples."""
    from importlib.resources import files

    from .audio import load_audio
    from .export import PARITY, export_onnx, max_differences, onnx_session, require_exporter

    output_path = Path(args.output)
    if output_path.suffix.lower() != ".onnx":
        raise CommandError(f"{output_path}: --output must end in .onnx")
    require_exporter()  # before the model loads: a missing extra is said in a second, not after the export
    model, model_name = load_model(args.model, "cpu", args.quiet)
    export_onnx(model, output_path, model_name)
    samples = sorted(Path(str(files("diverse_embed") / "samples")).glob("*.wav"))
    worst = max_differences(model, onnx_session(output_path), [load_audio(path) for path in samples])
    largest = max(worst[name] for name in ["embedding", *model.config.branches])
    print(
        f"exported {model_name} to {shown(output_path)} ({output_path.stat().st_size / 1e6:.1f} MB): chunks "
        f"(batch, {model.config.window_samples}) at {model.config.sample_rate} Hz -> embedding, "
        f"{', '.join(model.config.branches)}, logits; onnxruntime against the package on the {len(samples)} "
        f"packaged samples: largest difference {largest:.1e}"
    )
    if largest > PARITY:
        say(f"error: that is more than {PARITY:g}: this onnxruntime does not compute what the package does")
        return 1
    return 0


def run_training(args: argparse.Namespace) -> int:
    from .training import commands

    return commands.run_train(args) if args.command == "train" else commands.run_evaluate(args)


def build_parser() -> argparse.ArgumentParser:
    from .search.commands import add_commands as add_search_commands

    parser = argparse.ArgumentParser(
        prog="diverse-embed",
        description="Audio embeddings from four small transformers: "
        "embed files, build and search indexes, train and evaluate models.",
    )
    parser.add_argument("--version", action="version", version=f"diverse-embed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser(
        "embed", help="embed audio files into an .npz or a Parquet table of L2-normalised vectors"
    )
    add_shared_arguments(embed, "inputs")
    embed.add_argument(
        "--output",
        "-o",
        required=True,
        help="an .npz (embeddings, paths) or a .parquet table (path, path_bytes, start, end, model, fingerprint, vector, error)",
    )
    embed.add_argument(
        "--segments",
        action="store_true",
        help="also every 1-s segment's vector (Parquet: a row each; .npz: segment_* arrays)",
    )
    embed.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="embed on a Ray cluster (ADDRESS, else RAY_ADDRESS, else a local one) into --output as a "
        "folder of Parquet files; run again to resume (needs the ray extra)",
    )
    embed.add_argument(
        "--ray-workers",
        type=positive_int,
        help="with --ray: models embedding at once (default: one per CPU, or per GPU)",
    )
    add_model_arguments(embed)
    add_embedding_arguments(embed)
    embed.set_defaults(run=run_embed)

    tag = commands.add_parser("tag", help="the model's top labels for each file (models with label names)")
    add_shared_arguments(tag, "inputs")
    tag.add_argument("-k", type=positive_int, default=5, help="labels per file or segment (default 5)")
    tag.add_argument("--segments", action="store_true", help="also the labels of every 1-s segment")
    tag.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    tag.add_argument(
        "--corpus",
        help="a multi-corpus model's labels (CORPUS/LABEL) of this corpus only, or 'all' "
        "(default: the corpus with the most labels)",
    )
    add_model_arguments(tag)
    add_embedding_arguments(tag)
    tag.set_defaults(run=run_tag)

    add_search_commands(commands)

    export = commands.add_parser(
        "export", help="write the model as one ONNX file, front ends inside (needs the export extra)"
    )
    export.add_argument("--output", "-o", required=True, help="the .onnx file to write")
    add_model_arguments(export, device=False)  # exported from the CPU
    export.add_argument("--quiet", "-q", action="store_true", help="no notes")
    export.set_defaults(run=run_export)

    # Training's options are parsed when the command runs (training/commands.py), so --help loads no torch.
    for name, text in [
        ("train", "train on FSD-50K or a labelled manifest (train --help for options)"),
        ("evaluate", "metrics of a trained output folder (evaluate --help for options)"),
    ]:
        command = commands.add_parser(name, help=text, add_help=False, prefix_chars="\0")
        command.add_argument("options", nargs=argparse.REMAINDER)
        command.set_defaults(run=run_training, quiet=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a name that is not UTF-8 is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):  # not a StringIO of a caller's
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.ERROR if getattr(args, "quiet", False) else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .errors import USER_ERRORS

    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not into them
            return args.run(args)
    except BrokenPipeError:  # the output piped into `head`, which stopped reading (an OSError: caught first)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 1
    except OSError as err:  # what the file system refused: a full disk, a folder named as a file, no permission
        print(f"error: {shown(err.filename or '')}: {err.strerror or err}", file=sys.stderr)
        return 2
    except USER_ERRORS as err:
        print(f"error: {shown(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
