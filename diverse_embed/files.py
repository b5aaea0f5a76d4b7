"""Files on disk: finding the audio files under folders, and writing files so that a crash, a
kill or a full disk never leaves half of one behind."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

LOG = logging.getLogger(__name__)

# Extensions that `find_audio_files` picks up when given a folder (case-insensitive).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")


def atomic_write(path: str | os.PathLike, write) -> None:
    """write(f) into a temp file in the same folder, fsync, rename over `path`: readers see the old
    file or the new one, never half. Missing parent folders are made. Raises OSError naming `path`
    (and removes the temp file) when it fails."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # mkdir's word for "a folder on the way is a file"
            raise NotADirectoryError(errno.ENOTDIR, "a folder on its path is a file", str(path)) from None
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as err:  # named by the file asked for, not by its temp file
        raise type(err)(err.errno, err.strerror or str(err), str(path)) from None
    finally:
        with contextlib.suppress(OSError):  # a read-only folder refuses even this: the real error stands
            temp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def find_audio_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (searched recursively) into a sorted list of audio files; a folder
    that cannot be read is logged (scan_audio_files says which, for a caller that must know)."""
    files, unreadable = scan_audio_files(inputs)
    for folder, reason in unreadable:
        LOG.warning("%s: cannot read this folder (%s); its files are left out", folder, reason)
    return files


def scan_audio_files(inputs: list[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The audio files under `inputs` (named files kept whatever their extension), and the folders
    that could not be listed, with why: what is under those is unknown, not absent."""
    files: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if not item.is_dir():
            files.append(item)  # a named file is kept whatever its extension; loading will judge it
            continue
        found = [path for path in walk_files(item, unreadable) if path.suffix.lower() in AUDIO_EXTENSIONS]
        if not found and not unreadable:
            LOG.warning("%s: no audio files found (looked for %s)", item, ", ".join(AUDIO_EXTENSIONS))
        files.extend(sorted(found))
    return files, unreadable


def walk_files(top: Path, unreadable: list[tuple[Path, str]]) -> Iterator[Path]:
    """Every file under `top`, folder by folder with a stack of its own (os.walk recurses once per
    level: a tree 1,100 folders deep overflowed it). Like Path.rglob, symlinked folders are not
    entered (no loops) and symlinked files are kept; a folder that cannot be listed is added to
    `unreadable` with why."""
    folders = [top]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as err:
            unreadable.append((folder, err.strerror or str(err)))
            continue
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)
            except OSError:  # vanished or unreadable meanwhile: neither a file nor a folder to us
                continue
