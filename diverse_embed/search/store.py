"""The on-disk format of an index, and how it changes: a manifest, append-only shards, atomic
commits under a lock. What the vectors are for (embedding, FAISS, search) is index.py's.

    INDEX_DIR/
      index.json        the manifest and the commit point: model, fingerprint, dimension, shards
      shards/*.npz      one per commit: vectors (n, D) float32 and their side table
      vectors.faiss     the FAISS index over all live vectors (derived; rebuilt when stale)
      vectors.f32       with the compressed type: the live vectors, exact, row i = FAISS id i (derived)
      rows.bin, paths.bin, path_offsets.bin
                        the side table of the live rows in FAISS id order, read by row by a search,
                        so no per-row table is held in RAM (derived, written with vectors.faiss)
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
import fcntl
import json
import logging
import math
import os
import re
import stat as stat_module
import uuid
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
VERSION = 2  # 2: shards may hold tombstone rows (a `removed` column); version 1 indexes read as before
READABLE_VERSIONS = (1, 2)
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
        raise AudioIndexError(f"cannot write into {folder} ({err.strerror or err}); the index keeps what it had "
                              "committed before, and running the same command again resumes") from None


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
            raise AudioIndexError(f"{self.folder}: index format version {manifest.get('version')}, this code reads {VERSION}")
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

    def _live_shards(self) -> Iterator[tuple[np.lib.npyio.NpzFile, np.ndarray]]:
        """(shard, rows to keep) in commit order: each path's rows from the newest shard that names
        it, none where that shard removes it. A shard's arrays are read only when asked for."""
        shards = [DamageChecked(self.folder / "shards" / name, self.manifest["dim"]) for name in self.manifest["shards"]]
        paths = [shard["path"] for shard in shards]  # an NpzFile reads an array again at each access
        newest_shard = {}
        for number, names in enumerate(paths):
            for path in np.unique(names):
                newest_shard[path] = number
        for number, (shard, names) in enumerate(zip(shards, paths)):
            keep = np.array([newest_shard[p] == number for p in names], dtype=bool)
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
            LOG.warning("%s: %d file(s) in shards/ that the index did not write, left alone (e.g. %s)",
                        self.folder, len(foreign), foreign[0].name)
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
            for name, values in zip(TABLE_COLUMNS, ([path] * len(starts), starts, ends, [duration] * len(starts),
                                                    [size] * len(starts), [mtime_ns] * len(starts))):
                columns[name].extend(values)
        live = sum(len(v) for v in vectors)
        vectors.append(np.zeros((len(removed), dim), np.float32))
        for name, value in zip(TABLE_COLUMNS, (None, math.nan, math.nan, math.nan, -1, -1)):
            columns[name].extend(list(removed) if name == "path" else [value] * len(removed))
        arrays = {name: np.array(values) for name, values in columns.items()}
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
COLUMN_KINDS = {"path": ("U", 1), "start": ("f", 1), "end": ("f", 1), "duration": ("f", 1), "size": ("iu", 1),
                "mtime_ns": ("iu", 1), "removed": ("b", 1), "vectors": ("f", 2)}


class DamageChecked:
    """A shard's arrays, read as np.load reads them, where a damaged file (truncated, foreign, a
    column missing or of the wrong kind or length; zip's CRC catches altered bytes) is an
    AudioIndexError naming it. Every column's header is checked at opening, before any is read:
    its kind and dimensions, as long as the paths, `dim` wide for the vectors."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, dim
        try:
            self.npz = np.load(path)
            shapes = {name: self.header(name) for name in self.npz.files}
        except AudioIndexError:
            raise
        except Exception as err:  # BadZipFile, EOFError, ValueError, OSError: whatever a broken file gives
            raise self.damaged(f"{type(err).__name__}: {str(err)[:200]}") from None
        missing = [name for name in SHARD_COLUMNS if name not in shapes]
        if missing:
            raise self.damaged(f"no {', '.join(missing)}")
        self.files = self.npz.files
        self.rows = shapes["path"][0]
        for name, shape in shapes.items():
            if shape[0] != self.rows:
                raise self.damaged(f"column {name} has {shape[0]} rows, path {self.rows}")
        if shapes["vectors"][1] != dim:
            raise self.damaged(f"vectors of dimension {shapes['vectors'][1]}, the index's is {dim}")

    def header(self, name: str) -> tuple[int, ...]:
        """A column's shape from its .npy header (nothing else read), after its kind and dimensions."""
        with self.npz.zip.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
        kinds, dimensions = COLUMN_KINDS.get(name, ("", len(shape)))
        if (kinds and dtype.kind not in kinds) or len(shape) != dimensions or not shape:
            raise self.damaged(f"column {name} holds {len(shape)}-D {dtype} values")
        return shape

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.npz[name]
        except Exception as err:
            raise self.damaged(f"{type(err).__name__}: {str(err)[:200]}") from None

    def damaged(self, why: str) -> AudioIndexError:
        return AudioIndexError(f"{self.path}: damaged index shard ({why}); rebuild the index (a new index build "
                               "of the same files)")


def manifest_problem(manifest: dict) -> str | None:
    """What is wrong with a manifest's fields, or None; shard names must be plain files of shards/."""
    kinds = {"model": str, "fingerprint": str, "dim": int, "config": dict, "segments": bool, "index_type": str,
             "generation": int, "shards": list}
    for key, kind in kinds.items():
        if not isinstance(manifest.get(key), kind) or (kind is int and isinstance(manifest[key], bool)):
            return f"{key} missing or not a {kind.__name__}"
    if not 1 <= manifest["dim"] <= 65_536 or manifest["generation"] < 0:
        return "dim or generation out of range"
    for name in manifest["shards"]:
        if not isinstance(name, str) or Path(name).name != name or name.startswith(".") or not name.endswith(".npz"):
            return f"shard name {name!r} is not a file of shards/"
    built = manifest.get("faiss")
    if built is not None and not (isinstance(built, dict) and isinstance(built.get("generation"), int)
                                  and isinstance(built.get("type"), str)):
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
            if any(not (regular_file(e) and (SHARD_NAME.fullmatch(e.name) or is_own_temp(e.name, True)))
                   for e in entry.iterdir()):
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


ROW_DTYPE = np.dtype([("path", "<u4"), ("start", "<f8"), ("end", "<f8")])  # path: the number of its file


class RowsOnDisk:
    """The side table of the live rows in FAISS id order, on disk: a search reads the rows of its
    hits (pread, so no page of the files stays in the process) and nothing else. rows.bin (n,)
    ROW_DTYPE; paths.bin every file's name (its bytes, one after another); path_offsets.bin
    (files + 1,) uint64, where file j's name starts and ends."""

    FILES = ("rows.bin", "paths.bin", "path_offsets.bin")

    def __init__(self, folder: Path):
        self.folder = folder
        self.sizes = [(folder / name).stat().st_size for name in self.FILES]
        self.fds = [os.open(folder / name, os.O_RDONLY) for name in self.FILES]

    def __del__(self):
        for fd in getattr(self, "fds", []):
            os.close(fd)

    @classmethod
    def open(cls, folder: Path, recorded: dict | None) -> RowsOnDisk | None:
        """The table when its files are those the manifest records (their sizes), else None."""
        try:
            rows = cls(folder)
        except OSError:
            return None
        if not isinstance(recorded, dict) or recorded.get("bytes") != rows.sizes or len(rows) != recorded.get("count"):
            return None
        return rows

    def __len__(self) -> int:
        return self.sizes[0] // ROW_DTYPE.itemsize

    def files(self) -> int:
        return max(0, self.sizes[2] // 8 - 1)

    def segments(self, block: int = 1 << 20) -> int:
        """How many rows are segments (a start time), reading rows.bin a block of rows at a time."""
        count = 0
        for first in range(0, len(self), block):
            data = os.pread(self.fds[0], min(block, len(self) - first) * ROW_DTYPE.itemsize, first * ROW_DTYPE.itemsize)
            count += int(np.sum(~np.isnan(np.frombuffer(data, ROW_DTYPE)["start"])))
        return count

    def row(self, i: int) -> tuple[int, str, float, float]:
        rows, names, offsets = self.fds
        path, start, end = np.frombuffer(os.pread(rows, ROW_DTYPE.itemsize, i * ROW_DTYPE.itemsize), ROW_DTYPE)[0]
        span = np.frombuffer(os.pread(offsets, 16, int(path) * 8), np.uint64)
        if len(span) != 2 or not span[0] <= span[1] <= self.sizes[1]:
            raise AudioIndexError(f"{self.folder}: damaged side table (row {i} names file {int(path)}, which it does "
                                  "not hold); the next index add, remove or sync rewrites it")
        name = os.pread(names, int(span[1] - span[0]), int(span[0]))
        return int(path), os.fsdecode(name), float(start), float(end)

    @classmethod
    def write(cls, folder: Path, live: Iterator[tuple[DamageChecked, np.ndarray]]) -> dict:
        """Write the table of the live rows (`_live_shards`), a shard at a time, each file atomically;
        returns what the manifest records of it (a crash between the files leaves sizes that differ
        from the record, so the table is not used). A file's rows are consecutive in its shard, so
        its name is written once."""
        offsets, count = [0], 0

        def write_rows(rows_file) -> None:
            def write_names(names_file) -> None:
                nonlocal count
                previous = None
                for shard, keep in live:
                    paths = shard["path"][keep]
                    block = np.empty(len(paths), ROW_DTYPE)
                    for j, path in enumerate(paths):
                        if path != previous:
                            names_file.write(os.fsencode(path))
                            offsets.append(names_file.tell())
                            previous = path
                        block["path"][j] = len(offsets) - 2
                    block["start"], block["end"] = shard["start"][keep], shard["end"][keep]
                    rows_file.write(block.tobytes())
                    count += len(paths)

            files.atomic_write(folder / "paths.bin", write_names)

        files.atomic_write(folder / "rows.bin", write_rows)
        files.atomic_write(folder / "path_offsets.bin", lambda f: f.write(np.array(offsets, np.uint64).tobytes()))
        return {"count": count, "bytes": [(folder / name).stat().st_size for name in cls.FILES]}
