"""AudioIndex: embeddings of a collection in a folder, searchable by cosine similarity with FAISS.

    INDEX_DIR/
      index.json        the manifest and the commit point: model, fingerprint, dimension, shards
      shards/*.npz      one per commit: vectors (n, D) float32 and their side table
      vectors.faiss     the FAISS index over all live vectors (derived; rebuilt when stale)
      vectors.f32       with the compressed type: the live vectors, exact, row i = FAISS id i (derived)
      skipped.tsv       files that could not be embedded: path <TAB> reason
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
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from . import files
from .audio import AudioLoadError, prepare_waveform
from .config import INDEX_TYPES
from .embed import DEFAULT_BATCH_SIZE, EmbeddingOutput
from .model import DiverseEmbedder

LOG = logging.getLogger(__name__)

FORMAT = "diverse-embed-index"
VERSION = 2  # 2: shards may hold tombstone rows (a `removed` column); version 1 indexes read as before
READABLE_VERSIONS = (1, 2)
MANIFEST = "index.json"
HNSW_NEIGHBOURS = 32  # M: links per vector
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVFPQ_CODE_BYTES = 32  # PQ sub-quantizers of 8 bits: 32 bytes per 256-d vector
IVFPQ_NPROBE = 32
# compressed: IVF lists found through an HNSW graph of their centres, 64-byte PQ codes in RAM;
# each query's candidates are re-ranked with the exact vectors read from disk. (An OPQ rotation
# added 0.009 recall@10 at 10^6 and minutes of training: left out.)
# Chosen by benchmarks/index_scale.py (README, "Collections larger than RAM").
COMPRESSED_CODE_BYTES = 64
COMPRESSED_NPROBE = 32
COMPRESSED_CANDIDATES = 20  # candidates re-ranked per hit asked for
COMPRESSED_MAX_LISTS = 8192  # more lists train too slowly on a small CPU
TRAINING_POINTS_PER_LIST = 40  # FAISS warns below 39
TABLE_COLUMNS = ("path", "start", "end", "duration", "size", "mtime_ns")
EXACT_VECTORS = "vectors.f32"


class AudioIndexError(RuntimeError):
    """An index folder that cannot be used as asked (missing, foreign, damaged, another model)."""


@dataclass
class Hit:
    rank: int
    path: str
    score: float  # cosine similarity
    start: float | None  # seconds; None for a whole-clip hit
    end: float | None


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    unchanged: int = 0  # already indexed with the same size and modification time
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    removed: list[str] = field(default_factory=list)  # by remove or sync: no longer in the index


def choose_index_type(n_vectors: int) -> str:
    """auto: exact search while it is fast (< 100k vectors), then HNSW (1.3 kB a vector in RAM),
    then past 2M the compressed type (about 80 bytes a vector in RAM, exact vectors on disk)."""
    if n_vectors < 100_000:
        return "flat"
    return "hnsw" if n_vectors < 2_000_000 else "compressed"


def build_faiss_index(vectors: np.ndarray, index_type: str = "auto") -> faiss.Index:
    """vectors (n, d) float32, L2-normalised -> a FAISS index where inner product = cosine."""
    n, d = vectors.shape
    kind = choose_index_type(n) if index_type == "auto" else index_type
    if kind == "compressed":  # in memory (a stale index searched before `build`): exact is as good
        kind = "flat"
    if kind == "ivfpq" and n < 64 * 256:
        LOG.warning("IVF-PQ needs at least %d vectors to train, have %d: using exact search", 64 * 256, n)
        kind = "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif kind == "ivfpq":
        n_lists = int(min(max(16, 4 * math.sqrt(n)), n / 64))
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, n_lists, IVFPQ_CODE_BYTES, 8, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 64 * n_lists), replace=False)
        index.train(vectors[np.sort(sample)])
    else:
        raise ValueError(f"index type must be one of {INDEX_TYPES}, got {index_type!r}")
    index.add(vectors)
    set_search_parameters(index)
    return index


def compressed_lists(n_vectors: int) -> int:
    """IVF lists for the compressed type: a power of two near 4 sqrt(n), at most COMPRESSED_MAX_LISTS."""
    return int(min(COMPRESSED_MAX_LISTS, 2 ** round(math.log2(max(16, 4 * math.sqrt(n_vectors))))))


def compressed_training_size(n_vectors: int) -> int:
    return min(n_vectors, TRAINING_POINTS_PER_LIST * compressed_lists(n_vectors))


def build_compressed_index(n_vectors: int, blocks, training: np.ndarray, exact_file) -> faiss.Index:
    """The compressed type, built a block at a time: `training` (m, d) float32 vectors sampled from
    the collection train the lists and the codes; then each block of `blocks` (an iterable of
    (b, d) float32, in FAISS id order) is encoded and its exact rows written to `exact_file`.
    Only one block and the sample are in RAM at once."""
    d = training.shape[1]
    # np: no polysemous training, which took minutes and serves Hamming filtering, unused here
    spec = f"IVF{compressed_lists(n_vectors)}_HNSW32,PQ{COMPRESSED_CODE_BYTES}np"
    index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(training, dtype=np.float32))
    for block in blocks:
        block = np.ascontiguousarray(block, dtype=np.float32)
        index.add(block)
        exact_file.write(block.tobytes())
    set_search_parameters(index)
    return index


class RefinedIndex:
    """A compressed FAISS index whose candidates are re-ranked with the exact vectors on disk.
    Searches like a faiss.Index: search(queries (q, d), k) -> scores (q, k), ids (q, k)."""

    def __init__(self, index: faiss.Index, exact: np.ndarray, candidates_per_hit: int = COMPRESSED_CANDIDATES):
        self.index, self.exact, self.candidates_per_hit = index, exact, candidates_per_hit

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, candidates = self.index.search(queries, min(self.ntotal, k * self.candidates_per_hit))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(queries, candidates)):
            found = np.sort(found[found >= 0])  # in file order: fewer pages read
            exact = self.exact[found] @ query  # (candidates,)
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)], ids[row, : len(best)] = exact[best], found[best]
        return scores, ids


def set_search_parameters(index: faiss.Index) -> None:
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif isinstance(index, faiss.IndexIVF):
        quantizer = faiss.downcast_index(index.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # the compressed type
            index.nprobe = COMPRESSED_NPROBE
            quantizer.hnsw.efSearch = 2 * COMPRESSED_NPROBE
        else:
            index.nprobe = IVFPQ_NPROBE


def index_kind(index: faiss.Index | RefinedIndex) -> str:
    if isinstance(index, RefinedIndex):
        return "compressed"
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    return "ivfpq" if isinstance(index, faiss.IndexIVF) else "flat"


def atomic_write(path: Path, write) -> None:
    """files.atomic_write, with a failure said as an index error: the last commit stands."""
    try:
        files.atomic_write(path, write)
    except OSError as err:  # a full disk, a quota, a read-only folder
        raise AudioIndexError(f"cannot write {path} ({err.strerror or err}); the index keeps what it had "
                              "committed before, and running the same command again resumes") from None


class AudioIndex:
    """A searchable collection of audio embeddings in a folder. Create, open, add, search."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest = self._read_manifest()
        self._table: dict[str, np.ndarray] | None = None
        self._faiss: faiss.Index | None = None

    # ----- creating and opening ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        model: DiverseEmbedder,
        model_name: str,
        segments: bool = False,
        index_type: str = "auto",
    ) -> "AudioIndex":
        """A new, empty index for vectors of `model` (recorded by `model_name` and fingerprint)."""
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index type must be one of {INDEX_TYPES}, got {index_type!r}")
        folder = Path(folder)
        if (folder / MANIFEST).exists():
            raise AudioIndexError(f"{folder} already holds an index; open it instead")
        if folder.exists() and any(folder.iterdir()):
            raise AudioIndexError(f"{folder} exists and is not empty, and holds no index: refusing to write into it")
        (folder / "shards").mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "model": model_name,
            "fingerprint": model.fingerprint(),
            "dim": model.embedding_dim,
            "config": model.config.to_dict(),
            "segments": segments,
            "index_type": index_type,
            "generation": 0,
            "shards": [],
            "faiss": None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with cls._locked(folder):
            if not (folder / MANIFEST).exists():  # another rank may have won the race
                cls._write_manifest(folder, manifest)
        return cls(folder)

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
        missing = [name for name in manifest["shards"] if not (self.folder / "shards" / name).is_file()]
        if missing:
            raise AudioIndexError(f"{self.folder}: damaged index, shard files missing: {missing[:3]}")
        return manifest

    @staticmethod
    def _write_manifest(folder: Path, manifest: dict) -> None:
        manifest["version"] = VERSION  # a version 1 index is version 2 from its first new commit
        atomic_write(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))

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
        self._table, self._faiss = None, None

    # ----- what is in it -----------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    def check_model(self, model: DiverseEmbedder) -> None:
        """Refuse a model other than the one the index was built with: its vectors live in another space."""
        fingerprint = model.fingerprint()
        if fingerprint != self.manifest["fingerprint"]:
            raise AudioIndexError(
                f"{self.folder} was built with model {self.model_name!r} (fingerprint {self.manifest['fingerprint']}); "
                f"the model given has fingerprint {fingerprint}. Vectors of two models cannot be mixed or compared: "
                f"use the index's model, or build a new index."
            )

    @property
    def table(self) -> dict[str, np.ndarray]:
        """The side table of live rows, columns TABLE_COLUMNS, row i = FAISS id i."""
        if self._table is None:
            self._table, _ = self._live_rows(with_vectors=False)
        return self._table

    def __len__(self) -> int:
        return len(self.table["path"])

    def files(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every indexed file."""
        table = self.table
        return {p: (int(s), int(m)) for p, s, m in zip(table["path"], table["size"], table["mtime_ns"])}

    def skipped(self) -> dict[str, str]:
        path = self.folder / "skipped.tsv"
        if not path.exists():
            return {}
        rows = [line.split("\t", 1) for line in path.read_text().splitlines()[1:] if "\t" in line]
        return {p: reason for p, reason in rows}

    def _live_shards(self) -> Iterator[tuple[np.lib.npyio.NpzFile, np.ndarray]]:
        """(shard, rows to keep) in commit order: each path's rows from the newest shard that names
        it, none where that shard removes it. A shard's arrays are read only when asked for."""
        shards = [np.load(self.folder / "shards" / name) for name in self.manifest["shards"]]
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

    # ----- adding ------------------------------------------------------------------------------

    def add(
        self,
        paths: list[str | os.PathLike],
        model: DiverseEmbedder,
        commit_every: int = 32,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int | None = None,
        progress: bool = True,
    ) -> AddReport:
        """Embed and add files, committing every `commit_every` files. Files already indexed with
        the same size and modification time are skipped; unreadable ones are reported, not fatal."""
        self.check_model(model)
        report = AddReport()
        known = self.files()
        todo = []
        for path in dict.fromkeys(str(Path(p).resolve()) for p in paths):  # absolute, first occurrence
            if path in known and known[path] == _stat(path):
                report.unchanged += 1
            else:
                todo.append(path)
        rows: list[tuple[str, EmbeddingOutput]] = []
        failed: list[tuple[str, str]] = []
        for path, output in model.iter_embed_files(todo, batch_size, num_workers, progress):
            if isinstance(output, AudioLoadError):
                failed.append((str(path), output.reason))
                LOG.warning("skipped %s", output)
            else:
                rows.append((str(path), output))
            if len(rows) + len(failed) >= commit_every:
                self._commit(rows, failed, report)
                rows, failed = [], []
        self._commit(rows, failed, report)
        return report

    def _commit(self, rows: list[tuple[str, EmbeddingOutput]], failed: list[tuple[str, str]], report: AddReport,
                removed: list[str] = ()):
        """One atomic commit: a shard of the embedded rows and of tombstones for `removed`, the
        files that failed into skipped.tsv (and the removed ones out of it), then the manifest."""
        if not rows and not failed and not removed:
            return
        shard = self._shard_arrays(rows, removed)
        with self._locked(self.folder):
            manifest = self._read_manifest()  # another writer may have committed meanwhile
            if rows or removed:
                name = f"{manifest['generation']:06d}-{uuid.uuid4().hex[:8]}.npz"
                atomic_write(self.folder / "shards" / name, lambda f: np.savez(f, **shard))
                manifest["shards"].append(name)
            manifest["generation"] += 1
            skipped = {**self.skipped(), **dict(failed)}
            for path in [path for path, _ in rows] + list(removed):
                skipped.pop(path, None)
            self._write_skipped(skipped)
            self._write_manifest(self.folder, manifest)
        self._refresh()
        report.added += [path for path, _ in rows]
        report.skipped += failed
        report.removed += list(removed)

    def _shard_arrays(self, rows: list[tuple[str, EmbeddingOutput]], removed: list[str] = ()) -> dict[str, np.ndarray]:
        """One row per file (the clip vector), plus one per 1-s chunk when the index has segments;
        and one tombstone row (zero vector, `removed` true) per removed path."""
        columns = {name: [] for name in TABLE_COLUMNS}
        vectors = []
        chunk_seconds = self.manifest["config"]["chunk_seconds"]
        for path, output in rows:
            size, mtime_ns = _stat(path)
            for start, end, vector in zip(*output.rows(chunk_seconds, self.manifest["segments"])):
                vectors.append(vector)
                for name, value in zip(TABLE_COLUMNS, (path, start, end, output.duration, size, mtime_ns)):
                    columns[name].append(value)
        live = len(vectors)
        for path in removed:
            vectors.append(np.zeros(self.manifest["dim"], np.float32))
            for name, value in zip(TABLE_COLUMNS, (path, math.nan, math.nan, math.nan, -1, -1)):
                columns[name].append(value)
        arrays = {name: np.array(values) for name, values in columns.items()}
        arrays["vectors"] = np.array(vectors, dtype=np.float32).reshape(-1, self.manifest["dim"])
        arrays["removed"] = np.arange(len(vectors)) >= live
        return arrays

    # ----- removing and syncing ----------------------------------------------------------------

    def remove(self, paths: list[str | os.PathLike]) -> AddReport:
        """Drop files, and every file under a folder, from the index in one commit. The paths need
        not exist any more; ones not in the index are ignored (so running it again is harmless)."""
        report = AddReport()
        self._commit([], [], report, removed=self._known_under([Path(p).absolute().resolve() for p in paths]))
        return report

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

    def sync(self, folder: str | os.PathLike, model: DiverseEmbedder, **add_options) -> AddReport:
        """Make the index match `folder`: files under it that vanished are removed (one commit),
        new and changed ones are embedded, unchanged ones kept (`add`). A killed sync resumes when
        run again."""
        from .audio import find_audio_files

        self.check_model(model)
        folder = Path(folder).absolute().resolve()
        if not folder.is_dir():
            raise AudioIndexError(f"{folder}: no such folder to sync with (nothing was removed)")
        present = [str(p.resolve()) for p in find_audio_files([folder])]
        present_set = set(present)
        vanished = [p for p in self._known_under([folder]) if p not in present_set]
        removed = AddReport()
        self._commit([], [], removed, removed=vanished)
        report = self.add(present, model, **add_options)
        report.removed = removed.removed
        return report

    def _write_skipped(self, skipped: dict[str, str]) -> None:
        text = "path\treason\n" + "".join(f"{p}\t{r.replace(chr(10), ' ')}\n" for p, r in sorted(skipped.items()))
        atomic_write(self.folder / "skipped.tsv", lambda f: f.write(text.encode()))

    # ----- the FAISS index ---------------------------------------------------------------------

    def build(self) -> faiss.Index | RefinedIndex:
        """(Re)build vectors.faiss from the live vectors and record it in the manifest."""
        with self._locked(self.folder):
            self._refresh()
            n = len(self)
            kind = choose_index_type(n) if self.manifest["index_type"] == "auto" else self.manifest["index_type"]
            if kind == "compressed" and n < 256 * TRAINING_POINTS_PER_LIST:
                LOG.warning("the compressed type needs at least %d vectors to train, have %d: using exact search",
                            256 * TRAINING_POINTS_PER_LIST, n)
                kind = "flat"
            if kind == "compressed":
                index = self._build_compressed(n)
                faiss_index = index.index
            else:
                index = faiss_index = build_faiss_index(self.vectors(), kind)
                (self.folder / EXACT_VECTORS).unlink(missing_ok=True)
            atomic_write(self.folder / "vectors.faiss", lambda f: f.write(faiss.serialize_index(faiss_index).tobytes()))
            self.manifest["faiss"] = {"generation": self.manifest["generation"], "type": index_kind(index)}
            self._write_manifest(self.folder, self.manifest)
        self._faiss = index
        return index

    def _build_compressed(self, n: int) -> RefinedIndex:
        """Train on a random sample, then encode and write the exact vectors a shard at a time."""
        live = [(shard, keep) for shard, keep in self._live_shards() if keep.any()]  # the masks once, for both passes

        def blocks() -> Iterator[np.ndarray]:  # (b, dim) float32 in FAISS id order, a shard at a time
            return (shard["vectors"][keep] for shard, keep in live)

        wanted = np.sort(np.random.default_rng(0).choice(n, size=compressed_training_size(n), replace=False))
        sample, offset = [], 0
        for block in blocks():
            inside = wanted[(wanted >= offset) & (wanted < offset + len(block))]
            sample.append(block[inside - offset])
            offset += len(block)
        built = []
        atomic_write(self.folder / EXACT_VECTORS,
                     lambda f: built.append(build_compressed_index(n, blocks(), np.concatenate(sample), f)))
        return RefinedIndex(built[0], self._exact_vectors(n))

    def _exact_vectors(self, n: int) -> np.ndarray:
        """vectors.f32 mapped from disk, (n, dim) float32: only the rows a search re-ranks are read."""
        return np.memmap(self.folder / EXACT_VECTORS, dtype=np.float32, mode="r", shape=(n, self.manifest["dim"]))

    @property
    def faiss_index(self) -> faiss.Index:
        if self._faiss is None:
            built = self.manifest.get("faiss")
            exact = self.folder / EXACT_VECTORS
            if built and built["type"] == "compressed" and (
                    not exact.is_file() or exact.stat().st_size != len(self) * self.manifest["dim"] * 4):
                built = None  # its exact vectors are missing or of another build
            if built and built["generation"] == self.manifest["generation"] and (self.folder / "vectors.faiss").is_file():
                data = np.fromfile(self.folder / "vectors.faiss", dtype=np.uint8)
                self._faiss = faiss.deserialize_index(data)
                set_search_parameters(self._faiss)
                if built["type"] == "compressed":
                    self._faiss = RefinedIndex(self._faiss, self._exact_vectors(len(self)))
            else:  # stale (an add after the last build): search the current vectors all the same
                LOG.info("%s: vectors.faiss is stale, building in memory", self.folder)
                self._faiss = build_faiss_index(self.vectors(), self.manifest["index_type"])
        if self._faiss.ntotal != len(self):
            raise AudioIndexError(f"{self.folder}: vectors.faiss holds {self._faiss.ntotal} vectors, the table {len(self)}")
        return self._faiss

    # ----- searching ---------------------------------------------------------------------------

    def search_vector(self, query: np.ndarray, k: int = 10, one_hit_per_file: bool = True) -> list[Hit]:
        """query (dim,) -> the k best hits, best first. With segments, a file's best row stands for it."""
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.manifest["dim"]:
            raise ValueError(f"query has dimension {query.shape[1]}, the index {self.manifest['dim']}")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        n = len(self)
        if n == 0 or k <= 0:
            return []
        table = self.table
        wanted = min(n, k * 4 if one_hit_per_file and self.manifest["segments"] else k)
        while True:
            scores, ids = self.faiss_index.search(query, wanted)  # D, I: (1, wanted)
            hits, seen = [], set()
            for score, i in zip(scores[0], ids[0]):
                if i < 0 or (one_hit_per_file and table["path"][i] in seen):
                    continue
                seen.add(table["path"][i])
                start, end = float(table["start"][i]), float(table["end"][i])
                hits.append(Hit(len(hits) + 1, str(table["path"][i]), float(score),
                                None if math.isnan(start) else start, None if math.isnan(end) else end))
                if len(hits) == k:
                    return hits
            if wanted >= n:
                return hits
            wanted = min(n, wanted * 4)

    def search_audio(self, audio: np.ndarray, sample_rate: int, model: DiverseEmbedder, k: int = 10) -> list[Hit]:
        self.check_model(model)
        waveform = prepare_waveform(audio, sample_rate, model.config.sample_rate, source="query")
        return self.search_vector(model.embed(waveform, model.config.sample_rate).embedding, k)

    def search_file(self, path: str | os.PathLike, model: DiverseEmbedder, k: int = 10) -> list[Hit]:
        """Query by a file of any length (streamed, so an hour-long query is fine)."""
        self.check_model(model)
        return self.search_vector(model.embed_file(path).embedding, k)

    def search_files(self, paths: list[str | os.PathLike], model: DiverseEmbedder, k: int = 10,
                     progress: bool = False) -> Iterator[tuple[Path, list[Hit] | AudioLoadError]]:
        """Query by several files, embedded together: (query, hits) in the order given, or
        (query, AudioLoadError) for a query that cannot be loaded."""
        self.check_model(model)
        for path, output in model.iter_embed_files(paths, progress=progress):
            yield path, output if isinstance(output, AudioLoadError) else self.search_vector(output.embedding, k)

    def duplicates(self, threshold: float = 0.95, neighbours: int = 2) -> list[list[tuple[str, float]]]:
        """Groups of near-duplicate files. Two files are joined when each is among the other's
        `neighbours` most similar files and their clip vectors' cosine similarity is at least
        `threshold`; a group is what those links connect. (Similarity alone chains whole classes
        together: on ESC-50 it grouped pairs at 0.02 precision, mutual neighbours at 0.5-0.6;
        benchmarks/results/duplicates.md.) Largest group first; each member as (path, its best
        similarity to another member). Nothing is deleted. Exact search of every clip against
        every other: it suits up to some 10^5 files."""
        paths, vectors = [], []
        for shard, keep in self._live_shards():
            clips = keep & np.isnan(shard["start"].astype(float))  # whole-clip rows, not segments
            paths += shard["path"][clips].tolist()
            vectors.append(shard["vectors"][clips])
        if len(paths) < 2:
            return []
        vectors = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)  # (files, dim)
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        scores, found = exact.search(vectors, min(len(paths), neighbours + 2))  # (files, k): itself, and a tie
        nearest = [set([int(j) for j in row if j != i][:neighbours]) for i, row in enumerate(found)]
        parent = list(range(len(paths)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        best = np.full(len(paths), -np.inf)
        for i in range(len(paths)):
            for j, score in zip(found[i], scores[i]):
                if j != i and j in nearest[i] and i in nearest[j] and score >= threshold:
                    parent[root(i)] = root(int(j))
                    best[i] = max(best[i], float(score))
        groups: dict[int, list[int]] = {}
        for i in range(len(paths)):
            groups.setdefault(root(i), []).append(i)
        found_groups = [sorted(((paths[i], float(best[i])) for i in members), key=lambda m: m[0])
                        for members in groups.values() if len(members) > 1]
        return sorted(found_groups, key=lambda g: (-len(g), g[0][0]))

    def export_parquet(self, path: str | os.PathLike) -> int:
        """Every live row (clips, and segments if indexed) into a Parquet table, a shard at a time;
        returns the rows written."""
        from .parquet import write_parquet

        batches = ((shard["path"][keep], shard["start"][keep], shard["end"][keep], shard["vectors"][keep])
                   for shard, keep in self._live_shards() if keep.any())
        return write_parquet(path, batches, self.manifest["dim"], self.model_name, self.manifest["fingerprint"])

    def info(self) -> dict:
        table = self.table
        segments = int(np.sum(~np.isnan(table["start"].astype(float)))) if len(table["start"]) else 0
        on_disk = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        built = self.manifest.get("faiss")
        return {
            "folder": str(self.folder),
            "model": self.model_name,
            "fingerprint": self.manifest["fingerprint"],
            "dim": self.manifest["dim"],
            "files": len(set(table["path"].tolist())),
            "vectors": len(self),
            "segment_vectors": segments,
            "segments": self.manifest["segments"],
            "index_type": self.manifest["index_type"],
            "faiss": built["type"] if built and built["generation"] == self.manifest["generation"] else "stale",
            "skipped": len(self.skipped()),
            "commits": self.manifest["generation"],
            "bytes_on_disk": on_disk,
        }


def _stat(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    except OSError:
        return -1, -1
