"""Faults injected into the index commands, counted: a kill at each rename of `index build`, `add`
and `sync` (strace's syscall injection: the process gets SIGKILL at its Nth rename), a full disk
(a small tmpfs, or a file-size limit where mounting is not allowed) and fuzzed index files.

    python scripts/fault_injection.py --work /tmp/faults [--json counts.json] [--fuzz 60]

After each fault: the command that was hit must either have finished or left an index that opens
and searches; the same command run again must finish (exit 0) with exactly the files of a build
that was never interrupted, each once, and vectors within 1e-5 of that build's. A fuzzed file must
give the right hits or a one-line error with exit 2. Prints the counts (faults injected, survived,
lost, tracebacks) and exits 1 unless lost and tracebacks are both 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diverse_embed.cli import main  # noqa: E402
from diverse_embed.search.index import AudioIndex  # noqa: E402

MODEL = ["--model", "untrained-seed0", "-q", "--num-workers", "0", "--commit-every", "2"]


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "diverse_embed.cli", *map(str, args)]


def clips(folder: Path, count: int, offset: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(offset)
    for i in range(offset, offset + count):
        t = np.arange(int(1.5 * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (200 + 45 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(folder / f"clip_{i:03d}.wav", audio.astype(np.float32), 16000, subtype="PCM_16")
    return folder


def table(folder: Path) -> dict[str, np.ndarray]:
    """path -> clip vector of an index."""
    index = AudioIndex(folder)
    return dict(zip(index.table["path"].tolist(), index.vectors()))


class Counts(dict):
    def fault(self, kind: str, survived: bool, traceback: bool = False, detail: str = "") -> None:
        entry = self.setdefault(kind, {"injected": 0, "survived": 0, "lost": 0, "tracebacks": 0, "failures": []})
        entry["injected"] += 1
        entry["survived"] += survived
        entry["lost"] += not survived
        entry["tracebacks"] += traceback
        if (not survived or traceback) and len(entry["failures"]) < 5:
            entry["failures"].append(detail[-500:])


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)


def kills_at_each_rename(work: Path, counts: Counts) -> None:
    """build, add and sync, each killed at its 1st, 2nd, ... rename until one run finishes unkilled."""
    source = clips(work / "src", 6)
    extra = clips(work / "extra", 4, offset=50)
    reference = work / "reference"
    assert run(cli("index", "build", source, "-o", reference, *MODEL)).returncode == 0
    expected_build = table(reference)
    assert run(cli("index", "add", reference, extra, *MODEL)).returncode == 0
    expected_add = table(reference)
    mirrored = work / "mirrored"  # what sync mirrors: the source, then two files gone and the extra ones in
    source_index, mirrored_index = work / "source-index", work / "mirrored-index"  # copied, not rebuilt, each time
    assert run(cli("index", "build", source, "-o", source_index, *MODEL)).returncode == 0
    shutil.copytree(source, mirrored)  # copy2: the same sizes and mtimes each time, so the index sees them unchanged
    assert run(cli("index", "build", mirrored, "-o", mirrored_index, *MODEL)).returncode == 0

    def before_sync(idx: Path) -> None:
        shutil.rmtree(mirrored, ignore_errors=True)
        shutil.copytree(source, mirrored)
        shutil.copytree(mirrored_index, idx)
        for gone in sorted(mirrored.iterdir())[:2]:
            gone.unlink()
        for path in extra.iterdir():
            shutil.copy(path, mirrored / path.name)

    before_sync(work / "expected-sync-start")
    expected_sync_folder = work / "expected-sync"
    assert run(cli("index", "build", mirrored, "-o", expected_sync_folder, *MODEL)).returncode == 0
    expected_sync = table(expected_sync_folder)
    scenarios = {
        "kill at a rename of index build": (lambda idx: None, ["index", "build", source, "-o", "{idx}", *MODEL]),
        "kill at a rename of index add": (
            lambda idx: shutil.copytree(source_index, idx),
            ["index", "add", "{idx}", extra, *MODEL],
        ),
        "kill at a rename of index sync": (before_sync, ["index", "sync", "{idx}", mirrored, *MODEL]),
    }
    for kind, (prepare, command) in scenarios.items():
        for nth in range(1, 200):
            idx = work / f"idx-{abs(hash(kind)) % 10_000}-{nth}"
            prepare(idx)
            args = [str(idx) if part == "{idx}" else part for part in command]
            hit = run(
                [
                    "strace",
                    "-f",
                    "-o",
                    os.devnull,
                    "-e",
                    f"inject=rename,renameat,renameat2:signal=KILL:when={nth}",
                    *cli(*args),
                ]
            )
            if hit.returncode not in (-9, 137):  # fewer renames than nth: every rename has been hit
                shutil.rmtree(idx)
                break
            opens = opens_and_searches(idx)
            again = run(cli(*args))
            want = {"build": expected_build, "add": expected_add, "sync": expected_sync}[kind.split()[-1]]
            detail = f"{kind} #{nth}: opens after the kill: {opens}; rerun exit {again.returncode}: {again.stderr}"
            survived = again.returncode == 0 and same_vectors(table(idx), want) and opens is not False
            counts.fault(kind, survived, "Traceback" in hit.stderr + again.stderr, detail)
            shutil.rmtree(idx)


def opens_and_searches(idx: Path) -> bool | None:
    """Whether the killed command's index opens and finds its own first file (None: killed before
    its first manifest, so there is no index yet)."""
    if not (idx / "index.json").exists():
        return None
    try:
        index = AudioIndex(idx)
        if not len(index):
            return True
        first = index.table["path"][0]
        return index.search_vector(index.vectors()[0], k=1)[0].path == first
    except Exception:
        return False


def same_vectors(found: dict, expected: dict) -> bool:
    return sorted(found) == sorted(expected) and all(np.abs(found[p] - expected[p]).max() < 1e-5 for p in expected)


def full_disk(work: Path, counts: Counts) -> None:
    """index add onto a disk that fills up: exit 2 in one line, the index as it was; then with room
    again, the same command adds everything once."""
    disk = work / "small-disk"
    disk.mkdir()
    mounted = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(disk)], capture_output=True).returncode
        == 0
    )
    try:
        source, more = clips(work / "disk-src", 2, offset=80), clips(work / "disk-more", 30, offset=90)
        idx = disk / "idx"
        assert run(cli("index", "build", source, "-o", idx, *MODEL)).returncode == 0
        before = table(idx)

        def small_files():  # where tmpfs cannot be mounted: each file may hold at most 20 kB
            resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

        full = run(
            cli("index", "add", idx, more, *MODEL[:-2], "--commit-every", "100"),
            preexec_fn=None if mounted else small_files,
        )
        one_line = full.returncode == 2 and len(full.stderr.strip().splitlines()) == 1
        kept = same_vectors(table(idx), before)
        counts.fault(
            "disk full during index add" + (" (tmpfs)" if mounted else " (file-size limit)"),
            one_line and kept,
            "Traceback" in full.stderr,
            full.stderr,
        )
        moved = work / "idx-moved"
        shutil.copytree(idx, moved)
        again = run(cli("index", "add", moved, more, *MODEL))
        counts.fault(
            "the same add with room again",
            again.returncode == 0 and len(table(moved)) == 32,
            "Traceback" in again.stderr,
            again.stderr,
        )
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], capture_output=True)


def fuzzed_files(work: Path, counts: Counts, trials: int) -> None:
    """Bytes of index.json, a shard or vectors.faiss changed at random: `search` and `index info`
    give the right top hit or a one-line error, exit 2."""
    source = clips(work / "fuzz-src", 4, offset=120)
    pristine = work / "fuzz-idx"
    assert run(cli("index", "build", source, "-o", pristine, *MODEL)).returncode == 0
    rng = np.random.default_rng(0)
    query = source / "clip_121.wav"
    for trial in range(trials):
        idx = work / "fuzz-now"
        shutil.rmtree(idx, ignore_errors=True)
        shutil.copytree(pristine, idx)
        manifest = json.loads((idx / "index.json").read_text())
        target = [idx / "index.json", idx / "vectors.faiss", idx / "shards" / manifest["shards"][0]][trial % 3]
        kind = f"fuzzed {'shard' if target.suffix == '.npz' else target.name}"
        data = bytearray(target.read_bytes())
        if rng.random() < 0.3:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for i in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[i] = int(rng.integers(0, 256))
        target.write_bytes(bytes(data))
        for command in (
            ["search", idx, query, "--json", "--model", "untrained-seed0", "-k", "2"],
            ["index", "info", idx],
        ):
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = main(list(map(str, command)))
            except Exception as error:  # an escaped exception is a traceback for a user
                counts.fault(kind, False, True, f"{command[0]}: {error!r}")
                continue
            if code == 0 and command[0] == "search":
                right = json.loads(out.getvalue())["results"][0]["path"] == str(query)
            else:
                right = code == 0 or (code == 2 and len(err.getvalue().strip().splitlines()) == 1)
            counts.fault(kind, right, False, f"{command[0]} exit {code}: {err.getvalue()} {out.getvalue()[:200]}")


def main_script() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="an empty folder for the indexes and clips")
    parser.add_argument("--json", help="write the counts here")
    parser.add_argument("--fuzz", type=int, default=60, help="fuzzed files (default 60)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    counts = Counts()
    if shutil.which("strace"):
        kills_at_each_rename(work, counts)
    else:
        print("note: strace not found (apt-get install strace): no kills at renames", file=sys.stderr)
    full_disk(work, counts)
    fuzzed_files(work, counts, args.fuzz)
    total = {
        key: sum(entry[key] for entry in counts.values()) for key in ("injected", "survived", "lost", "tracebacks")
    }
    for kind, entry in counts.items():
        print(
            f"{kind}: {entry['injected']} injected, {entry['survived']} survived, {entry['lost']} lost, "
            f"{entry['tracebacks']} tracebacks" + "".join(f"\n  {f}" for f in entry["failures"])
        )
    print(
        f"all: {total['injected']} faults injected, {total['survived']} survived, {total['lost']} lost, "
        f"{total['tracebacks']} tracebacks"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"kinds": counts, "all": total}, indent=2))
    return 0 if total["lost"] == 0 and total["tracebacks"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main_script())
