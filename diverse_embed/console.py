"""What every command shares: notes for the user, the one-line error, the model a command names,
its input files, and the options that several commands take. Library modules log; the commands
decide what the user sees."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import DEFAULT_MODEL, PRECISIONS, UNTRAINED
from .errors import CommandError
from .options import positive_int
from .parallel import COMMIT_EVERY, DEFAULT_BATCH_SIZE


def say(message: str) -> None:
    """A note on stderr, printed above any progress bar rather than into it; names in it shown escaped."""
    from tqdm.auto import tqdm

    tqdm.write(shown(message), file=sys.stderr)


# Bidirectional-text controls: a name holding one can reorder what the terminal shows around it.
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(text: object) -> str:
    """Text fit for a terminal: control characters (ESC, CR, TAB, ...), bidirectional controls and the
    bytes of a file name that are not UTF-8 (os.fsdecode's surrogates) written as escapes, \\x1b,
    \\u202e, \\xff; everything else as it is."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\n" or (char.isprintable() and char not in BIDI_CONTROLS):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def load_model(name: str | None, device: str | None, quiet: bool = False, precision: str = "float32"):
    """The model --model names (default: the bundled one) on --device, embedding in --precision,
    and the name to record."""
    from .distributed import resolve_device
    from .resolve import resolve_model

    target = resolve_device(device)  # a wrong --device is said before the model loads
    if name == UNTRAINED and not quiet:
        say(
            "note: using an UNTRAINED model (random weights, seed 0): its embeddings only show that the plumbing works."
        )
    model, recorded = resolve_model(name)
    model.precision = precision
    return model.to(target), recorded


def find_inputs(inputs: list[str]) -> list[Path]:
    from .files import find_audio_files

    if "" in inputs:  # Path("") is the current folder: an unset shell variable would embed all of it
        raise CommandError(
            "an empty name among the inputs (an unset variable?): name files or folders, or . for this folder"
        )
    missing = [name for name in inputs if not Path(name).exists()]
    if missing:
        broken = [name for name in missing if os.path.lexists(name)]
        if broken:
            raise CommandError("a symbolic link to nothing, or a loop of links: " + ", ".join(broken))
        raise CommandError("no such file or folder: " + ", ".join(missing))
    paths = find_audio_files(inputs)
    if not paths:
        raise CommandError("no audio files found in " + " ".join(inputs))
    return paths


# Arguments several commands take, each declared here once: name -> (flags, add_argument keywords).
SHARED_ARGUMENTS = {
    "index": (("index",), {"help": "the index folder"}),
    "inputs": (("inputs",), {"nargs": "+", "help": "audio files and folders (searched recursively)"}),
    "inputs or tables": (("inputs",), {"nargs": "*", "help": "audio files and folders (searched recursively)"}),
    "from parquet": (
        ("--from-parquet",),
        {
            "nargs": "+",
            "metavar": "TABLE",
            "help": "instead of audio: vectors made elsewhere, Parquet files or folders of embed's columns "
            "(embed -o x.parquet, embed --ray, index export), all of the index's model",
        },
    ),
}


def add_shared_arguments(command: argparse.ArgumentParser, *names: str) -> None:
    for name in names:
        flags, keywords = SHARED_ARGUMENTS[name]
        command.add_argument(*flags, **keywords)


def add_model_arguments(
    command: argparse.ArgumentParser, default: str = f"default: {DEFAULT_MODEL}", device: bool = True
) -> None:
    command.add_argument(
        "--model",
        help=f"a bundled model name, a from_pretrained folder, a .safetensors file "
        f"or a Hugging Face Hub id ({default}); {UNTRAINED} for random weights",
    )
    if device:
        command.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")
        command.add_argument(
            "--precision",
            choices=PRECISIONS,
            default="float32",
            help="the networks' float format: bfloat16 is faster where the processor has it (vectors within "
            "a cosine of 0.9998 of float32's; elsewhere it falls back to float32); auto: bfloat16 where native "
            "(default float32)",
        )


def add_embedding_arguments(command: argparse.ArgumentParser, commits: bool = False) -> None:
    command.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"1-s chunks per forward pass (default {DEFAULT_BATCH_SIZE})",
    )
    command.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="threads decoding audio ahead of the model (default: planned for the machine; 0: none)",
    )
    if commits:
        command.add_argument(
            "--commit-every",
            type=positive_int,
            default=COMMIT_EVERY,
            help=f"files per commit: an interrupted build loses at most this many (default {COMMIT_EVERY})",
        )
    command.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notes")
