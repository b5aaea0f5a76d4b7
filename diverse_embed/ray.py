"""Embedding on a Ray cluster: `EmbedBatch` for `ray.data.Dataset.map_batches`, and the
`embed --ray` command's Parquet dataset (one file per block, written atomically, resumed).

Ray is an optional extra (`pip install "diverse-embed[ray]"`): `EmbedBatch` itself needs no Ray,
and nothing else in the package imports this module. Each worker embeds with the thread plan of
parallel.py for the CPUs Ray gives it (Ray sets OMP_NUM_THREADS to them), or one model per GPU.

    import ray
    from diverse_embed.ray import EmbedBatch

    rows = ray.data.read_binary_files("s3://bucket/sounds/", include_paths=True)  # columns bytes, path
    vectors = rows.map_batches(EmbedBatch, compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1, batch_size=16)
    vectors.write_parquet("s3://bucket/vectors/")  # embed's Parquet columns (parquet.py)
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import files
from .audio import decode_bytes
from .embed import embed_waveforms, finite
from .errors import AudioLoadError
from .parallel import DEFAULT_BATCH_SIZE
from .parquet import batches_table, file_rows, parquet_files, read_rows, schema

FILES_PER_BLOCK = 64  # files per Ray block, so per output file: the most a killed run embeds again per worker
PART_PREFIX = "part-"


class EmbedBatch:
    """Rows with a `path` (and optionally the file's `bytes`, as `ray.data.read_binary_files(...,
    include_paths=True)` gives) -> a pyarrow Table of embed's Parquet rows (parquet.schema): each
    file's clip row, and with `segments` its 1-s segments' rows. A file that cannot be embedded is
    one row with its `error` and a vector of NaN, never a failed task. Vectors are those `embed` gives
    for the same file."""

    def __init__(
        self,
        model: str | None = None,
        segments: bool = False,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = "float32",
    ):
        from .distributed import resolve_device
        from .resolve import resolve_model

        loaded, self.model_name = resolve_model(model)
        self.model = loaded.to(resolve_device(device))  # on a GPU worker, the GPU Ray gave it
        self.model.precision = precision
        self.segments, self.batch_size = segments, batch_size
        self.fingerprint = self.model.fingerprint()

    def __call__(self, batch) -> pa.Table:
        columns = as_columns(batch)
        if "path" not in columns:
            raise ValueError(f"EmbedBatch needs a `path` column (and optionally `bytes`); got {sorted(columns)}")
        paths = [p if isinstance(p, bytes) else str(p) for p in columns["path"]]
        outputs = self._from_bytes(paths, columns["bytes"]) if "bytes" in columns else self._from_files(paths)
        dim = self.model.embedding_dim
        parts = [file_rows(path, output, self.segments, dim) for path, output in zip(paths, outputs)]
        if not parts:
            return schema(dim, self.model_name, self.fingerprint).empty_table()
        return batches_table(parts, dim, self.model_name, self.fingerprint)

    def _from_files(self, paths: list) -> list:
        return [
            output
            for _, output in self.model.iter_embed_files(
                [os.fsdecode(p) for p in paths], self.batch_size, progress=False
            )
        ]

    def _from_bytes(self, paths: list, contents: list) -> list:
        decoded: list[np.ndarray | AudioLoadError] = []
        for path, data in zip(paths, contents):
            try:
                decoded.append(decode_bytes(bytes(data), os.fsdecode(path), self.model.config.sample_rate))
            except AudioLoadError as err:
                decoded.append(err)
        waveforms = [w for w in decoded if not isinstance(w, AudioLoadError)]
        embedded = iter(embed_waveforms(self.model, waveforms, self.batch_size) if waveforms else [])
        outputs = []
        for path, item in zip(paths, decoded):
            if isinstance(item, AudioLoadError):
                outputs.append(item)
                continue
            try:
                outputs.append(finite(next(embedded), os.fsdecode(path), item))
            except AudioLoadError as err:
                outputs.append(err)
        return outputs


def as_columns(batch) -> dict[str, list]:
    """A Ray batch in any of its formats (dict of numpy arrays, pyarrow Table, pandas DataFrame) as lists."""
    if isinstance(batch, pa.Table):
        return batch.to_pydict()
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        return batch.to_dict("list")
    return {name: list(values) for name, values in batch.items()}


def done_paths(folder: Path) -> set[bytes]:
    """The files a dataset folder already has rows for (embedded, or failed with an error)."""
    done: set[bytes] = set()
    for part in parquet_files([folder]):
        for batch in read_rows(part, columns=("path_bytes",)):
            done.update(batch.column("path_bytes").to_pylist())
    return done


def embed_dataset(
    paths: list[Path],
    folder: Path,
    model: str | None = None,
    segments: bool = False,
    address: str | None = None,
    workers: int | None = None,
    device: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    files_per_block: int = FILES_PER_BLOCK,
    progress: bool = True,
    precision: str = "float32",
) -> tuple[int, int, int]:
    """Embed `paths` on a Ray cluster (`address`; None: the one RAY_ADDRESS names, else a local one)
    into `folder`, a Parquet dataset of one file per block, each written atomically. Files that
    already have rows in `folder` are skipped, so a killed run resumes. Every worker must see the
    paths (a shared file system). Returns (files embedded, files failed, files skipped as done)."""
    ray = import_ray()
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(f".{PART_PREFIX}*.tmp"):  # a killed run's unfinished part
        leftover.unlink(missing_ok=True)
    done = done_paths(folder)
    todo = [p for p in paths if os.fsencode(p) not in done]
    if not todo:
        return 0, 0, len(paths)
    ray.init(address=address, ignore_reinit_error=True, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines would interleave with our bar
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts files
    cluster = ray.cluster_resources()
    gpu = str(device).startswith("cuda") if device else cluster.get("GPU", 0) > 0
    resources = {"num_gpus": 1} if gpu else {"num_cpus": 1}
    workers = workers or max(1, int(cluster.get("GPU" if gpu else "CPU", 1)))
    per_block = max(1, min(files_per_block, math.ceil(len(todo) / (2 * workers))))  # every worker busy
    items = ray.data.from_items(
        [{"path": os.fsencode(p)} for p in todo], override_num_blocks=math.ceil(len(todo) / per_block)
    )
    embedded = items.map_batches(
        EmbedBatch,
        batch_size=per_block,
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_format="pyarrow",
        fn_constructor_kwargs={
            "model": model,
            "segments": segments,
            "batch_size": batch_size,
            "device": "cuda" if gpu else "cpu",
            "precision": precision,
        },
        **resources,
    )
    ok = failed = 0
    with tqdm(total=len(todo), desc="embedding", unit="file", disable=not progress) as bar:
        for block in embedded.iter_batches(batch_size=None, batch_format="pyarrow"):
            write_part(folder, block)
            clips = block.filter(pc.is_null(block.column("start")))  # one row per file
            fine = clips.column("error").null_count
            ok, failed = ok + fine, failed + clips.num_rows - fine
            bar.update(clips.num_rows)
    return ok, failed, len(paths) - len(todo)


def write_part(folder: Path, block: pa.Table) -> Path:
    path = folder / f"{PART_PREFIX}{uuid.uuid4().hex}.parquet"
    files.atomic_write(path, lambda f: pq.write_table(block, f))
    return path


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError('embedding with Ray needs its extra: pip install "diverse-embed[ray]"') from None
    return ray
