"""Embeddings as a Parquet table that any engine reads (DuckDB, pandas, Spark, LanceDB, Ray).

One row per clip or 1-s segment: path, start and end in seconds (null for a whole clip), the
model's name and fingerprint, the vector as a fixed-size list of float32, and `error`: null, or
why the file could not be embedded (its one row then has a vector of NaN: a null entry of a
fixed-size list cannot be read back by pyarrow before 26). `path` is text, so a name
whose bytes are not UTF-8 is written there with those bytes as \\xNN escapes; `path_bytes` holds
every name's exact bytes (os.fsdecode(path_bytes) is the path Python opens).

`embed --output x.parquet`, `index export`, `embed --ray` and `diverse_embed.ray.EmbedBatch` all
write this one schema, and `index build --from-parquet` reads it back (`read_rows`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import files
from .errors import AudioLoadError, TableError

ROW_GROUP_ROWS = 16_384  # rows buffered per row group: a few MB, and few groups for a reader to skip
COLUMNS = ("path", "path_bytes", "start", "end", "model", "fingerprint", "vector", "error")


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.field("element", pa.float32()), dim)  # named as Parquet readers name it


def schema(dim: int, model: str, fingerprint: str) -> pa.Schema:
    return pa.schema(
        [
            ("path", pa.string()),
            ("path_bytes", pa.binary()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("model", pa.string()),
            ("fingerprint", pa.string()),
            ("vector", vector_type(dim)),
            ("error", pa.string()),
        ],
        metadata={
            "diverse_embed.model": model,
            "diverse_embed.fingerprint": fingerprint,
            "diverse_embed.dim": str(dim),
        },
    )


def rows_table(
    paths: list,
    starts: np.ndarray,
    ends: np.ndarray,
    vectors: np.ndarray,
    errors: list[str | None],
    dim: int,
    model: str,
    fingerprint: str,
) -> pa.Table:
    """n rows as a table of `schema`: paths (n,) as str or bytes, starts and ends (n,) with NaN for a
    whole clip, vectors (n, dim) float32 (read only where errors[i] is None), errors (n,)."""
    names = [p if isinstance(p, bytes) else os.fsencode(str(p)) for p in paths]  # exact bytes, UTF-8 or not
    vectors = np.array(vectors, np.float32).reshape(-1, dim)  # a copy: failed rows are set to NaN
    n = len(names)
    vectors[[e is not None for e in errors]] = np.nan  # never a null entry: pyarrow < 26 cannot read one back
    vector = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), type=vector_type(dim))
    return pa.Table.from_arrays(
        [
            pa.array([p.decode("utf-8", "backslashreplace") for p in names], pa.string()),
            pa.array(names, pa.binary()),
            pa.array(np.asarray(starts, np.float64), from_pandas=True),  # NaN -> null
            pa.array(np.asarray(ends, np.float64), from_pandas=True),
            pa.array([model] * n, pa.string()),
            pa.array([fingerprint] * n, pa.string()),
            vector,
            pa.array(list(errors), pa.string()),
        ],
        schema=schema(dim, model, fingerprint),
    )


def batches_table(batches: list[tuple], dim: int, model: str, fingerprint: str) -> pa.Table:
    """`write_parquet`'s batches (at least one) as one table of `schema`."""
    errors = [e for batch in batches for e in (batch[4] if len(batch) > 4 else [None] * len(batch[0]))]
    return rows_table(
        [p for batch in batches for p in batch[0]],
        np.concatenate([np.asarray(b[1]) for b in batches]),
        np.concatenate([np.asarray(b[2]) for b in batches]),
        np.concatenate([np.asarray(b[3], np.float32).reshape(-1, dim) for b in batches]),
        errors,
        dim,
        model,
        fingerprint,
    )


def write_parquet(path: str | os.PathLike, batches: Iterable[tuple], dim: int, model: str, fingerprint: str) -> int:
    """Write batches of rows as one Parquet file, atomically; returns the rows written. A batch is
    (paths (n,), starts (n,), ends (n,), vectors (n, dim)) with NaN start/end for a whole clip, and
    optionally errors (n,) (None, or why that file has no vector). Streams: only one row group is in
    memory at a time."""
    table_schema = schema(dim, model, fingerprint)
    written = 0

    def write(f) -> None:
        nonlocal written
        with pq.ParquetWriter(f, table_schema) as writer:
            buffered, rows = [], 0
            for batch in batches:
                buffered.append(batch)
                rows += len(batch[0])
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(batches_table(buffered, dim, model, fingerprint))
                    written, buffered, rows = written + rows, [], 0
            if buffered:
                writer.write_table(batches_table(buffered, dim, model, fingerprint))
                written += rows

    files.atomic_write(path, write)
    return written


def file_rows(path, output, segments: bool, dim: int) -> tuple:
    """One file's batch for `write_parquet`: its clip row, then with `segments` a row per 1-s chunk;
    for an AudioLoadError, one row with its reason and no vector."""
    if isinstance(output, AudioLoadError):
        return [path], np.array([np.nan]), np.array([np.nan]), np.zeros((1, dim), np.float32), [output.reason]
    starts, ends, vectors = output.rows(segments)
    return [path] * len(vectors), starts, ends, vectors, [None] * len(vectors)


def parquet_files(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """The .parquet files of `sources` (files, or folders searched recursively), sorted per source."""
    found = []
    for source in map(Path, sources):
        if source.is_dir():
            found += sorted(p for p in source.rglob("*.parquet") if p.is_file() and not p.name.startswith("."))
        else:
            found.append(source)
    return found


def table_model(path: str | os.PathLike) -> str:
    """The model name a table records (its first row's, else its metadata's)."""
    for batch in read_rows(path, 1, columns=("model",)):
        if "model" in batch.schema.names and batch.num_rows:
            return batch.column("model")[0].as_py()
    metadata = pq.read_schema(path).metadata or {}
    if b"diverse_embed.model" in metadata:
        return metadata[b"diverse_embed.model"].decode()
    raise TableError(f"{path}: no model column or metadata naming the model; give --model")


def read_rows(
    path: str | os.PathLike,
    batch_rows: int = ROW_GROUP_ROWS,
    columns: tuple[str, ...] = ("path", "path_bytes", "start", "end", "fingerprint", "vector", "error"),
) -> Iterator[pa.RecordBatch]:
    """A table of `schema` (ours, Ray's, or another engine's with the same columns) in batches of
    `columns` (those it has), never whole in memory. Raises TableError naming the file and what is
    wrong with it."""
    try:
        table = pq.ParquetFile(path)
        names = set(table.schema_arrow.names)
        missing = [c for c in ("path", "start", "end", "fingerprint", "vector") if c in columns and c not in names]
        if missing:
            raise TableError(
                f"{path}: no column {', '.join(missing)} (the columns of `diverse-embed embed --output x.parquet`)"
            )
        yield from table.iter_batches(batch_size=batch_rows, columns=[c for c in columns if c in names])
    except (OSError, pa.ArrowException) as err:
        raise TableError(f"{path}: not readable as Parquet ({err})") from None
