"""The `diverse-embed` command line. Library modules log; this module decides what the user sees."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

from . import __version__
from .audio import AudioLoadError, find_audio_files
from . import train as training
from .index import INDEX_TYPES, AudioIndex, AudioIndexError
from .model import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, UNTRAINED, CheckpointError, DiverseEmbedder, untrained_model
from .train import Runtime

LOG = logging.getLogger("diverse_embed")


def load_model(model: str | None, quiet: bool = False) -> tuple[DiverseEmbedder, str]:
    """The model named by --model (a bundled name, a from_pretrained folder or a Hub id), or the
    bundled default. `untrained-seed0` gives random weights (seed 0), for testing the plumbing.

    Returns the model and the name to record next to its vectors (a folder as an absolute path).
    """
    if model == UNTRAINED:
        if not quiet:
            print("note: using an UNTRAINED model (random weights, seed 0): its embeddings only show "
                  "that the plumbing works.", file=sys.stderr)
        return untrained_model(seed=0), UNTRAINED
    model = model or DEFAULT_MODEL
    name = str(Path(model).resolve()) if Path(model).is_dir() else model
    return DiverseEmbedder.from_pretrained(model), name


def run_embed(args: argparse.Namespace) -> int:
    paths = find_audio_files(args.inputs)
    if not paths:
        print("error: no audio files found in " + " ".join(args.inputs), file=sys.stderr)
        return 2
    model, model_name = load_model(args.model, args.quiet)
    embedded, rows, skipped = [], [], []
    for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
        if isinstance(output, AudioLoadError):
            skipped.append(output)
            print(f"skipped {output}", file=sys.stderr)
            continue
        embedded.append(str(path))
        rows.append(output.embedding)
    embeddings = np.stack(rows) if rows else np.zeros((0, model.embedding_dim), dtype=np.float32)
    output_path = Path(args.output)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        output_path,
        embeddings=embeddings,  # (N, embedding_dim) float32, L2-normalised
        paths=np.array(embedded),
        model=np.array(model_name),
        config_fingerprint=np.array(model.config.fingerprint()),
    )
    print(f"embedded {len(embedded)} file(s) into {output_path} {embeddings.shape}"
          + (f"; skipped {len(skipped)} unreadable file(s)" if skipped else ""))
    return 0 if embedded else 1


def _report_add(index: AudioIndex, report, seconds: float) -> None:
    info = index.info()
    print(f"{index.folder}: added {len(report.added)} file(s) in {seconds:.1f} s; {report.unchanged} already indexed; "
          f"{info['files']} file(s), {info['vectors']} vector(s) in all ({info['faiss']} index)")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s) that could not be read (listed in {index.folder / 'skipped.tsv'}):")
        for path, reason in report.skipped:
            print(f"  {path}: {reason}")


def _add_and_build(index: AudioIndex, paths: list[Path], model: DiverseEmbedder, args, rt: Runtime):
    """Each rank (one without torchrun) embeds its share of the files; rank 0 builds the FAISS index."""
    started = time.perf_counter()
    report = index.add(paths[rt.rank :: rt.world], model.to(rt.device), commit_every=args.commit_every,
                       batch_size=args.batch_size, num_workers=args.num_workers, progress=not args.quiet and rt.main)
    rt.barrier()
    if rt.main:
        index.build()
        _report_add(index, report, time.perf_counter() - started)
    return report


def run_index_build(args: argparse.Namespace) -> int:
    rt = Runtime()
    paths = find_audio_files(args.inputs)
    model, model_name = load_model(args.model, args.quiet or not rt.main)
    folder = Path(args.output)
    if (folder / "index.json").exists():  # the same command again: resume, skipping what is in
        index = AudioIndex(folder)
        if index.manifest["segments"] != args.segments:
            raise AudioIndexError(f"{folder} was built {'with' if index.manifest['segments'] else 'without'} "
                                  "--segments; give the same flag to resume it, or another --output")
    else:
        if rt.main:
            AudioIndex.create(folder, model, model_name, segments=args.segments, index_type=args.index_type)
        rt.barrier()
        index = AudioIndex(folder)
    _add_and_build(index, paths, model, args, rt)
    return 0


def run_index_add(args: argparse.Namespace) -> int:
    rt = Runtime()
    index = AudioIndex(args.index)
    model, _ = load_model(args.model or index.model_name, quiet=True)
    _add_and_build(index, find_audio_files(args.inputs), model, args, rt)
    return 0


def run_index_info(args: argparse.Namespace) -> int:
    info = AudioIndex(args.index).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        print("\n".join(f"{key:<{width}}  {value}" for key, value in info.items()))
    return 0


def run_search(args: argparse.Namespace) -> int:
    index = AudioIndex(args.index)
    model, _ = load_model(args.model or index.model_name, quiet=True)
    hits = index.search_file(args.query, model, k=args.k)
    if args.json:
        print(json.dumps({"query": str(args.query), "results": [dataclasses.asdict(h) for h in hits]}, indent=2))
    else:
        print(format_hits(str(args.query), hits))
    return 0


def format_hits(query: str, hits) -> str:
    lines = [f"query: {query}", f"{'rank':>4}  {'score':>6}  {'where':>13}  path"]
    for hit in hits:
        where = "whole clip" if hit.start is None else f"{hit.start:6.1f}-{hit.end:.1f} s"
        lines.append(f"{hit.rank:>4}  {hit.score:6.3f}  {where:>13}  {hit.path}")
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    """Index the shipped sample sounds in a temporary folder and query it with a sound it has not seen."""
    import soundfile as sf

    samples = Path(str(files("diverse_embed") / "samples"))
    model, model_name = load_model(args.model, quiet=False)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diverse-embed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"diverse-embed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser("embed", help="embed audio files into an .npz of L2-normalised vectors")
    embed.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    embed.add_argument("--output", "-o", required=True, help="where to write the .npz (embeddings, paths)")
    embed.add_argument("--model", help=f"a bundled model name, from_pretrained folder or Hugging Face Hub id (default: {DEFAULT_MODEL})")
    embed.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                       help=f"1-s chunks per forward pass (default {DEFAULT_BATCH_SIZE})")
    embed.add_argument("--num-workers", type=int, default=2, help="processes decoding audio (default 2)")
    embed.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notes")
    embed.set_defaults(run=run_embed)

    demo = commands.add_parser("demo", help="index the bundled sample sounds and search them (no arguments needed)")
    demo.add_argument("--model", help=f"a bundled model name, from_pretrained folder or Hub id (default: {DEFAULT_MODEL})")
    demo.add_argument("-k", type=int, default=5, help="hits to show (default 5)")
    demo.set_defaults(run=run_demo)

    index = commands.add_parser("index", help="build, extend and describe a search index").add_subparsers(
        dest="index_command", required=True)
    build = index.add_parser("build", help="embed files into a new index folder, or resume an interrupted build")
    build.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    build.add_argument("--output", "-o", required=True, help="the index folder")
    build.add_argument("--model", help=f"a bundled model name, from_pretrained folder or Hub id (default: {DEFAULT_MODEL})")
    build.add_argument("--segments", action="store_true", help="also index every 1-s chunk, so hits say where")
    build.add_argument("--index-type", choices=INDEX_TYPES, default="auto",
                       help="flat (exact), hnsw or ivfpq (approximate); auto picks by size (default)")
    add_common(build)
    build.set_defaults(run=run_index_build)
    add = index.add_parser("add", help="add files to an index (unchanged files are skipped, changed ones redone)")
    add.add_argument("index", help="the index folder")
    add.add_argument("inputs", nargs="+", help="audio files and folders")
    add.add_argument("--model", help="default: the model the index was built with")
    add_common(add)
    add.set_defaults(run=run_index_add)
    info = index.add_parser("info", help="describe an index folder")
    info.add_argument("index", help="the index folder")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=run_index_info)

    search = commands.add_parser("search", help="find the indexed sounds most like a query sound")
    search.add_argument("index", help="the index folder")
    search.add_argument("query", help="an audio file of any length")
    search.add_argument("-k", type=int, default=10, help="hits to return (default 10)")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.add_argument("--model", help="default: the model the index was built with")
    search.set_defaults(run=run_search)

    train = commands.add_parser("train", help="train on FSD-50K or a labelled manifest (see README)",
                                description=training.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    training.build_parser(train)
    train.set_defaults(run=lambda args: (training.train(args), 0)[1])
    evaluate = commands.add_parser("evaluate", help="metrics of a trained output folder on a dataset's splits")
    evaluate.add_argument("run_dir", metavar="RUN", help="a training output folder")
    training.add_data_arguments(evaluate)
    evaluate.set_defaults(run=lambda args: (training.run_evaluate(args), 0)[1])
    return parser


def add_common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                         help=f"1-s chunks per forward pass (default {DEFAULT_BATCH_SIZE})")
    command.add_argument("--num-workers", type=int, default=2, help="processes decoding audio (default 2)")
    command.add_argument("--commit-every", type=int, default=32,
                         help="files per commit: an interrupted build loses at most this many (default 32)")
    command.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, format="%(levelname)s: %(message)s")
    if args.command in ("train", "evaluate") and not quiet:
        logging.getLogger("diverse_embed.train").setLevel(logging.INFO)  # the training log lines
    try:
        return args.run(args)
    except (AudioLoadError, AudioIndexError, CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
