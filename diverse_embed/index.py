"""AudioIndex: embeddings of a collection in a folder, searchable by cosine similarity with FAISS.

    INDEX_DIR/
      index.json        the manifest and the commit point: model, fingerprint, dimension, shards
      shards/*.npz      one per commit: vectors (n, D) float32 and their side table
      vectors.faiss     the FAISS index over all live vectors (derived; rebuilt when stale)
      skipped.tsv       files that could not be embedded: path <TAB> reason
      .lock             taken while writing, so concurrent writers wait for each other

Writes are append-only and atomic (temp file, fsync, rename): a shard becomes part of the index
only when index.json, rewritten last, names it. A build killed at any point loses at most the
files embedded since its last commit, and re-running it skips what is already in (same path,
size and modification time). A file that changed is embedded again; its newer rows supersede
the old ones, so a path never appears twice.
"""

from __future__ import annotations

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
from .embed import DEFAULT_BATCH_SIZE, EmbeddingOutput
from .model import DiverseEmbedder

LOG = logging.getLogger(__name__)

FORMAT = "diverse-embed-index"
VERSION = 1
MANIFEST = "index.json"
INDEX_TYPES = ("auto", "flat", "hnsw", "ivfpq")
HNSW_NEIGHBOURS = 32  # M: links per vector
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVFPQ_CODE_BYTES = 32  # PQ sub-quantizers of 8 bits: 32 bytes per 256-d vector
IVFPQ_NPROBE = 32
TABLE_COLUMNS = ("path", "start", "end", "duration", "size", "mtime_ns")


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


def choose_index_type(n_vectors: int) -> str:
    """auto: exact search while it is fast (< 100k vectors), then HNSW, then IVF-PQ past 2M."""
    if n_vectors < 100_000:
        return "flat"
    return "hnsw" if n_vectors < 2_000_000 else "ivfpq"


def build_faiss_index(vectors: np.ndarray, index_type: str = "auto") -> faiss.Index:
    """vectors (n, d) float32, L2-normalised -> a FAISS index where inner product = cosine."""
    n, d = vectors.shape
    kind = choose_index_type(n) if index_type == "auto" else index_type
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


def set_search_parameters(index: faiss.Index) -> None:
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif isinstance(index, faiss.IndexIVF):
        index.nprobe = IVFPQ_NPROBE


def index_kind(index: faiss.Index) -> str:
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
        if manifest.get("version") != VERSION:
            raise AudioIndexError(f"{self.folder}: index format version {manifest.get('version')}, this code reads {VERSION}")
        missing = [name for name in manifest["shards"] if not (self.folder / "shards" / name).is_file()]
        if missing:
            raise AudioIndexError(f"{self.folder}: damaged index, shard files missing: {missing[:3]}")
        return manifest

    @staticmethod
    def _write_manifest(folder: Path, manifest: dict) -> None:
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

    def _live_rows(self, with_vectors: bool) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Concatenate the shards, keeping each path's rows from the newest shard that has it."""
        shards = [np.load(self.folder / "shards" / name) for name in self.manifest["shards"]]
        newest_shard = {}
        for number, shard in enumerate(shards):
            for path in np.unique(shard["path"]):
                newest_shard[path] = number
        columns = {name: [] for name in TABLE_COLUMNS}
        vectors = []
        for number, shard in enumerate(shards):
            keep = np.array([newest_shard[p] == number for p in shard["path"]], dtype=bool)
            for name in TABLE_COLUMNS:
                columns[name].append(shard[name][keep])
            if with_vectors:
                vectors.append(shard["vectors"][keep])
        table = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in columns.items()}
        if not shards:
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

    def _commit(self, rows: list[tuple[str, EmbeddingOutput]], failed: list[tuple[str, str]], report: AddReport):
        if not rows and not failed:
            return
        shard = self._shard_arrays(rows)
        with self._locked(self.folder):
            manifest = self._read_manifest()  # another writer may have committed meanwhile
            if rows:
                name = f"{manifest['generation']:06d}-{uuid.uuid4().hex[:8]}.npz"
                atomic_write(self.folder / "shards" / name, lambda f: np.savez(f, **shard))
                manifest["shards"].append(name)
            manifest["generation"] += 1
            skipped = {**self.skipped(), **dict(failed)}
            for path, _ in rows:
                skipped.pop(path, None)
            self._write_skipped(skipped)
            self._write_manifest(self.folder, manifest)
        self._refresh()
        report.added += [path for path, _ in rows]
        report.skipped += failed

    def _shard_arrays(self, rows: list[tuple[str, EmbeddingOutput]]) -> dict[str, np.ndarray]:
        """One row per file (the clip vector), plus one per 1-s chunk when the index has segments."""
        columns = {name: [] for name in TABLE_COLUMNS}
        vectors = []
        chunk_seconds = self.manifest["config"]["chunk_seconds"]
        for path, output in rows:
            size, mtime_ns = _stat(path)
            duration = output.duration
            entries = [(output.embedding, math.nan, math.nan)]
            if self.manifest["segments"]:
                norms = np.linalg.norm(output.chunk_embeddings, axis=1, keepdims=True)
                chunk_vectors = output.chunk_embeddings / np.maximum(norms, 1e-12)
                entries += [(v, float(t), float(min(t + chunk_seconds, duration)))
                            for v, t in zip(chunk_vectors, output.chunk_times)]
            for vector, start, end in entries:
                vectors.append(vector)
                for name, value in zip(TABLE_COLUMNS, (path, start, end, duration, size, mtime_ns)):
                    columns[name].append(value)
        arrays = {name: np.array(values) for name, values in columns.items()}
        arrays["vectors"] = np.array(vectors, dtype=np.float32).reshape(-1, self.manifest["dim"])
        return arrays

    def _write_skipped(self, skipped: dict[str, str]) -> None:
        text = "path\treason\n" + "".join(f"{p}\t{r.replace(chr(10), ' ')}\n" for p, r in sorted(skipped.items()))
        atomic_write(self.folder / "skipped.tsv", lambda f: f.write(text.encode()))

    # ----- the FAISS index ---------------------------------------------------------------------

    def build(self) -> faiss.Index:
        """(Re)build vectors.faiss from the live vectors and record it in the manifest."""
        with self._locked(self.folder):
            self._refresh()
            index = build_faiss_index(self.vectors(), self.manifest["index_type"])
            atomic_write(self.folder / "vectors.faiss", lambda f: f.write(faiss.serialize_index(index).tobytes()))
            self.manifest["faiss"] = {"generation": self.manifest["generation"], "type": index_kind(index)}
            self._write_manifest(self.folder, self.manifest)
        self._faiss = index
        return index

    @property
    def faiss_index(self) -> faiss.Index:
        if self._faiss is None:
            built = self.manifest.get("faiss")
            if built and built["generation"] == self.manifest["generation"] and (self.folder / "vectors.faiss").is_file():
                data = np.fromfile(self.folder / "vectors.faiss", dtype=np.uint8)
                self._faiss = faiss.deserialize_index(data)
                set_search_parameters(self._faiss)
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
