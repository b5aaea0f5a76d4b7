"""The on-disk format of an index, and how it changes: a manifest, append-only shards, atomic
commits under a lock. What the vectors are for (embedding, FAISS, search) is index.py's.

    INDEX_DIR/
      index.json        the manifest and the commit point: model, fingerprint, dimension, shards
      shards/*.npz      one per commit: vectors (n, D) float32 and their side table (uncompressed,
                        so a row of any column is read where it lies)
      vectors.faiss     the FAISS index over all live vectors (derived; rebuilt when stale)
      rows.bin          the live rows in FAISS id order, each as (shard, row in it): a search reads
                        its hits' paths and times, and the vectors it re-ranks, from the shards by
                        row, so no per-row table is held in RAM and the vectors are on disk once
                        (derived, written with vectors.faiss)
      skipped.tsv       files that could not be embedded: path <TAB> reason, the name's own bytes,
                        backslash, tab, newline and CR escaped (\\\\, \\t, \\n, \\r)
      .lock             taken while writing, so concurrent writers wait for each other

Writes are append-only and atomic (temp file, fsync, rename): a shard becomes part of the index
only when index.json, rewritten last, names it. A build killed at any point loses at most the
files embedded since its last commit, and re-running it skips what is already in (same path,
size and modification time). A file that changed is embedded again; its newer rows supersede
the old ones, so a path never appears twice. Removing a file commits a shard of tombstone rows
(`removed` true) that supersede its vectors the same way.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import stat as stat_module
import struct
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import files
from ..config import DiverseEmbedConfig
from ..errors import AudioIndexError
from .index_types import INDEX_TYPES

LOG = logging.getLogger(__name__)

FORMAT = "diverse-embed-index"
# 2: shards may hold tombstone rows (a `removed` column); 3: paths as their bytes, not 4-byte
# characters. Older indexes read as before.
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "index.json"
TABLE_COLUMNS = ("path", "start", "end", "duration", "size", "mtime_ns")


# One file's rows as the index stores them: path, starts (r,) and ends (r,) in seconds (NaN for the
# whole clip), vectors (r, dim) float32, the file's duration, and (size, mtime_ns) read before embedding.
FileRows = tuple[str, np.ndarray, np.ndarray, np.ndarray, float, tuple[int, int]]


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    unchanged: int = 0  # already indexed with the same size and modification time
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    removed: list[str] = field(default_factory=list)  # by remove or sync: no longer in the index
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # sync: folders it could not list, and why
    kept_unread: int = 0  # sync: indexed files under those folders, kept since nothing says they are gone


@contextmanager
def writing(folder: Path) -> Iterator[None]:
    """A failed write (a full disk, a quota, a read-only folder) said as an index error: the last
    commit stands."""
    try:
        yield
    except OSError as err:
        raise AudioIndexError(
            f"cannot write into {folder} ({err.strerror or err}); the index keeps what it had "
            "committed before, and running the same command again resumes"
        ) from None


class IndexStore:
    """An index folder's manifest, shards and side table; AudioIndex builds on it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest = self._read_manifest()
        self._table: dict[str, np.ndarray] | None = None
        self._rows: RowsOnDisk | None = None  # the side table on disk, once a current build is loaded
        self._faiss = None  # the searchable FAISS index, once loaded (index.py)

    @classmethod
    def _create(cls, folder: Path, manifest: dict) -> None:
        """Write the first manifest of a new index into `folder` (missing or empty)."""
        if (folder / MANIFEST).exists():
            raise AudioIndexError(f"{folder} already holds an index; open it instead")
        if folder.exists() and not only_leftovers(folder):
            raise AudioIndexError(f"{folder} exists and is not empty, and holds no index: refusing to write into it")
        with writing(folder):
            (folder / "shards").mkdir(parents=True, exist_ok=True)
            with cls._locked(folder):
                if not (folder / MANIFEST).exists():  # another rank may have won the race
                    cls._write_manifest(folder, manifest)

    def _read_manifest(self) -> dict:
        path = self.folder / MANIFEST
        if not self.folder.is_dir():
            raise AudioIndexError(f"{self.folder}: no such index folder")
        if not path.is_file():
            raise AudioIndexError(f"{self.folder}: not an index folder (no {MANIFEST})")
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise AudioIndexError(f"{path}: damaged manifest ({err})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise AudioIndexError(f"{self.folder}: {MANIFEST} is not a diverse-embed index manifest")
        if manifest.get("version") not in READABLE_VERSIONS:
            raise AudioIndexError(
                f"{self.folder}: index format version {manifest.get('version')}, this code reads {VERSION}"
            )
        problem = manifest_problem(manifest)
        if problem:
            raise AudioIndexError(f"{path}: damaged manifest ({problem})")
        missing = [name for name in manifest["shards"] if not (self.folder / "shards" / name).is_file()]
        if missing:
            raise AudioIndexError(f"{self.folder}: damaged index, shard files missing: {missing[:3]}")
        return manifest

    @staticmethod
    def _write_manifest(folder: Path, manifest: dict) -> None:
        manifest["version"] = VERSION  # a version 1 index is version 2 from its first new commit
        files.atomic_write(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))

    @staticmethod
    @contextmanager
    def _locked(folder: Path) -> Iterator[None]:
        """An exclusive lock on the folder: a second writer waits here until the first commits."""
        with open(Path(folder) / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        self.manifest = self._read_manifest()
        self._table, self._rows, self._faiss = None, None, None

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Read under a shared lock: no commit or build lands meanwhile, so the manifest, the table
        and vectors.faiss read inside are one generation (a folder that cannot be locked, read-only
        media say, is read as it is)."""
        try:
            lock = open(self.folder / ".lock", "rb")
        except OSError:
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    @property
    def table(self) -> dict[str, np.ndarray]:
        """The side table of live rows, columns TABLE_COLUMNS, row i = FAISS id i."""
        if self._table is None:
            self._table, _ = self._live_rows(with_vectors=False)
        return self._table

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self.table["path"])

    def row(self, i: int) -> tuple[object, str, float, float]:
        """FAISS id i's (key of its file, path, start, end): read from the side table on disk when a
        current build is loaded, else from the table in RAM."""
        if self._rows is not None:
            return self._rows.row(i)
        table = self.table
        return table["path"][i], str(table["path"][i]), float(table["start"][i]), float(table["end"][i])

    def files(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every indexed file."""
        table = self.table
        return {p: (int(s), int(m)) for p, s, m in zip(table["path"], table["size"], table["mtime_ns"])}

    def skipped(self) -> dict[str, str]:
        path = self.folder / "skipped.tsv"
        if not path.exists():
            return {}
        lines = path.read_bytes().decode("utf-8", "surrogateescape").split("\n")[1:]
        rows = [line.split("\t", 1) for line in lines if "\t" in line]
        return {unescaped(p): unescaped(reason) for p, reason in rows}

    def check_shards(self) -> None:
        """Read every shard's side-table columns, one shard at a time: damage (a truncated file, a
        column missing or of the wrong kind, altered bytes that zip's CRC catches) is an
        AudioIndexError naming the shard, as reading the table would give, without holding it."""
        for name in self.manifest["shards"]:
            shard = DamageChecked(self.folder / "shards" / name, self.manifest["dim"])
            for column in TABLE_COLUMNS:
                shard[column]

    def _live_shards(self) -> Iterator[tuple[DamageChecked, np.ndarray]]:
        """(shard, rows to keep) in commit order: each path's rows from the newest shard that names
        it, none where that shard removes it. Paths are compared by their hashes (`newest_rows`), so
        RAM holds 16 bytes a row, never the paths; a shard's arrays are read only when asked for."""
        shards = [
            DamageChecked(self.folder / "shards" / name, self.manifest["dim"]) for name in self.manifest["shards"]
        ]
        for shard, keep in zip(shards, newest_rows([path_hashes(shard.column("path")) for shard in shards])):
            if "removed" in shard.files:
                keep &= ~shard["removed"]
            yield shard, keep

    def _live_rows(self, with_vectors: bool) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The side table of live rows and, if asked, their vectors (n, dim) float32."""
        columns = {name: [] for name in TABLE_COLUMNS}
        vectors = []
        for shard, keep in self._live_shards():
            for name in TABLE_COLUMNS:
                columns[name].append(shard[name][keep])
            if with_vectors:
                vectors.append(shard["vectors"][keep])
        table = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in columns.items()}
        if not self.manifest["shards"]:
            table["path"] = np.zeros(0, dtype=str)
        matrix = None
        if with_vectors:
            matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.manifest["dim"]), np.float32)
        return table, matrix

    def vectors(self) -> np.ndarray:
        """All live vectors (n, dim) float32, row i = FAISS id i."""
        return self._live_rows(with_vectors=True)[1]

    def _commit(self, rows: list[FileRows], failed: list[tuple[str, str]], report: AddReport, removed: list[str] = ()):
        """One atomic commit: a shard of the embedded files' rows (`FileRows`) and of tombstones for
        `removed` (no rows: no shard), the files that failed into skipped.tsv (and the added and
        removed ones out of it), then the manifest."""
        if not rows and not failed and not removed:
            return
        shard, added = self._shard_arrays(rows, removed), [row[0] for row in rows]
        with writing(self.folder), self._locked(self.folder):
            manifest = self._read_manifest()  # another writer may have committed meanwhile
            if len(shard["path"]):
                name = f"{manifest['generation']:06d}-{uuid.uuid4().hex[:8]}.npz"
                files.atomic_write(self.folder / "shards" / name, lambda f: np.savez(f, **shard))
                manifest["shards"].append(name)
            manifest["generation"] += 1
            skipped = {**self.skipped(), **dict(failed)}
            for path in list(added) + list(removed):
                skipped.pop(path, None)
            self._write_skipped(skipped)
            self._write_manifest(self.folder, manifest)
            foreign = remove_leftovers(self.folder, manifest)
        if foreign:
            LOG.warning(
                "%s: %d file(s) in shards/ that the index did not write, left alone (e.g. %s)",
                self.folder,
                len(foreign),
                foreign[0].name,
            )
        self._refresh()
        report.added += list(added)
        report.skipped += failed
        report.removed += list(removed)

    def _shard_arrays(self, rows: list[FileRows], removed: list[str] = ()) -> dict[str, np.ndarray]:
        """The shard of `rows` (each file's rows: its clip, and its segments when the index has
        them) and of one tombstone row (zero vector, `removed` true) per removed path."""
        dim = self.manifest["dim"]
        columns = {name: [] for name in TABLE_COLUMNS}
        vectors = []
        for path, starts, ends, file_vectors, duration, (size, mtime_ns) in rows:
            vectors.append(np.asarray(file_vectors, np.float32).reshape(-1, dim))
            for name, values in zip(
                TABLE_COLUMNS,
                (
                    [path] * len(starts),
                    starts,
                    ends,
                    [duration] * len(starts),
                    [size] * len(starts),
                    [mtime_ns] * len(starts),
                ),
            ):
                columns[name].extend(values)
        live = sum(len(v) for v in vectors)
        vectors.append(np.zeros((len(removed), dim), np.float32))
        for name, value in zip(TABLE_COLUMNS, (None, math.nan, math.nan, math.nan, -1, -1)):
            columns[name].extend(list(removed) if name == "path" else [value] * len(removed))
        arrays = {name: np.array(values) for name, values in columns.items() if name != "path"}
        arrays["path"] = np.array([os.fsencode(p) for p in columns["path"]], dtype=bytes)  # 1 byte a character, not 4
        arrays["vectors"] = np.concatenate(vectors)
        arrays["removed"] = np.arange(len(arrays["vectors"])) >= live
        return arrays

    def _known_under(self, targets: list[Path]) -> list[str]:
        """Indexed or skipped paths equal to a target or under it (a folder), sorted: found by
        bisection in the sorted paths, so many targets cost no more than one pass each."""
        known = sorted(set(self.files()) | set(self.skipped()))
        found = set()
        for target in map(str, targets):
            inside = target.rstrip(os.sep) + os.sep
            i = bisect.bisect_left(known, target)
            if i < len(known) and known[i] == target:
                found.add(target)
            i = bisect.bisect_left(known, inside)
            while i < len(known) and known[i].startswith(inside):
                found.add(known[i])
                i += 1
        return sorted(found)

    def _write_skipped(self, skipped: dict[str, str]) -> None:
        text = "path\treason\n" + "".join(f"{escaped(p)}\t{escaped(r)}\n" for p, r in sorted(skipped.items()))
        files.atomic_write(self.folder / "skipped.tsv", lambda f: f.write(text.encode("utf-8", "surrogateescape")))


def indexed_path(path: str | os.PathLike) -> str:
    """The name a file is indexed under: absolute, its folders' links resolved, but its own name
    kept, so a symbolic link in a synced folder is that folder's file (deleting the link removes it)."""
    path = Path(path).absolute()
    return str(path.parent.resolve() / path.name)


def stat(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file, (-1, -1) when it cannot be read."""
    try:
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    except OSError:
        return -1, -1


TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
TSV_UNESCAPES = {value[1]: key for key, value in TSV_ESCAPES.items()}


def escaped(text: str) -> str:
    """A skipped.tsv field: any file name (tabs and newlines included) stays one field of one line."""
    return "".join(TSV_ESCAPES.get(char, char) for char in text)


def unescaped(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: TSV_UNESCAPES.get(m.group(1), m.group(0)), field)


SHARD_COLUMNS = TABLE_COLUMNS + ("vectors",)


# What each shard column must be: (numpy kinds, dimensions). A foreign or hand-edited shard (a
# `start` of text, `removed` of integers, a 2-D path) is damage, said in one line, never a raw error.
COLUMN_KINDS = {
    "path": ("US", 1),
    "start": ("f", 1),
    "end": ("f", 1),
    "duration": ("f", 1),
    "size": ("iu", 1),
    "mtime_ns": ("iu", 1),
    "removed": ("b", 1),
    "vectors": ("f", 2),
}


def npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy array whose file `f` is positioned at; after it, `f`
    is at the array's first byte."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


NOT_DAMAGE = (errno.EMFILE, errno.ENFILE, errno.EACCES, errno.EPERM, errno.ENOMEM)  # errors a shard is not to blame for


class DamageChecked:
    """A shard's arrays, read as np.load reads them, where a damaged file (truncated, foreign, a
    column missing or of the wrong kind or length; zip's CRC catches altered bytes) is an
    AudioIndexError naming it. Every column's header is checked at opening, before any is read:
    its kind and dimensions, as long as the paths, `dim` wide for the vectors. The file is open
    only while it is read (a build holds every shard: 1,500 at 10^8 rows, past a common limit of
    open files)."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, dim
        try:
            with np.load(path) as npz:
                shapes = {name: self.header(npz, name) for name in npz.files}
                self.files = npz.files
        except AudioIndexError:
            raise
        except Exception as err:  # BadZipFile, EOFError, ValueError, OSError: whatever a broken file gives
            raise self.damaged(f"{type(err).__name__}: {str(err)[:200]}", err) from None
        missing = [name for name in SHARD_COLUMNS if name not in shapes]
        if missing:
            raise self.damaged(f"no {', '.join(missing)}")
        self.rows = shapes["path"][0]
        for name, shape in shapes.items():
            if shape[0] != self.rows:
                raise self.damaged(f"column {name} has {shape[0]} rows, path {self.rows}")
        if shapes["vectors"][1] != dim:
            raise self.damaged(f"vectors of dimension {shapes['vectors'][1]}, the index's is {dim}")

    def header(self, npz: np.lib.npyio.NpzFile, name: str) -> tuple[int, ...]:
        """A column's shape from its .npy header (nothing else read), after its kind and dimensions."""
        with npz.zip.open(f"{name}.npy") as member:
            shape, _, dtype = npy_header(member)
        kinds, dimensions = COLUMN_KINDS.get(name, ("", len(shape)))
        if (kinds and dtype.kind not in kinds) or len(shape) != dimensions or not shape:
            raise self.damaged(f"column {name} holds {len(shape)}-D {dtype} values")
        return shape

    def column(self, name: str) -> np.ndarray:
        """A column as stored (paths: their bytes in a version 3 shard, text in older ones)."""
        try:
            with np.load(self.path) as npz:
                return npz[name]
        except Exception as err:
            raise self.damaged(f"{type(err).__name__}: {str(err)[:200]}", err) from None

    def __getitem__(self, name: str) -> np.ndarray:
        """A column, paths as text."""
        values = self.column(name)
        if name == "path" and values.dtype.kind == "S":
            return np.array([os.fsdecode(bytes(p)) for p in values], dtype=str) if len(values) else np.zeros(0, str)
        return values

    def damaged(self, why: str, err: Exception | None = None) -> AudioIndexError:
        if isinstance(err, OSError) and err.errno in NOT_DAMAGE:  # the machine's doing, not the file's
            return AudioIndexError(f"{self.path}: cannot read this index shard ({err.strerror})")
        return AudioIndexError(
            f"{self.path}: damaged index shard ({why}); rebuild the index (a new index build of the same files)"
        )


def manifest_problem(manifest: dict) -> str | None:
    """What is wrong with a manifest's fields, or None; shard names must be plain files of shards/."""
    kinds = {
        "model": str,
        "fingerprint": str,
        "dim": int,
        "config": dict,
        "segments": bool,
        "index_type": str,
        "generation": int,
        "shards": list,
    }
    for key, kind in kinds.items():
        if not isinstance(manifest.get(key), kind) or (kind is int and isinstance(manifest[key], bool)):
            return f"{key} missing or not a {kind.__name__}"
    if not 1 <= manifest["dim"] <= 65_536 or manifest["generation"] < 0:
        return "dim or generation out of range"
    for name in manifest["shards"]:
        if not isinstance(name, str) or Path(name).name != name or name.startswith(".") or not name.endswith(".npz"):
            return f"shard name {name!r} is not a file of shards/"
    built = manifest.get("faiss")
    if built is not None and not (
        isinstance(built, dict) and isinstance(built.get("generation"), int) and isinstance(built.get("type"), str)
    ):
        return "faiss entry malformed"
    if manifest["index_type"] not in INDEX_TYPES:
        return f"index_type {manifest['index_type']!r} is none of {', '.join(INDEX_TYPES)}"
    try:
        config = DiverseEmbedConfig.from_dict(manifest["config"])
    except (TypeError, ValueError) as err:
        return f"config: {err}"
    if manifest["dim"] != config.embedding_dim:
        return f"dim {manifest['dim']}, but its config makes vectors of {config.embedding_dim}"
    return None


# What the index itself writes, and so all it may ever delete: its files, the shards named by
# generation and a random tag, and files.atomic_write's temp files of those (".NAME.TAG.tmp").
OWN_FILES = (MANIFEST, "skipped.tsv", "vectors.faiss", "vectors.f32", "rows.bin", "paths.bin", "path_offsets.bin")
SHARD_NAME = re.compile(r"\d{6,}-[0-9a-f]{8}\.npz")
OWN_TEMP = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")


def is_own_temp(name: str, in_shards: bool) -> bool:
    """Whether `name` is a temp file the index writes: in the index folder, of one of OWN_FILES; in
    shards/, of a shard."""
    match = OWN_TEMP.fullmatch(name)
    if not match:
        return False
    return bool(SHARD_NAME.fullmatch(match["name"])) if in_shards else match["name"] in OWN_FILES


def regular_file(path: Path) -> bool:
    """A plain file, not a symbolic link to one (nothing is deleted through a link)."""
    try:
        return stat_module.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def own_shards_folder(folder: Path) -> Path | None:
    """folder/shards when it is a real folder of the index's; None when it is missing or a link
    (the index then deletes nothing in it: where it points is not proven to be its own)."""
    shards = folder / "shards"
    return shards if shards.is_dir() and not shards.is_symlink() else None


def only_leftovers(folder: Path) -> bool:
    """Whether a folder without a manifest holds nothing but what a first build killed before its
    first commit leaves: the lock, its own temp files, a shards/ folder of its own shards and temps."""
    for entry in folder.iterdir():
        if entry.name == "shards" and own_shards_folder(folder):
            if any(
                not (regular_file(e) and (SHARD_NAME.fullmatch(e.name) or is_own_temp(e.name, True)))
                for e in entry.iterdir()
            ):
                return False
        elif not (regular_file(entry) and (entry.name == ".lock" or is_own_temp(entry.name, False))):
            return False
    return True


def remove_leftovers(folder: Path, manifest: dict) -> list[Path]:
    """Under the writers' lock, delete what dead writers left: the index's own temp files and the
    shards (by their name pattern) that the manifest does not name. Only plain files the index
    can prove it wrote, never through a link; anything else is left alone. Returns what was found
    in shards/ that is not the index's (reported, never removed)."""
    named = set(manifest["shards"])
    foreign = []
    for entry in folder.iterdir():
        if regular_file(entry) and is_own_temp(entry.name, in_shards=False):
            entry.unlink(missing_ok=True)
    shards = own_shards_folder(folder)
    for entry in shards.iterdir() if shards else []:
        if entry.name in named:
            continue
        if regular_file(entry) and (SHARD_NAME.fullmatch(entry.name) or is_own_temp(entry.name, in_shards=True)):
            entry.unlink(missing_ok=True)
        else:
            foreign.append(entry)
    return foreign


ROW_DTYPE = np.dtype([("shard", "<u4"), ("row", "<u4")])  # a live row: its shard's place in the manifest, its row there
SIDE_TABLE_LAYOUT = "shard-row"  # what the manifest's faiss.rows records; an older side table reads as none
MAX_OPEN_SHARDS = 64  # shard files a searching process keeps open at once


class ShardColumns:
    """Where a shard's columns lie in its file, so that a row of one is read with pread: np.savez
    stores each array uncompressed, after its zip member's local header and its .npy header. The
    shard is checked as `DamageChecked` checks it, and the bytes of its paths and times against
    zip's CRC (read once, ~56 bytes a row, then dropped); the vectors' bytes are not."""

    COLUMNS = ("path", "start", "end", "vectors")

    def __init__(self, path: Path, dim: int):
        self.path, self.where = path, {}  # column -> (offset of row 0, bytes a row, rows, dtype)
        shard = DamageChecked(path, dim)
        for name in ("path", "start", "end"):
            shard.column(name)  # a flipped byte is a one-line error, never a wrong path or time
        try:
            with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
                for name in self.COLUMNS:
                    member = archive.getinfo(f"{name}.npy")
                    if member.compress_type != zipfile.ZIP_STORED:
                        raise ValueError(f"column {name} is compressed")
                    f.seek(member.header_offset + 26)
                    name_length, extra_length = struct.unpack("<HH", f.read(4))
                    f.seek(member.header_offset + 30 + name_length + extra_length)
                    shape, fortran_order, dtype = npy_header(f)
                    if fortran_order:
                        raise ValueError(f"column {name} is in Fortran order")
                    self.where[name] = (f.tell(), dtype.itemsize * math.prod(shape[1:]), shape[0], dtype)
        except (OSError, KeyError, ValueError, struct.error, zipfile.BadZipFile) as err:
            raise AudioIndexError(
                f"{path}: damaged index shard ({type(err).__name__}: {str(err)[:200]}); rebuild "
                "the index (a new index build of the same files)"
            ) from None

    def read(self, fd: int, name: str, row: int) -> bytes:
        """Row `row` of column `name`, its bytes (of `self.where[name][3]`)."""
        offset, size, rows, _ = self.where[name]
        data = os.pread(fd, size, offset + row * size)
        if not 0 <= row < rows or len(data) != size:
            raise AudioIndexError(
                f"{self.path}: damaged index shard (row {row} of {name} cannot be read); rebuild "
                "the index (a new index build of the same files)"
            )
        return data

    def value(self, fd: int, name: str, row: int):
        """Row `row` of a column of one value a row (path, start, end), as Python reads it."""
        return np.frombuffer(self.read(fd, name, row), self.where[name][3])[0].item()


class RowsOnDisk:
    """The side table of the live rows in FAISS id order, on disk: rows.bin (n,) ROW_DTYPE, each
    row's shard and row there. A search reads its hits' paths and times, and the vectors it
    re-ranks, from the shards with pread (no page of any file stays in the process), so the
    vectors are on disk once and no per-row table is held in RAM."""

    def __init__(self, folder: Path, shards: list[str], dim: int):
        self.folder, self.shards, self.dim = folder, [folder / "shards" / name for name in shards], dim
        self.size = (folder / "rows.bin").stat().st_size
        self.fd = os.open(folder / "rows.bin", os.O_RDONLY)
        self._columns: dict[int, ShardColumns] = {}  # read when a shard is first needed
        self._open: OrderedDict[int, int] = OrderedDict()  # shard -> fd, the most recently used

    def __del__(self):
        for fd in [getattr(self, "fd", None), *getattr(self, "_open", {}).values()]:
            if fd is not None:
                os.close(fd)

    @classmethod
    def open(cls, folder: Path, recorded: dict | None, shards: list[str], dim: int) -> RowsOnDisk | None:
        """The table when it is the one the manifest records (layout, size and count), else None."""
        if not isinstance(recorded, dict) or recorded.get("layout") != SIDE_TABLE_LAYOUT:
            return None
        try:
            rows = cls(folder, shards, dim)
        except OSError:
            return None
        if recorded.get("bytes") != rows.size or len(rows) != recorded.get("count"):
            return None
        return rows

    def __len__(self) -> int:
        return self.size // ROW_DTYPE.itemsize

    def _shard(self, i: int) -> tuple[ShardColumns, int, int]:
        """FAISS id i's shard (its columns and an open fd) and its row there."""
        shard, row = struct.unpack("<II", os.pread(self.fd, ROW_DTYPE.itemsize, i * ROW_DTYPE.itemsize))
        fd = self._open.get(shard)
        if fd is None:
            fd = self._open_shard(i, shard)
        else:
            self._open.move_to_end(shard)
        return self._columns[shard], fd, row

    def _open_shard(self, i: int, shard: int) -> int:
        if shard >= len(self.shards):
            raise AudioIndexError(
                f"{self.folder}: damaged side table (row {i} names shard {shard}, of "
                f"{len(self.shards)}); the next index add, remove or sync rewrites it"
            )
        if shard not in self._columns:
            self._columns[shard] = ShardColumns(self.shards[shard], self.dim)
        if len(self._open) >= MAX_OPEN_SHARDS:
            os.close(self._open.popitem(last=False)[1])
        self._open[shard] = os.open(self.shards[shard], os.O_RDONLY)
        return self._open[shard]

    def row(self, i: int) -> tuple[str, str, float, float]:
        """FAISS id i's (key of its file, path, start, end)."""
        columns, fd, row = self._shard(i)
        name = columns.value(fd, "path", row)  # bytes (version 3) or text, its padding dropped
        path = os.fsdecode(name) if isinstance(name, bytes) else name
        return path, path, float(columns.value(fd, "start", row)), float(columns.value(fd, "end", row))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The exact vectors of FAISS ids `ids`, (len(ids), dim) float32: a pread each."""
        rows = []
        for i in np.asarray(ids).reshape(-1).tolist():
            columns, fd, row = self._shard(i)
            data, dtype = columns.read(fd, "vectors", row), columns.where["vectors"][3]
            rows.append(data if dtype == np.float32 else np.frombuffer(data, dtype).astype(np.float32).tobytes())
        return np.frombuffer(b"".join(rows), np.float32).reshape(len(rows), self.dim)

    @classmethod
    def write(cls, folder: Path, live: list[tuple[int, DamageChecked, np.ndarray]]) -> dict:
        """Write rows.bin from the live rows (`_live_shards`' shards, with their place in the
        manifest) atomically; returns what the manifest records of it, the files and segment rows
        counted on the way (a file's rows are consecutive in its shard, and in one shard only)."""
        count, files_found, segments = 0, 0, 0

        def write_rows(rows_file) -> None:
            nonlocal count, files_found, segments
            for number, shard, keep in live:
                kept = np.flatnonzero(keep)
                block = np.empty(len(kept), ROW_DTYPE)
                block["shard"], block["row"] = number, kept
                rows_file.write(block.tobytes())
                names = shard.column("path")[kept]
                files_found += int(np.count_nonzero(names[1:] != names[:-1])) + 1 if len(names) else 0
                segments += int(np.count_nonzero(~np.isnan(shard["start"][kept].astype(float))))
                count += len(kept)

        files.atomic_write(folder / "rows.bin", write_rows)
        return {
            "layout": SIDE_TABLE_LAYOUT,
            "count": count,
            "bytes": (folder / "rows.bin").stat().st_size,
            "files": files_found,
            "segments": segments,
        }


def path_hashes(names: np.ndarray) -> np.ndarray:
    """(n, 2) uint64: a 128-bit hash (blake2b) of each path's bytes. Two of 10^8 paths share one
    with odds of about 10^-23, so paths are told apart by their hashes: 16 bytes a row in RAM."""
    digests = b"".join(
        hashlib.blake2b(name if isinstance(name, bytes) else os.fsencode(name), digest_size=16).digest()
        for name in names
    )
    return np.frombuffer(digests, "<u8").reshape(-1, 2)


def newest_rows(hashes: list[np.ndarray]) -> list[np.ndarray]:
    """Each shard's path hashes (`path_hashes`), in commit order -> each shard's rows (bool) that
    name a path no later shard names: every path's newest rows. Sorted by path, then commit."""
    sizes = [len(h) for h in hashes]
    if not sum(sizes):
        return [np.zeros(0, bool) for _ in hashes]
    everything = np.concatenate(hashes)  # (N, 2)
    commit = np.repeat(np.arange(len(hashes), dtype=np.uint32), sizes)  # (N,)
    order = np.lexsort((commit, everything[:, 1], everything[:, 0]))
    everything, commit_sorted = everything[order], commit[order]
    del commit
    new_path = np.ones(len(order), bool)
    new_path[1:] = (everything[1:] != everything[:-1]).any(axis=1)
    del everything
    last_of_path = np.append(new_path[1:], True)
    newest_commit = commit_sorted[last_of_path][np.cumsum(new_path) - 1]  # of each row's path
    keep = np.empty(len(order), bool)
    keep[order] = commit_sorted == newest_commit
    return np.split(keep, np.cumsum(sizes)[:-1])
