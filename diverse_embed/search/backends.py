"""The FAISS side of an index: building each type (flat, HNSW, IVF-PQ, and the compressed type
trained on a sample and encoded a block at a time), re-ranking compressed candidates with the
exact vectors on disk (RefinedIndex), and each type's search settings."""

from __future__ import annotations

import math
import os

import faiss
import numpy as np

from .index_types import TRAINING_POINTS_PER_LIST, index_type_for

HNSW_NEIGHBOURS = 32  # M: links per vector
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVFPQ_CODE_BYTES = 32  # PQ sub-quantizers of 8 bits: 32 bytes per 256-d vector
IVFPQ_NPROBE = 32
# compressed: IVF lists found through an HNSW graph of their centres, 64-byte PQ codes in RAM;
# each query's candidates are re-ranked with the exact vectors read from disk; no OPQ rotation
# (little recall for minutes of training). Chosen by benchmarks/index_scale.py (README,
# "Collections larger than RAM").
COMPRESSED_CODE_BYTES = 64
COMPRESSED_NPROBE = 32
COMPRESSED_CANDIDATES = 20  # candidates re-ranked per hit asked for
COMPRESSED_MAX_LISTS = 8192  # more lists train too slowly on a small CPU


def build_faiss_index(vectors: np.ndarray, index_type: str = "auto") -> faiss.Index:
    """vectors (n, d) float32, L2-normalised -> a FAISS index where inner product = cosine, of the
    type `index_type_for` picks (the compressed type in memory, as a stale index is searched
    before `build`: exact search, as good)."""
    n, d = vectors.shape
    kind = index_type_for(index_type, n)
    if kind == "compressed":
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
    index.add(vectors)
    set_search_parameters(index)
    return index


def compressed_lists(n_vectors: int) -> int:
    """IVF lists for the compressed type: a power of two near 4 sqrt(n), at most COMPRESSED_MAX_LISTS."""
    return int(min(COMPRESSED_MAX_LISTS, 2 ** round(math.log2(max(16, 4 * math.sqrt(n_vectors))))))


def compressed_training_size(n_vectors: int) -> int:
    return min(n_vectors, TRAINING_POINTS_PER_LIST * compressed_lists(n_vectors))


def build_compressed_index(n_vectors: int, blocks, training: np.ndarray) -> faiss.Index:
    """The compressed type, built a block at a time: `training` (m, d) float32 vectors sampled from
    the collection train the lists and the codes; then each block of `blocks` (an iterable of
    (b, d) float32, in FAISS id order) is encoded. Only one block and the sample are in RAM at once;
    the exact vectors a search re-ranks with stay where they are (the shards)."""
    d = training.shape[1]
    # np: no polysemous training, which took minutes and serves Hamming filtering, unused here
    spec = f"IVF{compressed_lists(n_vectors)}_HNSW32,PQ{COMPRESSED_CODE_BYTES}np"
    index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(training, dtype=np.float32))
    for block in blocks:
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    set_search_parameters(index)
    return index


class ExactVectors:
    """A file of (n, d) float32 rows (vectors.f32 of an index built by diverse-embed 0.2), read by row: `vectors[ids]` reads those rows with pread, so a
    searching process holds no page of the file (a memory map would keep every page it touched)."""

    def __init__(self, path, n: int, d: int):
        self.path, self.shape = path, (n, d)
        self.fd = os.open(path, os.O_RDONLY)

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        row_bytes = 4 * self.shape[1]
        rows = [os.pread(self.fd, row_bytes, int(i) * row_bytes) for i in np.asarray(ids).reshape(-1)]
        return np.frombuffer(b"".join(rows), np.float32).reshape(-1, self.shape[1])

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


class RefinedIndex:
    """A compressed FAISS index whose candidates are re-ranked with the exact vectors on disk
    (`exact`: FAISS ids -> their vectors (len(ids), d) float32). Searches like a faiss.Index:
    search(queries (q, d), k) -> scores (q, k), ids (q, k)."""

    def __init__(self, index: faiss.Index, exact, candidates_per_hit: int = COMPRESSED_CANDIDATES):
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
            exact = self.exact(found) @ query  # (candidates,)
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
