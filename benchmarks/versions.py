"""What a range of commits did to speed: this checkout against an earlier revision, from files,
with the CLAP tower as the yardstick, all three taking turns in one process.

    python -m benchmarks.versions 08d8099            # this checkout against 0.2.0's last commit

The earlier revision is checked out into a temporary git worktree and its package imported from
there beside this checkout's (each tree's own default model; they must be the same architecture
for the comparison to mean what it says: the report names both). Measured like benchmarks/speed.py's
"from files": --files ten-second 44.1-kHz WAV files in one `embed_files` call, medians of
--repeats runs after a warm-up, idle and with one core busy. The change each commit made is in
the CHANGELOG; this gives the ratio to CLAP with and without them. Writes NAME.json/.md (default
versions) to --output-dir.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from diverse_embed.config import DEFAULT_MODEL
from diverse_embed.resolve import resolve_model

from .speed import ClapTower, condition, taking_turns, write_wav_files
from .systems import machine, write_results

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def worktree(revision: str):
    """A temporary checkout of `revision` (git worktree), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="diverse-embed-") as folder:
        path = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), revision], check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=True)


def model_from(tree: Path):
    """The default model of the package in `tree`, imported beside this checkout's (which stays
    the one `import diverse_embed` gives afterwards)."""
    ours = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "diverse_embed"}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        config, resolve = (importlib.import_module(f"diverse_embed.{m}") for m in ("config", "resolve"))
        return resolve.resolve_model(config.DEFAULT_MODEL)[0], config.DEFAULT_MODEL
    finally:
        sys.path.remove(str(tree))
        for name in [name for name in sys.modules if name.split(".")[0] == "diverse_embed"]:
            del sys.modules[name]
        sys.modules.update(ours)


def markdown(report: dict) -> str:
    base, ours = report["base"], report["current"]
    lines = [
        "# Speed across versions: from files, against the CLAP tower",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}",
        "",
        f"{report['files']} ten-second 44.1-kHz WAV files in one call, seconds of audio per second, medians of "
        f"{report['repeats']} runs taking turns in one process. Before: {base} ({report['base_model']}); "
        f"after: this checkout ({report['current_model']}).",
        "",
        "| machine | before (s/s) | after (s/s) | CLAP (s/s) | ratio to CLAP, before | ratio to CLAP, after | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"idle": "idle", "busy": "one core busy"}
    for cond, row in report["results"].items():
        lines.append(
            f"| {labels[cond]} | {row['before']:.1f} | {row['after']:.1f} | {row['clap']:.1f} | "
            f"{row['before'] / row['clap']:.1f}x | **{row['after'] / row['clap']:.1f}x** | {row['after'] / row['before']:.2f} |"
        )
    return "\n".join([*lines, "", f"Current: {ours}.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--conditions", default="idle,busy")
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="versions", help="output file name without extension")
    args = parser.parse_args(argv)
    current = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    with worktree(args.base) as tree:
        before, base_model = model_from(tree)
        after = resolve_model(DEFAULT_MODEL)[0]
        clap = ClapTower("cpu")
        results = {}
        with tempfile.TemporaryDirectory() as folder:
            paths = write_wav_files(Path(folder), args.files)
            runs = {
                "before": lambda: before.embed_files(paths, progress=False),
                "after": lambda: after.embed_files(paths, progress=False),
                "clap": lambda: clap.embed_files(paths),
            }
            for name in args.conditions.split(","):
                with condition(name):
                    times = taking_turns(runs, args.repeats)
                results[name] = {key: args.files * 10 / t for key, t in times.items()}
                print(name, results[name], file=sys.stderr, flush=True)
    report = {
        "command": "python -m benchmarks.versions " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "base": args.base,
        "current": current,
        "base_model": f"{base_model} (fingerprint {before.fingerprint()[:16]})",
        "current_model": f"{DEFAULT_MODEL} (fingerprint {after.fingerprint()[:16]})",
        "files": args.files,
        "repeats": args.repeats,
        "results": results,
    }
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
