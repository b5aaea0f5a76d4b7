"""The search commands: `index build|add|remove|sync|export|info`, `search`, `duplicates` and
`demo`. Each imports what it needs when it runs, so registering them loads no torch or FAISS."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..config import UNTRAINED
from ..console import (
    CommandError,
    add_embedding_arguments,
    add_model_arguments,
    add_shared_arguments,
    find_inputs,
    load_model,
    say,
    shown,
)
from ..options import positive_int
from .duplicates import NEIGHBOURS, THRESHOLD
from .index_types import INDEX_TYPES


def add_commands(commands) -> None:
    """demo, index, search and duplicates on the command line's subparsers."""
    demo = commands.add_parser("demo", help="index the bundled sample sounds and search them (no arguments needed)")
    add_model_arguments(demo)
    demo.add_argument("-k", type=positive_int, default=5, help="hits to show (default 5)")
    demo.set_defaults(run=run_demo)

    add_index_commands(
        commands.add_parser("index", help="build, extend and describe a search index").add_subparsers(
            dest="index_command", required=True
        )
    )
    search = commands.add_parser("search", help="find the indexed sounds most like each query sound")
    add_shared_arguments(search, "index")
    search.add_argument("queries", nargs="*", help="audio files of any length, or folders of them")
    search.add_argument(
        "--queries",
        dest="queries_file",
        metavar="LIST",
        help="a text file of query paths, one per line (with or instead of QUERIES)",
    )
    search.add_argument("-k", type=positive_int, default=10, help="hits per query (default 10)")
    search.add_argument("--json", action="store_true", help="print one JSON object per query, one per line")
    search.add_argument(
        "--html",
        metavar="PAGE",
        help="also write a self-contained HTML page: a player per hit "
        "starting at the matched second, waveform pictures, scores",
    )
    add_model_arguments(search, default="default: the model the index was built with")
    add_embedding_arguments(search)  # the queries are embedded as `embed` embeds files
    search.set_defaults(run=run_search)

    duplicates = commands.add_parser(
        "duplicates", help="list groups of near-duplicate files in an index (deletes nothing)"
    )
    add_shared_arguments(duplicates, "index")
    duplicates.add_argument(
        "--threshold",
        type=similarity,
        default=THRESHOLD,
        help=f"cosine similarity of clip vectors at or above which two files are near-duplicates (default {THRESHOLD})",
    )
    duplicates.add_argument(
        "--neighbours",
        type=positive_int,
        default=NEIGHBOURS,
        help=f"two files are linked only when each is among the other's this many most similar files (default {NEIGHBOURS})",
    )
    formats = duplicates.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="one JSON list of groups")
    formats.add_argument(
        "--csv",
        action="store_true",
        help="CSV rows: group, path, similarity (each file's highest cosine similarity to another file of its group)",
    )
    duplicates.set_defaults(run=run_duplicates)


def add_index_commands(index) -> None:
    """build, add, remove, sync, export and info under `index`."""
    build = index.add_parser("build", help="embed files into a new index folder, or resume an interrupted build")
    add_shared_arguments(build, "inputs or tables", "from parquet")
    build.add_argument("--output", "-o", required=True, help="the index folder")
    build.add_argument("--segments", action="store_true", help="also index every 1-s chunk, so hits say where")
    build.add_argument(
        "--index-type",
        default="auto",
        choices=INDEX_TYPES,
        help="flat (exact); hnsw (approximate, in RAM); compressed (codes in RAM, exact re-ranking "
        "from disk, for collections larger than RAM); ivfpq (codes only, low recall: kept for old indexes); "
        "auto picks by size (default)",
    )
    add_model_arguments(build)
    add_embedding_arguments(build, commits=True)
    build.set_defaults(run=run_index_build)
    add = index.add_parser("add", help="add files to an index (unchanged files are skipped, changed ones redone)")
    add_shared_arguments(add, "index", "inputs or tables", "from parquet")
    add_model_arguments(add, default="default: the model the index was built with")
    add_embedding_arguments(add, commits=True)
    add.set_defaults(run=run_index_add)
    remove = index.add_parser("remove", help="drop files (or everything under folders) from an index")
    add_shared_arguments(remove, "index")
    remove.add_argument("paths", nargs="+", help="indexed files or folders; they need not exist any more")
    remove.add_argument("--quiet", "-q", action="store_true", help="do not list the removed files")
    remove.set_defaults(run=run_index_remove)
    sync = index.add_parser(
        "sync", help="make an index match a folder: add new files, re-embed changed ones, drop vanished ones"
    )
    add_shared_arguments(sync, "index")
    sync.add_argument("folder", help="the folder the index should mirror (files outside it are left alone)")
    add_model_arguments(sync, default="default: the model the index was built with")
    add_embedding_arguments(sync, commits=True)
    sync.set_defaults(run=run_index_sync)
    export = index.add_parser("export", help="write an index's rows and vectors to a Parquet table")
    add_shared_arguments(export, "index")
    export.add_argument("output", help="the .parquet file (path, path_bytes, start, end, model, fingerprint, vector)")
    export.set_defaults(run=run_index_export)
    info = index.add_parser("info", help="describe an index folder")
    add_shared_arguments(info, "index")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=run_index_info)


def index_model(index, name: str | None, device: str | None, precision: str = "float32"):
    """The model --model names, else the one the index records; a recorded name that no longer
    loads says so, and how to name the model."""
    from ..errors import CheckpointError

    try:
        return load_model(name or index.model_name, device, True, precision)[0]
    except CheckpointError as err:
        if name:
            raise
        raise CommandError(
            f"{index.folder} was built with model {index.model_name!r}, which cannot be loaded "
            f"here ({err}); give the model it was built with: --model NAME_OR_FOLDER"
        ) from None


def add_and_build(index, paths: list[Path], model, args, rt) -> int:
    """Each rank (one without torchrun) embeds its share of the files; rank 0 builds the FAISS index.
    Exit code 1 when the index ends up holding nothing."""
    started = time.perf_counter()
    report = index.add(
        paths[rt.rank :: rt.world],
        model,
        commit_every=args.commit_every,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=not args.quiet and rt.main,
    )
    reports = rt.gather(report)
    if not rt.main:
        return 0
    index.build()
    info = index.info()
    added = sum(len(r.added) for r in reports)
    skipped = [s for r in reports for s in r.skipped]
    print(
        f"{shown(index.folder)}: added {added} file(s) in {time.perf_counter() - started:.1f} s; "
        f"{sum(r.unchanged for r in reports)} already indexed; "
        f"{info['files']} file(s), {info['vectors']} vector(s) in all ({info['faiss']} index)"
    )
    if skipped:
        print(
            f"skipped {len(skipped)} file(s) that could not be read (listed in {shown(index.folder / 'skipped.tsv')}):"
        )
        for path, reason in skipped:
            print(f"  {shown(path)}: {shown(reason)}")
    if info["files"] == 0:
        say("error: the index holds no files: nothing could be embedded")
        return 1
    return 0


def run_index_build(args: argparse.Namespace) -> int:
    from ..distributed import Runtime
    from .index import AudioIndex

    if from_parquet(args):
        return build_from_parquet(args)
    paths = find_inputs(args.inputs)
    with Runtime(args.device) as rt:
        model, model_name = load_model(args.model, str(rt.device), args.quiet or not rt.main, args.precision)
        folder = Path(args.output)
        resuming = (folder / "index.json").exists()  # the same command again: resume, skipping what is in
        rt.barrier()  # every rank has looked before rank 0 creates it, so all take the same branch
        if not resuming and rt.main:
            AudioIndex.create(folder, model, model_name, segments=args.segments, index_type=args.index_type)
        rt.barrier()
        index = AudioIndex(folder)
        if resuming:
            check_resumable(index, paths, args)
        return add_and_build(index, paths, model, args, rt)


def check_resumable(index, paths: list[Path], args: argparse.Namespace) -> None:
    """`index build` onto an existing index resumes it only when it is the same build: the same
    --segments, and nothing indexed (or skipped) that the inputs do not name."""
    from .index import AudioIndexError
    from .store import indexed_path

    if index.manifest["segments"] != args.segments:
        raise AudioIndexError(
            f"{index.folder} was built {'with' if index.manifest['segments'] else 'without'} "
            "--segments; give the same flag to resume it, or another --output"
        )
    named = set(map(indexed_path, paths))
    others = sorted(set(index.files()) - named) + sorted(set(index.skipped()) - named)
    if others:
        raise CommandError(
            f"{index.folder} already holds an index of other files ({len(others)} not among these "
            f"inputs, e.g. {others[0]}): `diverse-embed index add {index.folder} ...` adds to it, "
            "another --output makes a new index"
        )


def run_index_add(args: argparse.Namespace) -> int:
    from ..distributed import Runtime
    from .index import AudioIndex

    index = AudioIndex(args.index)
    if from_parquet(args):
        return add_from_parquet(index, args)
    paths = find_inputs(args.inputs)
    with Runtime(args.device) as rt:
        model = index_model(index, args.model, str(rt.device), args.precision)
        return add_and_build(index, paths, model, args, rt)


def from_parquet(args: argparse.Namespace) -> bool:
    """Whether the command adds Parquet rows (--from-parquet) or audio (inputs): one of them, never both."""
    if bool(args.inputs) == bool(args.from_parquet):
        raise CommandError("name audio files and folders, or --from-parquet TABLE...: one of them")
    return bool(args.from_parquet)


def build_from_parquet(args: argparse.Namespace) -> int:
    """A new index of vectors made elsewhere, for the model the tables name (or --model)."""
    from ..parquet import parquet_files, table_model
    from .index import AudioIndex

    folder = Path(args.output)
    if (folder / "index.json").exists():
        raise CommandError(
            f"{folder} already holds an index: `diverse-embed index add {folder} --from-parquet ...` adds to it"
        )
    tables = parquet_files(args.from_parquet)
    if not tables:
        raise CommandError(f"no .parquet files in {' '.join(args.from_parquet)}")
    model, model_name = load_model(args.model or table_model(tables[0]), "cpu", args.quiet)
    index = AudioIndex.create(folder, model, model_name, segments=args.segments, index_type=args.index_type)
    return add_from_parquet(index, args)


def add_from_parquet(index, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = index.add_parquet(args.from_parquet, progress=not args.quiet)
    index.build()
    info = index.info()
    print(
        f"{shown(index.folder)}: added {report.files} file(s) from Parquet in {time.perf_counter() - started:.1f} s; "
        f"{info['files']} file(s), {info['vectors']} vector(s) in all ({info['faiss']} index)"
    )
    if report.failed:
        print(f"{report.failed} file(s) had no vector (an error; listed in {shown(index.folder / 'skipped.tsv')})")
    return 0 if info["files"] else 1


def run_index_remove(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    index = AudioIndex(args.index)
    report = index.remove(args.paths)
    index.build()
    info = index.info()
    print(
        f"{shown(index.folder)}: removed {len(report.removed)} file(s); {info['files']} file(s), "
        f"{info['vectors']} vector(s) left ({info['faiss']} index)"
    )
    if not args.quiet:
        for path in report.removed:
            print(f"  {shown(path)}")
    return 0


def run_index_sync(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    index = AudioIndex(args.index)
    if not Path(args.folder).is_dir():
        raise CommandError(f"no such folder: {args.folder} (nothing was removed)")
    model = index_model(index, args.model, args.device, args.precision)
    started = time.perf_counter()
    report = index.sync(
        args.folder,
        model,
        commit_every=args.commit_every,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=not args.quiet,
    )
    index.build()
    info = index.info()
    print(
        f"{shown(index.folder)}: synced with {shown(args.folder)} in {time.perf_counter() - started:.1f} s: "
        f"{len(report.added)} added or re-embedded, {len(report.removed)} removed, {report.unchanged} unchanged; "
        f"{info['files']} file(s), {info['vectors']} vector(s) in all ({info['faiss']} index)"
    )
    if not args.quiet:
        for path in report.added:
            print(f"  added {shown(path)}")
        for path in report.removed:
            print(f"  removed {shown(path)}")
    for path, reason in report.skipped:
        print(f"  skipped {shown(path)}: {shown(reason)}")
    for path, reason in report.unreadable:
        say(
            f"error: cannot read {path} ({reason}): the {report.kept_unread} indexed file(s) under unreadable "
            "folders are kept, not removed; sync again once they can be read"
        )
    return 1 if report.unreadable else 0


def run_index_export(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    index = AudioIndex(args.index)
    if Path(args.output).suffix.lower() != ".parquet":
        raise CommandError(f"{args.output}: export writes Parquet; name the file .parquet")
    rows = index.export_parquet(args.output)
    print(f"exported {rows} row(s) of {shown(index.folder)} into {shown(args.output)}")
    return 0


def run_index_info(args: argparse.Namespace) -> int:
    from .index import AudioIndex

    info = AudioIndex(args.index).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        print("\n".join(f"{key:<{width}}  {shown(value)}" for key, value in info.items()))
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Every query embedded in one process and one pass; exit 1 when some query could not be read."""
    import dataclasses

    from ..audio import AudioLoadError
    from .index import AudioIndex

    named = args.queries + read_query_list(args.queries_file)
    if not named:
        raise CommandError("no query given: name audio files or folders, or --queries LIST")
    missing = [name for name in named if name and not os.path.lexists(name)]
    if missing and len(missing) == len(named):
        raise CommandError(f"no such file or folder: {', '.join(missing)}{text_hint(missing)}")
    queries = find_inputs([name for name in named if name not in missing])
    index = AudioIndex(args.index)
    model = index_model(index, args.model, args.device, args.precision)
    failed, answered = len(missing), []
    for name in missing:  # skipped like an unreadable query: the others are answered, exit 1
        say(f"skipped query {shown(name)}: no such file or folder{text_hint([name])}")
        if args.json:
            print(json.dumps({"query": name, "error": "no such file or folder", "results": []}))
    for position, (query, hits) in enumerate(
        index.search_files(
            queries,
            model,
            k=args.k,
            progress=not args.quiet and len(queries) > 1,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
        )
    ):
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


def text_hint(names: list[str]) -> str:
    """For a query that reads like words, not a file name: there are no text queries."""
    words = any(" " in name and not Path(name).suffix and "/" not in name for name in names)
    return " (queries are audio files: this model has no text queries)" if words else ""


def similarity(text: str) -> float:
    """A cosine similarity threshold: a number from -1 to 1 (NaN would match nothing and say nothing)."""
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a cosine similarity from -1 to 1, got {text}")
    return value


def run_duplicates(args: argparse.Namespace) -> int:
    import csv
    import io

    from .index import AudioIndex

    groups = AudioIndex(args.index).duplicates(args.threshold, args.neighbours)
    if args.json:
        print(
            json.dumps(
                [
                    {"group": number, "files": [{"path": p, "similarity": round(s, 4)} for p, s in group]}
                    for number, group in enumerate(groups, 1)
                ],
                indent=1,
            )
        )
    elif args.csv:  # each name's own bytes, as the JSON and the index keep them, not escaped for a terminal
        sys.stdout.flush()
        stream = io.TextIOWrapper(
            sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline="", write_through=True
        )
        out = csv.writer(stream)
        out.writerow(["group", "path", "similarity"])
        for number, group in enumerate(groups, 1):
            out.writerows([number, p, f"{s:.4f}"] for p, s in group)
        stream.detach()  # sys.stdout stays open
    else:
        for number, group in enumerate(groups, 1):
            print(f"group {number} ({len(group)} files)")
            print("\n".join(f"  {s:.3f}  {shown(p)}" for p, s in group))
        files = sum(len(g) for g in groups)
        print(
            f"{len(groups)} group(s) of near-duplicates, {files} file(s), at similarity >= {args.threshold} "
            f"between mutual {args.neighbours} nearest neighbours (nothing was deleted); the number before "
            "each path is its highest cosine similarity to another file of its group (1.000: the same sound)"
        )
    return 0


# A query list is names, one per line: 16 MB holds 100,000 long ones. /dev/zero is not a list.
MAX_QUERY_LIST_BYTES = 16 << 20


def read_query_list(path: str | None) -> list[str]:
    """Query paths from a text file (or a pipe), one per line, each name's own bytes (UTF-8 or not);
    blank lines and lines starting with # are ignored."""
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_QUERY_LIST_BYTES + 1)
    except OSError as err:
        raise CommandError(f"cannot read the query list {path}: {err.strerror or err}") from None
    if len(data) > MAX_QUERY_LIST_BYTES:
        raise CommandError(
            f"the query list {path} is longer than {MAX_QUERY_LIST_BYTES >> 20} MB: not a list of file names"
        )
    lines = [os.fsdecode(line.strip()) for line in data.split(b"\n")]
    return [line for line in lines if line and not line.startswith("#")]


def format_hits(query: str, hits) -> str:
    lines = [f"query: {shown(query)}", f"{'rank':>4}  {'score':>6}  {'where':>13}  path"]
    for hit in hits:
        where = "whole clip" if hit.start is None else f"{hit.start:6.1f}-{hit.end:.1f} s"
        lines.append(f"{hit.rank:>4}  {hit.score:6.3f}  {where:>13}  {shown(hit.path)}")
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    """Index the shipped sample sounds in a temporary folder and query it with a sound it has not seen."""
    import tempfile
    from importlib.resources import files

    import numpy as np
    import soundfile as sf

    from .index import AudioIndex

    samples = Path(str(files("diverse_embed") / "samples"))
    model, model_name = load_model(args.model, args.device, precision=args.precision)
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
