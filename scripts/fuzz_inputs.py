"""A seeded fuzzer of everything a user hands the commands: audio headers (WAV and FLAC), config.json
fields, safetensors headers, index manifests and shard columns, and command lines.

    python scripts/fuzz_inputs.py --work /tmp/fuzz --cases 2000 [--seed 0] [--json counts.json]

Each case runs a command in this process (`diverse_embed.cli.main`), as a user would from a shell.
It passes when the command finishes (exit 0 or 1: some files skipped, each said) or fails in one
line (exit 2, argparse's usage included); an exception that escapes is a traceback. After every
case the source audio and the files put beside the index (a `shards/README.txt`, a `.notes.tmp`)
must still be there, byte for byte: anything missing is lost. Prints the counts per kind and the
process's peak RSS, and exits 1 on any traceback, any loss, or a peak over --max-rss-mb.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diverse_embed.cli import main  # noqa: E402

QUIET = ["-q", "--num-workers", "0"]
ODD_VALUES = [
    0,
    -1,
    1,
    2,
    7,
    4096,
    10**6,
    2**31 - 1,
    2**63,
    -(2**63),
    1e308,
    float("nan"),
    float("inf"),
    0.5,
    True,
    None,
    "",
    "x",
    "NaN",
    [],
    [1],
    {},
    {"a": 1},
]
ODD_RATES = [0, 1, 999, 1000, 7999, 22254, 383_999, 768_000, 768_001, 4_000_037, 2**31 - 1, 2**32 - 1]


def run(args: list) -> tuple[str, int, str]:
    """('ok' | 'traceback', exit code, stderr) of one command in this process."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(map(str, args)))
    except SystemExit as stop:  # argparse: exit 2 with its usage line, or 0 for --help
        code = stop.code if isinstance(stop.code, int) else 2
    except Exception as error:
        return "traceback", -1, f"{error!r}"
    said = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    one_line = code != 2 or len(said) <= 1
    return ("ok" if code in (0, 1, 2) and one_line else "traceback"), code, err.getvalue()[-300:]


class Fuzzer:
    def __init__(self, work: Path, seed: int):
        self.work, self.rng = work, np.random.default_rng(seed)
        self.src = work / "src"
        self.src.mkdir(parents=True)
        t = np.arange(24000) / 16000
        for i, freq in enumerate((330, 550, 880)):
            sf.write(self.src / f"good{i}.wav", (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
        sf.write(self.src / "good3.flac", (0.3 * np.sin(2 * np.pi * 1200 * t)).astype(np.float32), 16000)
        self.model = work / "model"
        from diverse_embed.resolve import untrained_model

        untrained_model().save_pretrained(self.model)
        self.index = work / "idx"
        assert run(["index", "build", self.src, "-o", self.index, "--model", "untrained-seed0", *QUIET])[1] == 0
        (self.index / "shards" / "README.txt").write_text("a user's note: never ours to delete\n")
        (self.index / ".notes.tmp").write_text("nor this\n")
        self.pristine = work / "idx-pristine"
        shutil.copytree(self.index, self.pristine)
        self.kept = self.fingerprints()

    def fingerprints(self) -> dict[Path, str]:
        files = [*self.src.iterdir(), self.index / "shards" / "README.txt", self.index / ".notes.tmp"]
        return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in files}

    def lost(self) -> list[str]:
        return [
            str(p)
            for p, digest in self.kept.items()
            if not p.is_file() or hashlib.sha1(p.read_bytes()).hexdigest() != digest
        ]

    def pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def audio_header(self) -> list:
        """A WAV or FLAC whose first bytes are changed (a rate field, or any byte) beside good files."""
        source = self.pick([self.src / "good0.wav", self.src / "good3.flac"])
        data = bytearray(source.read_bytes())
        if source.suffix == ".wav" and self.rng.random() < 0.5:
            data[24:28] = struct.pack("<I", self.pick(ODD_RATES) % 2**32)
        else:
            for i in self.rng.integers(0, 64, int(self.rng.integers(1, 6))):
                data[i] = int(self.rng.integers(256))
        folder = self.work / "case"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (folder / f"fuzzed{source.suffix}").write_bytes(bytes(data))
        command = self.pick(
            [
                ["embed", folder, self.src / "good1.wav", "-o", self.work / "out.npz"],
                ["embed", folder, "--segments", "-o", self.work / "out.parquet"],
                ["search", self.index, folder],
            ]
        )
        return [*command, "--model", "untrained-seed0", *QUIET]

    def config(self) -> list:
        """The model's config.json with one field (or one branch's field) set to an odd value."""
        folder = self.work / "model-case"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.model, folder)
        config = json.loads((folder / "config.json").read_text())
        key = self.pick(sorted(config))
        if isinstance(config[key], dict) and config[key] and self.rng.random() < 0.7:
            config[key][self.pick(sorted(config[key]))] = self.pick(ODD_VALUES)
        else:
            config[key] = self.pick(ODD_VALUES)
        (folder / "config.json").write_text(json.dumps(config))
        return ["embed", self.src / "good0.wav", "-o", self.work / "out.npz", "--model", folder, *QUIET]

    def weights(self) -> list:
        """model.safetensors with its header's bytes changed, its dtypes swapped, or cut short."""
        folder = self.work / "model-case"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.model, folder)
        path = folder / "model.safetensors"
        data = bytearray(path.read_bytes())
        (length,) = struct.unpack("<Q", data[:8])
        choice = self.rng.random()
        if choice < 0.3:
            header = data[8 : 8 + length].replace(
                b'"F32"', b'"%s"' % self.pick([b"I64", b"U8", b"C64", b"F16", b"BOOL"])
            )
            data[8 : 8 + length] = header
        elif choice < 0.6:
            for i in self.rng.integers(0, 8 + length, int(self.rng.integers(1, 6))):
                data[i] = int(self.rng.integers(256))
        else:
            data = data[: int(self.rng.integers(0, len(data)))]
        path.write_bytes(bytes(data))
        return ["embed", self.src / "good0.wav", "-o", self.work / "out.npz", "--model", folder, *QUIET]

    def index_files(self) -> list:
        """A shard column replaced by an array of another kind or shape, or a manifest field changed."""
        shutil.rmtree(self.index)
        shutil.copytree(self.pristine, self.index)
        manifest = json.loads((self.index / "index.json").read_text())
        if self.rng.random() < 0.4:
            manifest[self.pick(sorted(manifest))] = self.pick(ODD_VALUES)
            (self.index / "index.json").write_text(json.dumps(manifest))
        else:
            shard = self.index / "shards" / manifest["shards"][0]
            columns = dict(np.load(shard))
            name = self.pick(sorted(columns))
            rows = len(columns["path"])
            columns[name] = self.pick(
                [
                    np.zeros((rows, 3), np.float32),
                    np.zeros(rows + 1, np.float32),
                    np.array(["x"] * rows),
                    np.arange(rows),
                    np.zeros((2, 64), np.float32),
                    np.zeros((), np.float32),
                    np.zeros(rows, np.complex64),
                    np.ones(rows, bool),
                ]
            )
            np.savez(shard, **columns)
        command = self.pick(
            [
                ["search", self.index, self.src / "good0.wav", "--model", "untrained-seed0"],
                ["index", "info", self.index],
                ["duplicates", self.index],
                ["index", "export", self.index, "-o", self.work / "x.parquet"],
                ["index", "add", self.index, self.src / "good1.wav", "--model", "untrained-seed0", *QUIET],
            ]
        )
        return command

    def command_line(self) -> list:
        """A command, then words drawn from the commands' options and odd values."""
        commands = [
            ["embed"],
            ["tag"],
            ["search", self.index],
            ["duplicates", self.index],
            ["index", "build"],
            ["index", "add", self.index],
            ["index", "sync", self.index],
            ["index", "remove", self.index],
            ["index", "info"],
            ["index", "export", self.index],
        ]
        words = [
            "--model",
            "--device",
            "--batch-size",
            "--threshold",
            "-k",
            "-o",
            "--output",
            "--segments",
            "--json",
            "--csv",
            "--queries",
            "-q",
            "--num-workers",
            "0",
            "-1",
            "nan",
            "1e309",
            "100000",
            "cuda",
            "meta",
            "",
            "untrained-seed0",
            "/dev/zero",
            "/proc/self/mem",
            str(self.src),
            str(self.index),
            str(self.src / "good0.wav"),
            str(self.work / "o.npz"),
            str(self.work / "o.parquet"),
        ]
        return [*self.pick(commands), *(self.pick(words) for _ in range(int(self.rng.integers(1, 8))))]


def main_script() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="an empty folder for the cases")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-rss-mb", type=int, default=2048, help="the bound on the process's peak RSS")
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    fuzzer = Fuzzer(Path(args.work).resolve(), args.seed)
    os.chdir(fuzzer.work)  # an empty name ("") means the current folder: the work folder, never the caller's
    kinds = [fuzzer.audio_header, fuzzer.config, fuzzer.weights, fuzzer.index_files, fuzzer.command_line]
    counts = {kind.__name__: {"cases": 0, "tracebacks": 0, "exits": {}, "failures": []} for kind in kinds}
    lost: list[str] = []
    for case in range(args.cases):
        kind = kinds[case % len(kinds)]
        command = kind()
        verdict, code, err = run(command)
        entry = counts[kind.__name__]
        entry["cases"] += 1
        entry["exits"][str(code)] = entry["exits"].get(str(code), 0) + 1
        if verdict != "ok":
            entry["tracebacks"] += 1
            entry["failures"].append(f"case {case}: {' '.join(map(str, command))[:200]} -> {err}")
        lost += fuzzer.lost()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = {
        "cases": args.cases,
        "tracebacks": sum(e["tracebacks"] for e in counts.values()),
        "lost": len(lost),
        "peak_rss_mb": round(peak_mb),
        "max_rss_mb": args.max_rss_mb,
    }
    for name, entry in counts.items():
        print(
            f"{name}: {entry['cases']} cases, exits {entry['exits']}, {entry['tracebacks']} tracebacks"
            + "".join(f"\n  {f}" for f in entry["failures"][:5])
        )
    print(
        f"all: {total['cases']} cases, {total['tracebacks']} tracebacks, {total['lost']} files lost, "
        f"peak RSS {total['peak_rss_mb']} MB (bound {args.max_rss_mb} MB)" + "".join(f"\n  lost {p}" for p in lost[:5])
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"kinds": counts, "all": total}, indent=2))
    return 0 if not total["tracebacks"] and not lost and peak_mb <= args.max_rss_mb else 1


if __name__ == "__main__":
    sys.exit(main_script())
