"""The `diverse-embed` command line. Library modules log; this module decides what the user sees.

Each command imports what it needs when it runs: `--help` loads no torch, and a plain install runs
every command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path

from . import __version__
from .config import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, INDEX_TYPES, UNTRAINED

LOG = logging.getLogger("diverse_embed")


def say(message: str) -> None:
    """A note on stderr, printed above any progress bar rather than into it."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def load_model(name: str | None, device: str | None, quiet: bool = False):
    """The model --model names (default: the bundled one) on --device, and the name to record."""
    import torch

    from .checkpoint import resolve_model

    if name == UNTRAINED and not quiet:
        say("note: using an UNTRAINED model (random weights, seed 0): its embeddings only show that the plumbing works.")
    model, recorded = resolve_model(name)
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")), recorded


def find_inputs(inputs: list[str]) -> list[Path]:
    from .audio import find_audio_files

    missing = [name for name in inputs if not Path(name).exists()]
    if missing:
        raise CommandError("no such file or folder: " + ", ".join(missing))
    paths = find_audio_files(inputs)
    if not paths:
        raise CommandError("no audio files found in " + " ".join(inputs))
    return paths


class CommandError(Exception):
    """What the user asked cannot be done; the message says why (exit code 2)."""


# ----- commands ----------------------------------------------------------------------------------

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
        from .parquet import write_parquet

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


def add_and_build(index, paths: list[Path], model, args, rt) -> int:
    """Each rank (one without torchrun) embeds its share of the files; rank 0 builds the FAISS index.
    Exit code 1 when the index ends up holding nothing."""
    started = time.perf_counter()
    report = index.add(paths[rt.rank :: rt.world], model, commit_every=args.commit_every,
                       batch_size=args.batch_size, num_workers=args.num_workers, progress=not args.quiet and rt.main)
    reports = rt.gather(report)
    if not rt.main:
        return 0
    index.build()
    info = index.info()
    added = sum(len(r.added) for r in reports)
    skipped = [s for r in reports for s in r.skipped]
    print(f"{index.folder}: added {added} file(s) in {time.perf_counter() - started:.1f} s; "
          f"{sum(r.unchanged for r in reports)} already indexed; "
          f"{info['files']} file(s), {info['vectors']} vector(s) in all ({info['faiss']} index)")
    if skipped:
        print(f"skipped {len(skipped)} file(s) that could not be read (listed in {index.folder / 'skipped.tsv'}):")
        for path, reason in skipped:
            print(f"  {path}: {reason}")
    if info["files"] == 0:
        say("error: the index holds no files: nothing could be embedded")
        return 1
    return 0


def run_index_build(args: argparse.Namespace) -> int:
    from .distributed import Runtime
    from .index import AudioIndex, AudioIndexError

    paths = find_inputs(args.inputs)
    with Runtime(args.device) as rt:
        model, model_name = load_model(args.model, str(rt.device), args.quiet or not rt.main)
        folder = Path(args.output)
        resuming = (folder / "index.json").exists()  # the same command again: resume, skipping what is in
        rt.barrier()  # every rank has looked before rank 0 creates it, so all take the same branch
        if not resuming and rt.main:
            AudioIndex.create(folder, model, model_name, segments=args.segments, index_type=args.index_type)
        rt.barrier()
        index = AudioIndex(folder)
        if resuming and index.manifest["segments"] != args.segments:
            raise AudioIndexError(f"{folder} was built {'with' if index.manifest['segments'] else 'without'} "
                                  "--segments; give the same flag to resume it, or another --output")
        return add_and_build(index, paths, model, args, rt)


def run_index_add(args: argparse.Namespace) -> int:
    from .distributed import Runtime
    from .index import AudioIndex

    index = AudioIndex(args.index)
    paths = find_inputs(args.inputs)
    with Runtime(args.device) as rt:
        model, _ = load_model(args.model or index.model_name, str(rt.device), quiet=True)
        return add_and_build(index, paths, model, args, rt)


def run_index_remove(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    index = AudioIndex(args.index)
    report = index.remove(args.paths)
    index.build()
    info = index.info()
    print(f"{index.folder}: removed {len(report.removed)} file(s); {info['files']} file(s), "
          f"{info['vectors']} vector(s) left ({info['faiss']} index)")
    if not args.quiet:
        for path in report.removed:
            print(f"  {path}")
    return 0


def run_index_sync(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    index = AudioIndex(args.index)
    if not Path(args.folder).is_dir():
        raise CommandError(f"no such folder: {args.folder} (nothing was removed)")
    model, _ = load_model(args.model or index.model_name, args.device, quiet=True)
    started = time.perf_counter()
    report = index.sync(args.folder, model, commit_every=args.commit_every, batch_size=args.batch_size,
                        num_workers=args.num_workers, progress=not args.quiet)
    index.build()
    info = index.info()
    print(f"{index.folder}: synced with {args.folder} in {time.perf_counter() - started:.1f} s: "
          f"{len(report.added)} added or re-embedded, {len(report.removed)} removed, {report.unchanged} unchanged; "
          f"{info['files']} file(s), {info['vectors']} vector(s) in all ({info['faiss']} index)")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
    return 0


def run_index_export(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    index = AudioIndex(args.index)
    if Path(args.output).suffix.lower() != ".parquet":
        raise CommandError(f"{args.output}: export writes Parquet; name the file .parquet")
    rows = index.export_parquet(args.output)
    print(f"exported {rows} row(s) of {index.folder} into {args.output}")
    return 0


def run_index_info(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    info = AudioIndex(args.index).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        print("\n".join(f"{key:<{width}}  {value}" for key, value in info.items()))
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Every query embedded in one process and one pass; exit 1 when some query could not be read."""
    import dataclasses

    from .audio import AudioLoadError
    from .index import AudioIndex

    named = args.queries + read_query_list(args.queries_file)
    if not named:
        raise CommandError("no query given: name audio files or folders, or --queries LIST")
    queries = find_inputs(named)
    index = AudioIndex(args.index)
    model, _ = load_model(args.model or index.model_name, args.device, quiet=True)
    failed, answered = 0, []
    for position, (query, hits) in enumerate(index.search_files(queries, model, k=args.k)):
        answered.append((str(query), hits.reason if isinstance(hits, AudioLoadError) else hits))
        if isinstance(hits, AudioLoadError):
            failed += 1
            say(f"skipped query {hits}")
            if args.json:
                print(json.dumps({"query": str(query), "error": hits.reason, "results": []}))
        elif args.json:  # JSON Lines: one object per query
            print(json.dumps({"query": str(query), "results": [dataclasses.asdict(h) for h in hits]}))
        else:
            print(("\n" if position else "") + format_hits(str(query), hits))
    if args.html:
        from .page import write_search_page

        write_search_page(args.html, answered, index.model_name)
        say(f"wrote {args.html}: {len(answered)} quer{'y' if len(answered) == 1 else 'ies'} with players")
    return 1 if failed else 0


def run_tag(args: argparse.Namespace) -> int:
    """The head's top labels per file (and per 1-s segment): JSON Lines with --json."""
    import numpy as np
    from scipy.special import expit, softmax

    from .audio import AudioLoadError
    from .data import label_corpora

    paths = find_inputs(args.inputs)
    model, model_name = load_model(args.model, args.device, args.quiet)
    config = model.config
    if not config.id2label:
        raise CommandError(f"model {model_name} has no label names (id2label): its head was not trained on named "
                           "classes, so there is nothing to tag with")
    vocabulary = config.label_names()
    corpora = np.array(label_corpora(vocabulary) or [""] * len(vocabulary))  # each label's corpus ("" for one space)
    known = sorted(set(corpora) - {""})
    corpus = args.corpus
    if known and corpus is None:
        # Each corpus's softmax is sure of its own labels, so mixing them misleads: show the
        # broadest vocabulary (most labels) unless told.
        corpus = max(known, key=lambda name: ((corpora == name).sum(), name))
        if not args.quiet:
            say(f"labels of corpus {corpus} (the model's largest label set); --corpus NAME for another "
                f"({', '.join(known)}), --corpus all for every corpus")
    shown = np.arange(len(vocabulary))  # (labels shown,)
    if corpus not in (None, "all"):
        if corpus not in known:
            raise CommandError(f"model {model_name} has no corpus {corpus!r}: "
                               + (f"its corpora are {', '.join(known)}" if known else "it has one label space"))
        shown = np.flatnonzero(corpora == corpus)
    k = min(args.k, len(shown))

    def chunk_scores(logits: np.ndarray) -> np.ndarray:  # (chunks, labels) -> (chunks, labels)
        if config.problem_type == "multi_label_classification":
            return expit(logits)  # each label on its own
        # As a Hugging Face pipeline reads a single-label or unstated head; a multi-corpus head was
        # trained with one softmax per corpus, so each corpus's scores are its own probabilities.
        scores = np.empty_like(logits)
        for group in set(corpora):
            scores[:, corpora == group] = softmax(logits[:, corpora == group], axis=1)
        return scores

    def top(scores: np.ndarray) -> list[tuple[str, float]]:
        best = shown[np.argsort(-scores[shown], kind="stable")[:k]]
        return [(vocabulary[int(i)], float(scores[i])) for i in best]

    failed = 0
    for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
        if isinstance(output, AudioLoadError):
            failed += 1
            say(f"skipped {output}")
            if args.json:
                print(json.dumps({"path": str(path), "error": output.reason}))
            continue
        scores = chunk_scores(output.chunk_logits)
        labels = top(scores.mean(axis=0))  # a clip's prediction: the mean of its chunks' (the method's rule)
        segments = [(float(t), float(min(t + config.chunk_seconds, output.duration)), top(row))
                    for t, row in zip(output.chunk_times, scores)] if args.segments else []
        if args.json:
            record = {"path": str(path), "labels": [{"label": n, "score": round(s, 4)} for n, s in labels]}
            if args.segments:
                record["segments"] = [{"start": a, "end": b, "labels": [{"label": n, "score": round(s, 4)} for n, s in t]}
                                      for a, b, t in segments]
            print(json.dumps(record))
        else:
            print(f"{path}: " + ", ".join(f"{n} {s:.2f}" for n, s in labels))
            for a, b, t in segments:
                print(f"  {a:6.1f}-{b:.1f} s: " + ", ".join(f"{n} {s:.2f}" for n, s in t))
    return 1 if failed else 0


def run_duplicates(args: argparse.Namespace) -> int:
    import csv

    from .index import AudioIndex

    groups = AudioIndex(args.index).duplicates(args.threshold, args.neighbours)
    if args.json:
        print(json.dumps([{"group": number, "files": [{"path": p, "similarity": round(s, 4)} for p, s in group]}
                          for number, group in enumerate(groups, 1)], indent=1))
    elif args.csv:
        out = csv.writer(sys.stdout)
        out.writerow(["group", "path", "similarity"])
        for number, group in enumerate(groups, 1):
            out.writerows([number, p, f"{s:.4f}"] for p, s in group)
    else:
        for number, group in enumerate(groups, 1):
            print(f"group {number} ({len(group)} files)")
            print("\n".join(f"  {s:.3f}  {p}" for p, s in group))
        files = sum(len(g) for g in groups)
        print(f"{len(groups)} group(s) of near-duplicates, {files} file(s), at similarity >= {args.threshold} "
              f"between mutual {args.neighbours} nearest neighbours (nothing was deleted)")
    return 0


def read_query_list(path: str | None) -> list[str]:
    """Query paths from a text file, one per line; blank lines and lines starting with # are ignored."""
    if path is None:
        return []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise CommandError(f"cannot read the query list {path}: {err.strerror or err}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def format_hits(query: str, hits) -> str:
    lines = [f"query: {query}", f"{'rank':>4}  {'score':>6}  {'where':>13}  path"]
    for hit in hits:
        where = "whole clip" if hit.start is None else f"{hit.start:6.1f}-{hit.end:.1f} s"
        lines.append(f"{hit.rank:>4}  {hit.score:6.3f}  {where:>13}  {hit.path}")
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    """Index the shipped sample sounds in a temporary folder and query it with a sound it has not seen."""
    import tempfile
    from importlib.resources import files

    import numpy as np
    import soundfile as sf

    from .index import AudioIndex

    samples = Path(str(files("diverse_embed") / "samples"))
    model, model_name = load_model(args.model, args.device)
    with tempfile.TemporaryDirectory(prefix="diverse-embed-demo-") as temp:
        index = AudioIndex.create(Path(temp) / "index", model, model_name, segments=True)
        index.add(sorted(samples.glob("*.wav")), model, num_workers=0, progress=False)
        index.build()
        # The query: a 500 Hz tone, 3 s, with a pause in the middle; not one of the samples.
        t = np.arange(3 * 16000) / 16000
        query = (0.3 * np.sin(2 * np.pi * 500 * t) * (np.abs(t - 1.5) > 0.5)).astype(np.float32)
        query_path = Path(temp) / "query_500hz_tone.wav"
        sf.write(query_path, query, 16000)
        hits = index.search_file(query_path, model, k=args.k)
        print(f"indexed {len(index.files())} sample sounds from {samples} ({len(index)} vectors with 1-s segments)")
    print(format_hits("a 500 Hz tone (3 s, not in the index)", hits).replace(str(samples) + "/", ""))
    if model_name == UNTRAINED:
        print("(untrained model: the ranking shows the plumbing, not trained judgement)")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .train import train

    result = train(train_config(train_parser().parse_args(args.options)))
    if "stopped_at_step" in result:
        say(f"stopped after step {result['stopped_at_step']} as asked; --resume goes on from the checkpoint")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .data import DataConfig
    from .evaluate import evaluate_run, metrics_markdown

    options = evaluate_parser().parse_args(args.options)
    metrics = evaluate_run(options.run_dir, config_from(DataConfig, options), options.device)
    print(metrics_markdown(metrics))
    return 0


# ----- arguments ---------------------------------------------------------------------------------

def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_model_arguments(command: argparse.ArgumentParser, default: str = f"default: {DEFAULT_MODEL}") -> None:
    command.add_argument("--model", help=f"a bundled model name, a from_pretrained folder, a .safetensors file "
                                         f"or a Hugging Face Hub id ({default}); {UNTRAINED} for random weights")
    command.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")


def add_embedding_arguments(command: argparse.ArgumentParser, commits: bool = False) -> None:
    command.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                         help=f"1-s chunks per forward pass (default {DEFAULT_BATCH_SIZE})")
    command.add_argument("--num-workers", type=int, default=None,
                         help="threads decoding audio ahead of the model (default: planned for the machine; 0: none)")
    if commits:
        command.add_argument("--commit-every", type=positive_int, default=32,
                             help="files per commit: an interrupted build loses at most this many (default 32)")
    command.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diverse-embed", description="Audio embeddings from four small transformers: "
                                     "embed files, build and search indexes, train and evaluate models.")
    parser.add_argument("--version", action="version", version=f"diverse-embed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="index the bundled sample sounds and search them (no arguments needed)")
    add_model_arguments(demo)
    demo.add_argument("-k", type=positive_int, default=5, help="hits to show (default 5)")
    demo.set_defaults(run=run_demo)

    embed = commands.add_parser("embed", help="embed audio files into an .npz or a Parquet table of L2-normalised vectors")
    embed.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    embed.add_argument("--output", "-o", required=True,
                       help="an .npz (embeddings, paths) or a .parquet table (path, start, end, model, fingerprint, vector)")
    embed.add_argument("--segments", action="store_true", help="with a .parquet output: also a row per 1-s segment")
    add_model_arguments(embed)
    add_embedding_arguments(embed)
    embed.set_defaults(run=run_embed)

    index = commands.add_parser("index", help="build, extend and describe a search index").add_subparsers(
        dest="index_command", required=True)
    build = index.add_parser("build", help="embed files into a new index folder, or resume an interrupted build")
    build.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    build.add_argument("--output", "-o", required=True, help="the index folder")
    build.add_argument("--segments", action="store_true", help="also index every 1-s chunk, so hits say where")
    build.add_argument("--index-type", default="auto", choices=INDEX_TYPES,
                       help="flat (exact); hnsw (approximate, in RAM); compressed (codes in RAM, exact re-ranking "
                            "from disk, for collections larger than RAM); auto picks by size (default)")
    add_model_arguments(build)
    add_embedding_arguments(build, commits=True)
    build.set_defaults(run=run_index_build)
    add = index.add_parser("add", help="add files to an index (unchanged files are skipped, changed ones redone)")
    add.add_argument("index", help="the index folder")
    add.add_argument("inputs", nargs="+", help="audio files and folders")
    add_model_arguments(add, default="default: the model the index was built with")
    add_embedding_arguments(add, commits=True)
    add.set_defaults(run=run_index_add)
    remove = index.add_parser("remove", help="drop files (or everything under folders) from an index")
    remove.add_argument("index", help="the index folder")
    remove.add_argument("paths", nargs="+", help="indexed files or folders; they need not exist any more")
    remove.add_argument("--quiet", "-q", action="store_true", help="do not list the removed files")
    remove.set_defaults(run=run_index_remove)
    sync = index.add_parser("sync", help="make an index match a folder: add new files, re-embed changed ones, "
                                         "drop vanished ones")
    sync.add_argument("index", help="the index folder")
    sync.add_argument("folder", help="the folder the index should mirror (files outside it are left alone)")
    add_model_arguments(sync, default="default: the model the index was built with")
    add_embedding_arguments(sync, commits=True)
    sync.set_defaults(run=run_index_sync)
    export = index.add_parser("export", help="write an index's rows and vectors to a Parquet table")
    export.add_argument("index", help="the index folder")
    export.add_argument("output", help="the .parquet file (path, start, end, model, fingerprint, vector)")
    export.set_defaults(run=run_index_export)
    info = index.add_parser("info", help="describe an index folder")
    info.add_argument("index", help="the index folder")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=run_index_info)

    search = commands.add_parser("search", help="find the indexed sounds most like each query sound")
    search.add_argument("index", help="the index folder")
    search.add_argument("queries", nargs="*", help="audio files of any length, or folders of them")
    search.add_argument("--queries", dest="queries_file", metavar="LIST",
                        help="a text file of query paths, one per line (with or instead of QUERIES)")
    search.add_argument("-k", type=positive_int, default=10, help="hits per query (default 10)")
    search.add_argument("--json", action="store_true", help="print one JSON object per query, one per line")
    search.add_argument("--html", metavar="PAGE", help="also write a self-contained HTML page: a player per hit "
                                                        "starting at the matched second, waveform pictures, scores")
    add_model_arguments(search, default="default: the model the index was built with")
    search.set_defaults(run=run_search)

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

    duplicates = commands.add_parser("duplicates", help="list groups of near-duplicate files in an index (deletes nothing)")
    duplicates.add_argument("index", help="the index folder")
    duplicates.add_argument("--threshold", type=float, default=0.95,
                            help="cosine similarity of clip vectors at or above which two files are near-duplicates "
                                 "(default 0.95)")
    duplicates.add_argument("--neighbours", type=positive_int, default=2,
                            help="two files are linked only when each is among the other's this many most similar "
                                 "files (default 2)")
    formats = duplicates.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="one JSON list of groups")
    formats.add_argument("--csv", action="store_true", help="CSV rows: group, path, similarity")
    duplicates.set_defaults(run=run_duplicates)

    # Training's options are parsed when the command runs (train_parser), so --help loads no torch.
    for name, text, run in [("train", "train on FSD-50K or a labelled manifest (train --help for options)", run_train),
                            ("evaluate", "metrics of a trained output folder (evaluate --help for options)", run_evaluate)]:
        command = commands.add_parser(name, help=text, add_help=False, prefix_chars="\0")
        command.add_argument("options", nargs=argparse.REMAINDER)
        command.set_defaults(run=run, quiet=False)
    return parser


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from .data import DataConfig

    d = DataConfig()
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=["fsd50k", "csv"], required=True)
    data.add_argument("--data-root", help="FSD-50K folder (official layout)")
    data.add_argument("--manifest", help="CSV with path,labels[,split] (for --dataset csv)")
    data.add_argument("--audio-root", help="folder the manifest's paths are relative to (default: its folder)")
    data.add_argument("--allow-outside-root", action="store_true", help="accept absolute paths or '..' in manifests")
    data.add_argument("--train-splits", type=names, default=d.train_splits, help="comma-separated split names to train on")
    data.add_argument("--val-splits", type=names, default=d.val_splits, help="split names to select on")
    data.add_argument("--test-splits", type=names, default=d.test_splits, help="split names to report on")
    data.add_argument("--cache-dir", default=d.cache_dir, help=f"where decoded 16 kHz audio is kept (default {d.cache_dir})")
    data.add_argument("--num-workers", type=int, default=d.num_workers,
                      help="DataLoader processes (default: planned for the device and cores, parallel.plan)")
    data.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                      help=f"1-s chunks per step, per process (default {d.batch_size})")
    data.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")
    data.add_argument("--quiet", action="store_true", help="no progress bars or log lines on the terminal")


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diverse-embed evaluate", description="Metrics of a training output "
                                     "folder (fused head and ablation heads) on a dataset's val and test splits.")
    parser.add_argument("run_dir", metavar="RUN", help="a training output folder")
    add_data_arguments(parser)
    return parser


def corpus_weights(text: str) -> dict[str, float]:
    """"esc50=2,nemo=0.5" -> {"esc50": 2.0, "nemo": 0.5}."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected CORPUS=WEIGHT, got {item!r}") from None
        if weights[name.strip()] < 0 or not name.strip():
            raise argparse.ArgumentTypeError(f"expected CORPUS=WEIGHT with a weight >= 0, got {item!r}")
    return weights


def train_parser() -> argparse.ArgumentParser:
    from . import train

    t = train.TrainConfig()
    p = argparse.ArgumentParser(prog="diverse-embed train", description=train.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    run = p.add_argument_group("run")
    run.add_argument("--output", required=True, help="output folder (a from_pretrained folder when done)")
    run.add_argument("--stage", default=t.stage, choices=train.STAGES,
                     help="run one stage only (the others' weights come from --output's checkpoint or model)")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint/last.pt")
    run.add_argument("--branches", type=names, default=t.branches, help="branches to build (default all four)")
    run.add_argument("--mobilenet-weights", help="safetensors of a trained MobileNet: skips the neuralogram stage")
    run.add_argument("--seed", type=int, default=t.seed)
    run.add_argument("--precision", default=t.precision, choices=["auto", "fp32", "bf16", "fp16"],
                     help="auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU")
    run.add_argument("--checkpoint-every", type=positive_int, default=t.checkpoint_every, help="steps between checkpoints")
    run.add_argument("--log-every", type=positive_int, default=t.log_every, help="steps between log lines")
    run.add_argument("--stop-after-steps", type=int, default=0, help="stop (checkpointed) after this many steps in "
                     "all: for testing --resume")
    run.add_argument("--max-steps-per-phase", type=int, default=0, help="cap each phase's steps (0: no cap)")
    opt = p.add_argument_group("optimisation (defaults: documented in README)")
    for name in ("neuralogram_epochs", "branch_epochs", "fusion_epochs", "finetune_epochs"):
        opt.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(t, name))
    for name in ("lr", "head_lr", "finetune_lr", "weight_decay", "warmup", "grad_clip", "gain_augment_db"):
        opt.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(t, name))
    opt.add_argument("--loss", default=t.loss, choices=["auto", "bce", "softmax"],
                     help="bce: multi-label (FSD-50K); softmax: one label per clip (ESC-50); "
                          "auto: softmax when every training clip has exactly one label")
    opt.add_argument("--noise-augment-snr-db", type=float, default=t.noise_augment_snr_db,
                     help="add white noise to each training chunk at a random SNR from this to 40 dB")
    opt.add_argument("--mixup-alpha", type=float, default=t.mixup_alpha,
                     help="mix each training chunk and its targets with another chunk of the same corpus, "
                          "weight drawn from Beta(A, A) (0: off)")
    opt.add_argument("--chunks-per-epoch", type=int, default=t.chunks_per_epoch,
                     help="an epoch of this many training chunks, balanced across the manifest's corpora "
                          "(0: every training chunk once)")
    opt.add_argument("--corpus-weights", type=corpus_weights, default={},
                     help="each corpus's share of an epoch, e.g. esc50=2,nemo=0.5 (default 1 each)")
    opt.add_argument("--contrastive-weight", type=float, default=t.contrastive_weight,
                     help="add a supervised contrastive loss on the embedding each phase trains, with this weight")
    opt.add_argument("--contrastive-temperature", type=float, default=t.contrastive_temperature)
    opt.add_argument("--crop-jitter", action="store_true",
                     help="move each training chunk by a random offset of up to half a second")
    opt.add_argument("--min-train-chunk-peak-db", type=float, default=None,
                     help="leave out training chunks whose peak is below this level in dBFS (e.g. -50: silence)")
    opt.add_argument("--no-select-on-val", dest="select_on_val", action="store_false",
                     help="keep the last epoch instead of the best validation macro mAP")
    return p


def config_from(kind, options: argparse.Namespace):
    """A DataConfig or TrainConfig from parsed options (same names); --quiet turns progress off."""
    import dataclasses

    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(kind) if hasattr(options, f.name)}
    return kind(**values, progress=not options.quiet)


def train_config(options: argparse.Namespace):
    from .train import TrainConfig

    if not options.quiet:
        logging.getLogger("diverse_embed.train").setLevel(logging.INFO)  # the training log lines
    return config_from(TrainConfig, options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if getattr(args, "quiet", False) else logging.WARNING, format="%(levelname)s: %(message)s")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .audio import AudioLoadError
    from .checkpoint import CheckpointError
    from .data import DataError
    from .index import AudioIndexError

    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not into them
            return args.run(args)
    except (CommandError, AudioLoadError, AudioIndexError, CheckpointError, DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
