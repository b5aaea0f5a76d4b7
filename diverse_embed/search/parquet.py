"""Embeddings as a Parquet table that any engine reads (DuckDB, pandas, Spark, LanceDB).

One row per clip or 1-s segment: path, start and end in seconds (null for a whole clip), the
model's name and fingerprint, and the vector as a fixed-size list of float32. `path` is text, so a
name whose bytes are not UTF-8 is written there with those bytes as \\xNN escapes; `path_bytes`
holds every name's exact bytes (os.fsdecode(path_bytes) is the path Python opens).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import files

ROW_GROUP_ROWS = 16_384  # rows buffered per row group: a few MB, and few groups for a reader to skip


def schema(dim: int, model: str, fingerprint: str) -> pa.Schema:
    return pa.schema(
        [("path", pa.string()), ("path_bytes", pa.binary()), ("start", pa.float64()), ("end", pa.float64()),
         ("model", pa.string()), ("fingerprint", pa.string()), ("vector", pa.list_(pa.float32(), dim))],
        metadata={"diverse_embed.model": model, "diverse_embed.fingerprint": fingerprint, "diverse_embed.dim": str(dim)},
    )


def write_parquet(path: str | os.PathLike, batches: Iterable[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]],
                  dim: int, model: str, fingerprint: str) -> int:
    """Write (paths (n,), starts (n,), ends (n,), vectors (n, dim)) batches, NaN start/end for a
    whole clip, as one Parquet file, atomically; returns the rows written. Streams: only one row
    group is in memory at a time."""
    table_schema = schema(dim, model, fingerprint)
    written = 0

    def to_table(parts: list) -> pa.Table:
        paths = [os.fsencode(str(p)) for part in parts for p in part[0]]  # exact bytes, UTF-8 or not
        vectors = np.concatenate([np.asarray(part[3], np.float32).reshape(-1, dim) for part in parts])
        n = len(vectors)
        return pa.Table.from_arrays([
            pa.array([p.decode("utf-8", "backslashreplace") for p in paths], pa.string()),
            pa.array(paths, pa.binary()),
            pa.array(np.concatenate([np.asarray(part[1], np.float64) for part in parts]), from_pandas=True),  # NaN -> null
            pa.array(np.concatenate([np.asarray(part[2], np.float64) for part in parts]), from_pandas=True),
            pa.array([model] * n, pa.string()),
            pa.array([fingerprint] * n, pa.string()),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
        ], schema=table_schema)

    def write(f) -> None:
        nonlocal written
        with pq.ParquetWriter(f, table_schema) as writer:
            buffered, rows = [], 0
            for batch in batches:
                buffered.append(batch)
                rows += len(batch[0])
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(to_table(buffered))
                    written, buffered, rows = written + rows, [], 0
            if buffered:
                writer.write_table(to_table(buffered))
                written += rows

    files.atomic_write(path, write)
    return written
