"""Which FAISS index type a collection gets: the one rule, by its size and what was asked.
Pure Python, so the command line can offer the types without loading FAISS."""

from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)

INDEX_TYPES = ("auto", "flat", "hnsw", "compressed", "ivfpq")
IVFPQ_MIN_VECTORS = 64 * 256  # its 8-bit codebooks train on 64 points per centroid or more
TRAINING_POINTS_PER_LIST = 40  # of the compressed type's IVF lists: FAISS warns below 39
COMPRESSED_MIN_VECTORS = 256 * TRAINING_POINTS_PER_LIST  # its fewest lists, 256


def check_index_type(requested: str) -> str:
    if requested not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {INDEX_TYPES}, got {requested!r}")
    return requested


def index_type_for(requested: str, n_vectors: int) -> str:
    """The type to build for `n_vectors`. auto: exact search while it is fast (< 100k vectors), then
    HNSW (1.3 kB a vector in RAM), past 2M the compressed type (about 80 bytes a vector in RAM, exact
    vectors on disk). A trained type asked for on too few vectors to train gets exact search."""
    kind = check_index_type(requested)
    if kind == "auto":
        kind = "flat" if n_vectors < 100_000 else "hnsw" if n_vectors < 2_000_000 else "compressed"
    minimum = {"ivfpq": IVFPQ_MIN_VECTORS, "compressed": COMPRESSED_MIN_VECTORS}.get(kind, 0)
    if n_vectors < minimum:
        LOG.warning(
            "the %s type needs at least %d vectors to train, have %d: using exact search", kind, minimum, n_vectors
        )
        return "flat"
    return kind
