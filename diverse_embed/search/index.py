"""AudioIndex: the embeddings of a collection in a folder (the store, store.py), searchable by
cosine similarity with FAISS (backends.py): built with a model, kept in step with a folder,
searched by vector, array or file."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .. import files
from ..errors import AudioLoadError, CheckpointError
from ..parallel import COMMIT_EVERY, DEFAULT_BATCH_SIZE
from .backends import (
    ExactVectors,
    RefinedIndex,
    build_compressed_index,
    build_faiss_index,
    compressed_training_size,
    index_kind,
    set_search_parameters,
)
from .duplicates import NEIGHBOURS, THRESHOLD
from .index_types import check_index_type, index_type_for
from .store import (
    FORMAT,
    VERSION,
    AddReport,
    AudioIndexError,
    FileRows,
    IndexStore,
    RowsOnDisk,
    indexed_path,
    stat,
    writing,
)

if TYPE_CHECKING:  # searching by vector imports neither torch nor pyarrow: RAM is the codes, not the libraries
    import pyarrow as pa

    from ..model import DiverseEmbedder

LOG = logging.getLogger(__name__)
EXACT_VECTORS = "vectors.f32"
PARQUET_COMMIT_ROWS = 65_536  # rows of vectors made elsewhere per commit: 64 MB of 256-d float32


def loadable_name(model: DiverseEmbedder, name: str | None) -> str:
    """The name an index records for `model`: one that `resolve_model` turns into this very model
    (a bundled name, a folder, a Hub id), so that the command line can search the index later."""
    name = name or model.name_or_path
    if name is None:
        raise AudioIndexError(
            "this model was not loaded by a name that loads it again: save it "
            "(model.save_pretrained(FOLDER)) and load it from there, or pass model_name"
        )
    if name != model.name_or_path:
        from ..resolve import resolve_model

        try:
            same = resolve_model(name)[0].fingerprint() == model.fingerprint()
        except CheckpointError as err:
            raise AudioIndexError(
                f"model name {name!r} cannot be loaded, so the index could not be searched "
                f"by it later ({err}); give a bundled name, a saved folder or a Hub id"
            ) from None
        if not same:
            raise AudioIndexError(
                f"model name {name!r} loads another model than the one given (another fingerprint): "
                "the index must record the model its vectors come from"
            )
    return name


@dataclass
class TableReport:
    """What `add_parquet` added: counts, never a row's path (a table may hold 10^8)."""

    files: int = 0
    failed: int = 0  # files whose rows carry an error: listed in skipped.tsv


@dataclass
class Hit:
    rank: int
    path: str
    score: float  # cosine similarity
    start: float | None  # seconds; None for a whole-clip hit
    end: float | None


class AudioIndex(IndexStore):
    """A searchable collection of audio embeddings in a folder. Create, open, add, search. Every
    method that embeds takes the model, or without one uses the index's own (`check_model`)."""

    def __init__(self, folder: str | os.PathLike):
        super().__init__(folder)
        self._model: DiverseEmbedder | None = None  # the index's own model, once loaded
        self._said_old_fingerprint = False

    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        model: DiverseEmbedder | None = None,
        model_name: str | None = None,
        segments: bool = False,
        index_type: str = "auto",
    ) -> AudioIndex:
        """A new, empty index for vectors of `model` (default: the one `model_name` names, else the
        bundled default), recorded by its fingerprint and by a name that loads it again (`model_name`;
        default: the name it was loaded by, `model.name_or_path`)."""
        if model is None:
            from ..resolve import resolve_model

            model = resolve_model(model_name)[0]
        model_name = loadable_name(model, model_name)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "model": model_name,
            "fingerprint": model.fingerprint(),
            "dim": model.embedding_dim,
            "config": model.config.to_dict(),
            "segments": segments,
            "index_type": check_index_type(index_type),
            "generation": 0,
            "shards": [],
            "faiss": None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        cls._create(Path(folder), manifest)
        return cls(folder)

    def check_model(self, model: DiverseEmbedder | None = None) -> DiverseEmbedder:
        """The model to embed with: `model`, refused when it is not the one the index was built with
        (its vectors live in another space); None: the index's own, loaded by the name it records."""
        if model is None:
            if self._model is None:
                from ..resolve import resolve_model

                # The name may load another model today (a new package release, a Hub repo updated).
                self._model = self._same_model(resolve_model(self.model_name)[0], f"{self.model_name!r} now loads")
            return self._model
        return self._same_model(model, "the model given has")

    def _same_model(self, model: DiverseEmbedder, which: str) -> DiverseEmbedder:
        fingerprint = model.fingerprint()
        if fingerprint != self.manifest["fingerprint"] and model.fingerprint_0_1() == self.manifest["fingerprint"]:
            if not self._said_old_fingerprint:
                LOG.info(
                    "%s records the fingerprint of diverse-embed 0.1 (the head included); it is this model's",
                    self.folder,
                )
                self._said_old_fingerprint = True
            return model
        if fingerprint != self.manifest["fingerprint"]:
            raise AudioIndexError(
                f"{self.folder} was built with model {self.model_name!r} (fingerprint {self.manifest['fingerprint']}); "
                f"{which} fingerprint {fingerprint}. Vectors of two models cannot be mixed or compared: "
                f"use the index's model, or build a new index."
            )
        return model

    def add(
        self,
        paths: list[str | os.PathLike],
        model: DiverseEmbedder | None = None,
        commit_every: int = COMMIT_EVERY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int | None = None,
        progress: bool = True,
    ) -> AddReport:
        """Embed and add files, committing every `commit_every` files. Files already indexed with
        the same size and modification time are skipped; unreadable ones are reported, not fatal."""
        model = self.check_model(model)
        report = AddReport()
        known = self.files()
        todo = {}  # path -> (size, mtime_ns) before it is read: a file changed while embedded looks changed
        for path in dict.fromkeys(map(indexed_path, paths)):  # first occurrence
            before = stat(path)
            if path in known and known[path] == before:
                report.unchanged += 1
            else:
                todo[path] = before
        rows: list[FileRows] = []
        failed: list[tuple[str, str]] = []
        for path, output in model.iter_embed_files(list(todo), batch_size, num_workers, progress):
            if isinstance(output, AudioLoadError):
                failed.append((str(path), output.reason))
                LOG.warning("skipped %s", output)
            else:
                rows.append((str(path), *output.rows(self.manifest["segments"]), output.duration, todo[str(path)]))
            if len(rows) + len(failed) >= commit_every:
                self._commit(rows, failed, report)
                rows, failed = [], []
        self._commit(rows, failed, report)
        return report

    def add_parquet(
        self, sources: list[str | os.PathLike], commit_rows: int = PARQUET_COMMIT_ROWS, progress: bool = True
    ) -> TableReport:
        """Add rows embedded elsewhere: Parquet files (or folders of them) of embed's schema
        (`embed --output x.parquet`, `embed --ray`, `index export`, `diverse_embed.ray.EmbedBatch`,
        Spark's with the same columns), committing every `commit_rows` rows. Rows of another model
        (fingerprint) are refused before anything is added; segment rows are added only to an index
        with segments; rows with an `error` go to skipped.tsv. A path met again supersedes its
        earlier rows, as a re-embedded file does. Never more than one commit's rows in memory, and
        nothing per row kept: the report counts."""
        from tqdm.auto import tqdm

        from ..parquet import parquet_files, read_rows

        tables = parquet_files(sources)
        if not tables:
            raise AudioIndexError(f"no .parquet files in {', '.join(map(str, sources))}")
        report = TableReport()
        with tqdm(total=self._check_parquet(tables), desc="adding", unit="row", disable=not progress) as bar:
            for table in tables:
                for batch in read_rows(table, commit_rows):
                    committed = AddReport()
                    self._commit(*self._parquet_rows(batch, table), committed)
                    report.files += len(committed.added)
                    report.failed += len(committed.skipped)
                    bar.update(batch.num_rows)
        return report

    def _check_parquet(self, tables: list[Path]) -> int:
        """The rows of `tables`, once each file is known to hold this index's model's vectors only."""
        import pyarrow.compute as pc

        from ..parquet import read_rows

        rows = 0
        for table in tables:
            for batch in read_rows(table, columns=("fingerprint",)):
                found = set(pc.unique(batch.column("fingerprint")).to_pylist()) - {self.manifest["fingerprint"]}
                if found:
                    raise AudioIndexError(
                        f"{table}: rows of another model (fingerprint {sorted(map(str, found))[0]}); {self.folder} holds "
                        f"vectors of {self.model_name!r} (fingerprint {self.manifest['fingerprint']}), and vectors of "
                        "two models cannot be mixed: nothing was added"
                    )
                rows += batch.num_rows
        return rows

    def _parquet_rows(self, batch: pa.RecordBatch, table: Path) -> tuple[list[FileRows], list]:
        """A record batch as each file's rows (`FileRows`, from the last run of consecutive rows
        that names it) and the (path, error) of files whose last run failed."""
        import pyarrow as pa

        columns = batch.schema.names
        names = batch.column("path_bytes") if "path_bytes" in columns else batch.column("path")
        paths = [os.fsdecode(p) if isinstance(p, bytes) else p for p in names.to_pylist()]
        starts = batch.column("start").to_numpy(zero_copy_only=False).astype(np.float64)  # null -> NaN
        ends = batch.column("end").to_numpy(zero_copy_only=False).astype(np.float64)
        errors = batch.column("error").to_pylist() if "error" in columns else [None] * len(paths)
        failed_rows = np.array([e is not None for e in errors], bool) | batch.column("vector").is_null().to_numpy(
            zero_copy_only=False
        )
        dim = self.manifest["dim"]
        vectors = batch.column("vector").filter(pa.array(~failed_rows)).flatten().to_numpy(zero_copy_only=False)
        if vectors.size != (~failed_rows).sum() * dim:
            raise AudioIndexError(f"{table}: vectors that are not of dimension {dim}, the index's")
        vectors = vectors.astype(np.float32).reshape(-1, dim)
        finite = np.isfinite(vectors).all(axis=1)
        failed_rows[np.flatnonzero(~failed_rows)[~finite]] = True  # NaN (embed's for a failed file) is no vector
        vectors = vectors[finite]
        vector_of_row = np.cumsum(~failed_rows) - 1  # row i's place among the vectors
        last_run: dict[str, list[int]] = {}  # path -> its last run of consecutive rows
        for i, path in enumerate(paths):
            if i == 0 or path != paths[i - 1]:
                last_run[path] = []
            last_run[path].append(i)
        rows, failed = [], []
        for path, run in last_run.items():
            run = np.array(run)
            if failed_rows[run].any():
                failed.append((path, next((errors[i] for i in run if errors[i] is not None), "no vector")))
                continue
            if not self.manifest["segments"]:
                run = run[np.isnan(starts[run])]  # clip rows only
            if len(run):  # the file's size and mtime where it is here: so a later sync sees it unchanged
                rows.append((path, starts[run], ends[run], vectors[vector_of_row[run]], math.nan, stat(path)))
        return rows, failed

    def remove(self, paths: list[str | os.PathLike]) -> AddReport:
        """Drop files, and every file under a folder, from the index in one commit. The paths need
        not exist any more; ones not in the index are ignored (so running it again is harmless)."""
        report = AddReport()
        if any(not str(p).strip() for p in paths):  # Path("") is the current folder: never a way to say "all"
            raise AudioIndexError("an empty path names no file or folder to remove (nothing was removed)")
        named = [Path(indexed_path(p)) for p in paths] + [
            Path(p).absolute().resolve() for p in paths
        ]  # a link, or where it points
        self._commit([], [], report, removed=self._known_under(named))
        return report

    def sync(self, folder: str | os.PathLike, model: DiverseEmbedder | None = None, **add_options) -> AddReport:
        """Make the index match `folder`: files under it that vanished are removed (one commit),
        new and changed ones are embedded, unchanged ones kept (`add`). A killed sync resumes when
        run again."""
        model = self.check_model(model)
        folder = Path(folder).absolute().resolve()
        if not folder.is_dir():
            raise AudioIndexError(f"{folder}: no such folder to sync with (nothing was removed)")
        from ..files import scan_audio_files

        found, unreadable = scan_audio_files([folder])
        present = [indexed_path(p) for p in found]
        present_set = set(present)
        unknown = set(self._known_under([path for path, _ in unreadable]))  # not seen is not gone: kept
        vanished = [p for p in self._known_under([folder]) if p not in present_set and p not in unknown]
        removed = AddReport()
        self._commit([], [], removed, removed=vanished)
        report = self.add(present, model, **add_options)
        report.removed = removed.removed
        report.unreadable = [(str(path), reason) for path, reason in unreadable]
        report.kept_unread = len(unknown)
        return report

    def build(self) -> faiss.Index | RefinedIndex:
        """(Re)build vectors.faiss and the side table from the live vectors and record them in the
        manifest. Which rows are live is worked out once; no per-row table is held meanwhile."""
        with writing(self.folder), self._locked(self.folder):
            self._refresh()
            number = {name: i for i, name in enumerate(self.manifest["shards"])}
            live = [(number[shard.path.name], shard, keep) for shard, keep in self._live_shards() if keep.any()]
            n = sum(int(keep.sum()) for _, _, keep in live)
            kind = index_type_for(self.manifest["index_type"], n)
            blocks = (shard["vectors"][keep] for _, shard, keep in live)  # (b, dim) float32 in FAISS id order
            if kind == "compressed":
                faiss_index = build_compressed_index(n, blocks, self._training_sample(n, live))
            else:
                matrix = np.concatenate(list(blocks)) if live else np.zeros((0, self.manifest["dim"]), np.float32)
                faiss_index = build_faiss_index(matrix, kind)
            # FAISS writes the file itself: the codes are not copied into a buffer first.
            files.atomic_write(
                self.folder / "vectors.faiss",
                lambda f: faiss.write_index(faiss_index, faiss.PyCallbackIOWriter(f.write)),
            )
            rows = RowsOnDisk.write(self.folder, live)
            (self.folder / EXACT_VECTORS).unlink(missing_ok=True)  # an older build's copy of the vectors
            for name in ("paths.bin", "path_offsets.bin"):
                (self.folder / name).unlink(missing_ok=True)  # an older build's side table
            kind = "compressed" if kind == "compressed" else index_kind(faiss_index)
            self.manifest["faiss"] = {
                "generation": self.manifest["generation"],
                "type": kind,
                "sha256": file_sha256(self.folder / "vectors.faiss"),
                "rows": rows,
            }
            self._write_manifest(self.folder, self.manifest)
            self._rows = RowsOnDisk.open(self.folder, rows, self.manifest["shards"], self.manifest["dim"])
        set_search_parameters(faiss_index)
        self._faiss = RefinedIndex(faiss_index, self._rows.vectors) if kind == "compressed" else faiss_index
        return self._faiss

    def _training_sample(self, n: int, live: list) -> np.ndarray:
        """The compressed type's training vectors: a random sample of the n live ones, read a shard at a time."""
        wanted = np.sort(np.random.default_rng(0).choice(n, size=compressed_training_size(n), replace=False))
        sample, offset = [], 0
        for _, shard, keep in live:
            rows = np.flatnonzero(keep)
            inside = wanted[(wanted >= offset) & (wanted < offset + len(rows))] - offset
            sample.append(shard["vectors"][rows[inside]])
            offset += len(rows)
        return np.concatenate(sample)

    @property
    def faiss_index(self) -> faiss.Index:
        if self._faiss is None:
            with self._snapshot():  # the manifest, the side table and vectors.faiss of one generation
                self._refresh()
                self._load_faiss()
        if self._faiss.ntotal != len(self):
            raise AudioIndexError(
                f"{self.folder}: vectors.faiss holds {self._faiss.ntotal} vectors, the table {len(self)}"
            )
        return self._faiss

    def _load_faiss(self) -> None:
        """vectors.faiss and the side table when they are of this generation and whole, else
        the vectors searched from memory (and the table read into it)."""
        built = self.manifest.get("faiss")
        rows = self._current_rows()
        current = self._built_current()
        self._faiss = self._read_faiss_file(built) if current else None
        if self._faiss is not None:
            self._rows = rows
            set_search_parameters(self._faiss)
            if built["type"] == "compressed":  # re-ranked with the exact vectors where they are
                exact = rows.vectors if rows is not None else self._exact_vectors_0_2() or self.vectors().__getitem__
                self._faiss = RefinedIndex(self._faiss, exact)
        else:  # stale (an add after the last build) or damaged: search the current vectors all the same
            LOG.info("%s: vectors.faiss is stale or damaged, building in memory", self.folder)
            self._faiss = build_faiss_index(self.vectors(), self.manifest["index_type"])
        len(self)  # the table of this generation, read inside the snapshot (unless on disk)

    def _exact_vectors_0_2(self):
        """An index built by diverse-embed 0.2: the exact vectors in vectors.f32, (n, dim) float32 in
        FAISS id order, read by row; None when the file is missing or of another build (then the
        shards' vectors are read into RAM, as for a side table damaged since its build)."""
        n, path = len(self.table["path"]), self.folder / EXACT_VECTORS
        if not path.is_file() or path.stat().st_size != n * self.manifest["dim"] * 4:
            return None
        return ExactVectors(path, n, self.manifest["dim"]).__getitem__

    def _read_faiss_file(self, built: dict) -> faiss.Index | None:
        """vectors.faiss as written by `build`, or None (logged) when it is missing or damaged. Its
        checksum is read a block at a time and FAISS reads the file itself: the codes are in RAM once."""
        path = self.folder / "vectors.faiss"
        if not path.is_file():
            return None
        if "sha256" in built and file_sha256(path) != built["sha256"]:  # older indexes have none
            why = "its checksum differs from the manifest's"
        else:
            try:
                return faiss.read_index(str(path))
            except RuntimeError as err:
                why = str(err).splitlines()[0][:200]
        LOG.warning(
            "%s: vectors.faiss is damaged (%s); searching the shards' vectors instead, and the next "
            "index add, remove or sync rewrites it",
            self.folder,
            why,
        )
        return None

    def search_vector(self, query: np.ndarray, k: int = 10, one_hit_per_file: bool = True) -> list[Hit]:
        """query (dim,) -> the k best hits, best first. With segments, a file's best row stands for it."""
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.manifest["dim"]:
            raise ValueError(f"query has dimension {query.shape[1]}, the index {self.manifest['dim']}")
        if not np.isfinite(query).all():
            raise ValueError("the query vector holds NaN or infinite values")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        searched = self.faiss_index  # first: it reads the table of its own generation
        n = len(self)
        if n == 0 or k <= 0:
            return []
        wanted = min(n, k * 4 if one_hit_per_file and self.manifest["segments"] else k)
        while True:
            scores, ids = searched.search(query, wanted)  # D, I: (1, wanted)
            hits, seen = [], set()
            for score, i in zip(scores[0], ids[0]):
                if i < 0:
                    continue
                file, path, start, end = self.row(int(i))
                if one_hit_per_file and file in seen:
                    continue
                seen.add(file)
                hits.append(
                    Hit(
                        len(hits) + 1,
                        path,
                        float(score),
                        None if math.isnan(start) else start,
                        None if math.isnan(end) else end,
                    )
                )
                if len(hits) == k:
                    return hits
            if wanted >= n:
                return hits
            wanted = min(n, wanted * 4)

    def search_audio(
        self, audio: np.ndarray, sample_rate: int, model: DiverseEmbedder | None = None, k: int = 10
    ) -> list[Hit]:
        model = self.check_model(model)
        from ..audio import prepare_waveform

        waveform = prepare_waveform(audio, sample_rate, model.config.sample_rate, source="query")
        return self.search_vector(model.embed(waveform, model.config.sample_rate).embedding, k)

    def search_file(self, path: str | os.PathLike, model: DiverseEmbedder | None = None, k: int = 10) -> list[Hit]:
        """Query by a file of any length (streamed, so an hour-long query is fine)."""
        model = self.check_model(model)
        return self.search_vector(model.embed_file(path).embedding, k)

    def search_files(
        self,
        paths: list[str | os.PathLike],
        model: DiverseEmbedder | None = None,
        k: int = 10,
        progress: bool = False,
        **options,
    ) -> Iterator[tuple[Path, list[Hit] | AudioLoadError]]:
        """Query by several files, embedded together: (query, hits) in the order given, or
        (query, AudioLoadError) for a query that cannot be loaded; `options` as for
        `iter_embed_files` (batch_size, num_workers)."""
        model = self.check_model(model)
        for path, output in model.iter_embed_files(paths, progress=progress, **options):
            yield path, output if isinstance(output, AudioLoadError) else self.search_vector(output.embedding, k)

    def duplicates(self, threshold: float = THRESHOLD, neighbours: int = NEIGHBOURS) -> list[list[tuple[str, float]]]:
        """Groups of near-duplicate files among the whole-clip vectors (duplicates.py); nothing is deleted."""
        paths, vectors = [], []
        for shard, keep in self._live_shards():
            clips = keep & np.isnan(shard["start"].astype(float))  # whole-clip rows, not segments
            paths += shard["path"][clips].tolist()
            vectors.append(shard["vectors"][clips])
        if not paths:
            return []
        from .duplicates import near_duplicate_groups

        return near_duplicate_groups(paths, np.concatenate(vectors), threshold, neighbours)

    def export_parquet(self, path: str | os.PathLike) -> int:
        """Every live row (clips, and segments if indexed) into a Parquet table, a shard at a time;
        returns the rows written."""
        batches = (
            (shard["path"][keep], shard["start"][keep], shard["end"][keep], shard["vectors"][keep])
            for shard, keep in self._live_shards()
            if keep.any()
        )
        from ..parquet import write_parquet

        return write_parquet(path, batches, self.manifest["dim"], self.model_name, self.manifest["fingerprint"])

    def _built_current(self) -> bool:
        """Whether the last build (vectors.faiss, the side table) is of this generation."""
        built = self.manifest.get("faiss")
        return bool(built) and built["generation"] == self.manifest["generation"]

    def _current_rows(self) -> RowsOnDisk | None:
        """The side table of a current build, or None (stale, an older index without one, or damage)."""
        if not self._built_current():
            return None
        return RowsOnDisk.open(
            self.folder, self.manifest["faiss"].get("rows"), self.manifest["shards"], self.manifest["dim"]
        )

    def _counts(self) -> tuple[int, int]:
        """(files, segment rows) of the live rows: as the current build counted them, else from
        the table in RAM."""
        rows = self._rows or self._current_rows()
        if rows is not None:
            self._rows = rows
            self.check_shards()  # what the counts come from is the build's; the shards are checked all the same
            recorded = self.manifest["faiss"]["rows"]
            return recorded["files"], recorded["segments"]
        table = self.table
        segments = int(np.sum(~np.isnan(table["start"].astype(float)))) if len(table["start"]) else 0
        return len(set(table["path"].tolist())), segments

    def info(self) -> dict:
        files, segments = self._counts()
        on_disk = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        built = self.manifest.get("faiss")
        return {
            "folder": str(self.folder),
            "model": self.model_name,
            "fingerprint": self.manifest["fingerprint"],
            "dim": self.manifest["dim"],
            "files": files,
            "vectors": len(self),
            "segment_vectors": segments,
            "segments": self.manifest["segments"],
            "index_type": self.manifest["index_type"],
            "faiss": built["type"] if self._built_current() else "stale",
            "skipped": len(self.skipped()),
            "commits": self.manifest["generation"],
            "bytes_on_disk": on_disk,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
